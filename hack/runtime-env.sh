#!/usr/bin/env bash
# A venv holding exactly what the chart's install-deps init container installs for a model format
# (charts/inference-service/files/requirements/<format>.txt, with its hashes), cached by the lock's hash:
#   runtime-env.sh sklearn | onnx | mlflow [LOCK]  -> prints the venv's python
# LOCK: another lock file for that format (make bench's cold starts at an earlier commit use its locks).
# `make bench` times cold starts in these, so the figure is the pod's and not the dev venv's (which also
# holds pandas, pyarrow and mlflow: scikit-learn imports pandas when it can).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
LOG_TAG=runtime-env
repo=$(cd "$here/.." && pwd)
format=${1:-}
lock=${2:-$repo/charts/inference-service/files/requirements/$format.txt}
reqs="$repo/charts/inference-service/files/requirements"
formats=$(for f in "$reqs"/*.txt; do basename "$f" .txt; done | tr '\n' ' ')
[ -n "$format" ] && [ -f "$lock" ] || die "usage: $0 <format> [LOCK]; formats: $formats"
key=$(sha256sum "$lock" | cut -c1-16)
venv="$HELM_MLOPS_CACHE/runtime-$format-$key"
if [ ! -f "$venv/.complete" ]; then
  log "preparing $venv from $lock"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$lock" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
