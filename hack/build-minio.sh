#!/usr/bin/env bash
# Builds MinIO from its Go module into the cache outside the repo (prints the binary's path): the one
# S3 server the real tests start that verifies request signatures (moto, the S3 emulator, accepts any).
# A second run with the binary present does nothing. The first took 5.5 to 9 minutes on 2 shared cores
# here (330 s with this machine's Go caches as they were, 528 s with empty module and build caches;
# about 300 s of CPU) and fills about 1.4 GB of module cache and 1 GB of build cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=minio
# shellcheck source=lib.sh
. "$here/lib.sh"
out="$HELM_MLOPS_CACHE/minio-$MINIO_VERSION/minio"
if [ ! -x "$out" ]; then
  command -v go >/dev/null || die "Go is needed to build MinIO (Go 1.24+)"
  export GOTOOLCHAIN=local
  start=$(date +%s)
  log "building MinIO $MINIO_VERSION (downloads its modules the first time)" >&2
  ( gomod_prepare "minio-$MINIO_VERSION" "github.com/minio/minio@$MINIO_VERSION" github.com/minio/minio
    go mod tidy >/dev/null 2>&1
    gomod_build github.com/minio/minio "$out" "" ) >&2
  log "built in $(( $(date +%s) - start ))s" >&2
fi
echo "$out"
