#!/usr/bin/env bash
# Venvs of the inference benchmark's peers, under the cache and out of the project's install:
#   bench-peers.sh mlserver | kserve   -> prints the venv's python
# The same scikit-learn as ours, so every server loads the same joblib file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$here/versions.env"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
LOG_TAG=bench-peers
repo=$(cd "$here/.." && pwd)
sklearn=$("$repo/.venv/bin/python" -c 'import sklearn; print(sklearn.__version__)')
case "${1:-}" in
  mlserver) pkgs=("mlserver==$BENCH_MLSERVER_VERSION" "mlserver-sklearn==$BENCH_MLSERVER_VERSION"); tag="mlserver-$BENCH_MLSERVER_VERSION" ;;
  kserve) pkgs=("kserve==$BENCH_KSERVE_VERSION"); tag="kserve-$BENCH_KSERVE_VERSION" ;;
  *) die "usage: $0 mlserver|kserve" ;;
esac
venv="$HELM_MLOPS_CACHE/bench-$tag"
marker="$venv/.helm-mlops-sklearn-$sklearn"
if [ ! -f "$marker" ]; then
  log "preparing $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q "${pkgs[@]}" "scikit-learn==$sklearn" joblib >&2
  touch "$marker"
fi
echo "$venv/bin/python"
