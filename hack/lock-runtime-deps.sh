#!/usr/bin/env bash
# Compile the inference runtime's dependency locks: charts/inference-service/files/requirements/<format>.in
# -> <format>.txt, pinned with sha256 hashes for every platform (uv's universal resolution, Python 3.11+),
# which the chart's install-deps init container installs with `pip install --require-hashes`.
# Run after changing a .in file, or to take newer versions; commit the .txt files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=locks
# shellcheck source=lib.sh
. "$here/lib.sh"
uv="$root/.venv/bin/uv"
[ -x "$uv" ] || "$root/.venv/bin/python" -m pip install -q "uv>=0.5,<1"
cd "$root/charts/inference-service/files/requirements"
for input in *.in; do
  out="${input%.in}.txt"
  "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header \
    --custom-compile-command "hack/lock-runtime-deps.sh" "$input" -o "$out"
  log "$out: $(grep -c '^[a-z0-9]' "$out") packages, $(wc -c < "$out") bytes"
done
