#!/usr/bin/env bash
# A venv with PyTorch (CPU use of the PyPI build) for the torchrun tests, kept outside the repo and
# out of the core install: it is large (about 3 GB) and only the launcher's distributed tests use it.
# Prints the venv's python. Idempotent: a marker records the pinned version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$here/versions.env"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
LOG_TAG=torch-env
py=${PY:-python3}
tag=$("$py" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')
venv="$HELM_MLOPS_CACHE/torch-$TORCH_VERSION-$tag"
# The marker carries the requirements' hash, so a change to them rebuilds the venv.
reqs="$here/torch-env-requirements.txt"
marker="$venv/.helm-mlops-torch-$TORCH_VERSION-$(sha256sum "$reqs" | cut -c1-12)"
if [ ! -f "$marker" ]; then
  log "preparing $venv (torch $TORCH_VERSION)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  rm -f "$venv"/.helm-mlops-torch-*
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q "torch==$TORCH_VERSION" -r "$reqs" >&2
  "$venv/bin/python" -c 'import torch.distributed as d; assert d.is_available() and d.is_gloo_available()' >&2
  touch "$marker"
fi
echo "$venv/bin/python"
