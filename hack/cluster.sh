#!/usr/bin/env bash
# The local test cluster: a real kube-apiserver, controller-manager, scheduler and etcd run by
# `kwokctl --runtime binary` from the binaries of build-cluster-tools.sh; kwok fakes the nodes.
#   cluster.sh up | down | status | kubeconfig
# HELM_MLOPS_CLUSTER names the cluster (default helm-mlops). The kubeconfig path is printed by `up`
# and `kubeconfig`; nothing touches ~/.kube/config.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=cluster
# shellcheck source=lib.sh
. "$here/lib.sh"

name=${HELM_MLOPS_CLUSTER:-helm-mlops}
dir="$HELM_MLOPS_CACHE/kube-$KUBE_VERSION"
bin="$dir/bin"
export KWOK_WORKDIR="$HELM_MLOPS_CACHE/kwok"
kubeconfig="$KWOK_WORKDIR/kubeconfig-$name"
kubectl=$(command -v "$root/.tools/bin/kubectl" || command -v kubectl || true)

kc() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
# Healthy: the API server ready and every component's process alive (a component that exited, e.g. a
# scheduler that lost its lease, leaves the API server answering while pods stay Pending).
healthy() {
  [ -f "$kubeconfig" ] && kc get --raw /readyz >/dev/null 2>&1 || return 1
  local pid_file
  for pid_file in "$KWOK_WORKDIR/clusters/$name/pids/"*.pid; do
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null || return 1
  done
}
exists() { "$bin/kwokctl" get clusters 2>/dev/null | grep -qx "$name"; }

up() {
  if [ ! -x "$bin/kwokctl" ] || [ ! -f "$dir/stages/.complete" ]; then
    die "cluster binaries missing: run make cluster-tools"
  fi
  [ -n "$kubectl" ] || die "kubectl missing: run make tools"
  if exists && healthy; then
    log "cluster $name already running; kubeconfig: $kubeconfig"
    return 0
  fi
  if exists; then "$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1 || true; fi
  mkdir -p "$KWOK_WORKDIR"
  config="$KWOK_WORKDIR/config-$name.yaml"
  # Passing any stage replaces kwok's defaults, so the config lists upstream's node, pod and volume
  # stages and then ours.
  : > "$config"
  for f in node-initialize node-heartbeat-with-lease pod-ready pod-delete pv-bind pv-delete pvc-provision pvc-delete; do
    { cat "$dir/stages/$f.yaml"; echo "---"; } >> "$config"
  done
  cat "$here/kwok/stages.yaml" >> "$config"
  # One scheduler and one controller-manager, no leader election: on a loaded 2-core machine a missed
  # lease renewal would make them exit (seen in CI), leaving pods Pending for good.
  printf -- '---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\ncomponentsPatches:\n' >> "$config"
  for component in kube-scheduler kube-controller-manager; do
    printf -- '  - name: %s\n    extraArgs:\n      - key: leader-elect\n        value: "false"\n' "$component" >> "$config"
  done
  # Simulated container logs, so `kubectl logs` and `helm-mlops logs` stream through the real
  # API server (kube-apiserver -> kwok's kubelet endpoint) for every pod of the cluster.
  logs="$KWOK_WORKDIR/pod-$name.log"
  cp "$here/kwok/pod.log" "$logs"
  printf -- '---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: simulated-logs\nspec:\n  selector: {}\n  logs:\n    - logsFile: %s\n      follow: false\n' "$logs" >> "$config"
  start=$(date +%s.%N)
  "$bin/kwokctl" create cluster --name "$name" --runtime binary --config "$config" \
    --kube-apiserver-binary "$bin/kube-apiserver" --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" --etcd-binary "$bin/etcd" --kwok-controller-binary "$bin/kwok" \
    --kubeconfig "$kubeconfig" --wait 120s >"$KWOK_WORKDIR/create-$name.log" 2>&1 \
    || { cat "$KWOK_WORKDIR/create-$name.log" >&2; die "kwokctl create cluster failed"; }
  ready=$(date +%s.%N)
  kc apply -f "$dir/stages/volume-rbac.yaml" -f "$dir/stages/storage-class.yaml" -f "$here/kwok/cluster-resources.yaml" >/dev/null
  kc wait --for=condition=Ready node --all --timeout=60s >/dev/null
  # Pods cannot be created before the controller-manager made the namespace's default ServiceAccount.
  for _ in $(seq 120); do kc -n default get serviceaccount default >/dev/null 2>&1 && break; sleep 0.5; done
  done_at=$(date +%s.%N)
  log "$(awk -v s="$start" -v r="$ready" -v d="$done_at" 'BEGIN { printf "API ready in %.1fs, nodes ready in %.1fs", r - s, d - s }')"
  log "kubeconfig: $kubeconfig"
}

case "${1:-}" in
  up) up ;;
  down) exists && "$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1; rm -f "$kubeconfig"; log "cluster $name deleted" ;;
  status) if healthy; then kc get nodes; else echo "cluster $name is not running"; exit 1; fi ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2 ;;
esac
