#!/usr/bin/env bash
# Builds kube-state-metrics from its Go module (k8s.io/kube-state-metrics/v2, pinned in versions.env)
# into the cache outside the repo and prints the binary's path: the observability test runs it against
# the local test cluster so the training alert rules meet real kube_job_* series. A second run with
# the binary present does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=kube-state-metrics
# shellcheck source=lib.sh
. "$here/lib.sh"
out="$HELM_MLOPS_CACHE/kube-state-metrics-$KSM_VERSION/kube-state-metrics"
if [ ! -x "$out" ]; then
  command -v go >/dev/null || die "Go is needed to build kube-state-metrics (Go 1.26+ for $KSM_VERSION)"
  export GOTOOLCHAIN=local
  start=$(date +%s)
  log "building kube-state-metrics $KSM_VERSION (downloads its modules the first time)" >&2
  ( gomod_prepare "kube-state-metrics-$KSM_VERSION" "k8s.io/kube-state-metrics/v2@$KSM_VERSION" k8s.io/kube-state-metrics/v2
    go mod tidy >/dev/null 2>&1
    v=github.com/prometheus/common/version
    gomod_build k8s.io/kube-state-metrics/v2 "$out" "-X $v.Version=${KSM_VERSION#v} -X $v.Branch=release -X $v.Revision=$KSM_VERSION" ) >&2
  log "built in $(( $(date +%s) - start ))s" >&2
fi
echo "$out"
