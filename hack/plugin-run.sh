#!/usr/bin/env bash
# Entry point of the helm plugin: runs helm-mlops from the plugin's own .venv (make setup), else the
# one on PATH, and hands it the helm that called it.
set -euo pipefail
dir=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
exe="$dir/.venv/bin/helm-mlops"
[ -x "$exe" ] || exe=$(command -v helm-mlops || true)
if [ -z "$exe" ]; then
  echo "helm mlops: helm-mlops is not installed: run 'make setup' in $dir, or pip install helm-mlops" >&2
  exit 2
fi
# An empty HELM_MLOPS_HELM counts as unset.
export HELM_MLOPS_HELM=${HELM_MLOPS_HELM:-${HELM_BIN:-helm}}
exec "$exe" "$@"
