#!/bin/sh
# Entry point of the helm plugin (plugin.yaml platformCommand). Runs helm-mlops from, in order:
#   $HELM_PLUGIN_DIR/.plugin-venv  the virtualenv the install/update hook builds (plugin/hook.sh;
#                                  in a git checkout: $HELM_PLUGIN_DIR/.git/helm-mlops-plugin/.plugin-venv);
#   $HELM_PLUGIN_DIR/.venv         a source checkout after `make setup` (HELM_MLOPS_SKIP_VENV=1);
#   helm-mlops on PATH.
# Nested helm calls use the helm that called the plugin: HELM_MLOPS_HELM defaults to $HELM_BIN
# (an empty HELM_MLOPS_HELM counts as unset).
set -eu
dir=${HELM_PLUGIN_DIR:-$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)}
if [ -d "$dir/.git" ]; then venv=$dir/.git/helm-mlops-plugin/.plugin-venv; else venv=$dir/.plugin-venv; fi
if [ -x "$venv/bin/helm-mlops" ]; then
  exe=$venv/bin/helm-mlops
elif [ -x "$dir/.venv/bin/helm-mlops" ]; then
  exe=$dir/.venv/bin/helm-mlops
elif exe=$(command -v helm-mlops 2>/dev/null); then
  :
else
  echo "helm mlops: helm-mlops is not installed: no virtualenv in $venv (HELM_MLOPS_SKIP_VENV was set, or the install hook failed) and no helm-mlops on PATH; fix: run 'sh $dir/plugin/hook.sh install', or put helm-mlops on PATH" >&2
  exit 2
fi
if [ -n "${HELM_MLOPS_HELM:-}" ]; then
  export HELM_MLOPS_HELM
elif [ -n "${HELM_BIN:-}" ]; then
  HELM_MLOPS_HELM=$HELM_BIN
  export HELM_MLOPS_HELM
else
  unset HELM_MLOPS_HELM
fi
exec "$exe" "$@"
