#!/usr/bin/env bash
# The local test cluster: a real kube-apiserver, controller-manager, scheduler and etcd run by
# `kwokctl --runtime binary` from the binaries of build-cluster-tools.sh; kwok fakes the nodes.
#   cluster.sh up | down | status | kubeconfig
# REAL_NODES=1 adds one real node (kubelet + containerd, hack/real-node.sh) to `up`; `down` removes it.
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

# The kwokctl configuration of the cluster, on standard output.
write_config() {
  local f component logs
  # Passing any stage replaces kwok's defaults, so the config lists upstream's node, pod and volume
  # stages and then ours.
  for f in node-initialize node-heartbeat-with-lease pod-ready pod-delete pv-bind pv-delete pvc-provision pvc-delete; do
    cat "$dir/stages/$f.yaml"; echo "---"
  done
  cat "$here/kwok/stages.yaml"
  # PortForward and ClusterPortForward as CRDs (kwok.x-k8s.io/v1alpha1) that kwok watches: an object
  # names a pod (or selects pods by name and namespace) and the local address each port forwards to, so
  # the API server's pods/portforward reaches a real process on this machine (the e2e tests of `ui`
  # and `predict` point them at a real MLflow server and a real runtime).
  printf -- '---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n  enableCRDs:\n    - PortForward\n    - ClusterPortForward\n'
  # One scheduler and one controller-manager, no leader election: on a loaded 2-core machine a missed
  # lease renewal would make them exit (seen in CI), leaving pods Pending for good.
  printf -- 'componentsPatches:\n'
  for component in kube-scheduler kube-controller-manager; do
    printf -- '  - name: %s\n    extraArgs:\n      - key: leader-elect\n        value: "false"\n' "$component"
  done
  # kwok manages only its own nodes (they carry kwok.x-k8s.io/node=fake), so a real node's pods are the
  # kubelet's alone (hack/real-node.sh); the API server calls a real kubelet with the admin client
  # certificate, which that kubelet trusts through the cluster's CA.
  printf -- '  - name: kwok-controller\n    extraArgs:\n      - key: manage-all-nodes\n        value: "false"\n'
  printf -- '      - key: manage-nodes-with-annotation-selector\n        value: kwok.x-k8s.io/node=fake\n'
  # PodNodeSelector and PodTolerationRestriction: a namespace annotated for the real node
  # (tests/support/realnode.py) puts every pod there, hooks and `helm test` pods included.
  printf -- '  - name: kube-apiserver\n    extraArgs:\n'
  printf -- '      - key: enable-admission-plugins\n        value: PodNodeSelector,PodTolerationRestriction\n'
  # A real kubelet's node name is no DNS name here: reach it at its InternalIP.
  printf -- '      - key: kubelet-preferred-address-types\n        value: InternalIP,Hostname\n'
  printf -- '      - key: kubelet-client-certificate\n        value: %s\n' "$KWOK_WORKDIR/clusters/$name/pki/admin.crt"
  printf -- '      - key: kubelet-client-key\n        value: %s\n' "$KWOK_WORKDIR/clusters/$name/pki/admin.key"
  # Simulated container logs, so `kubectl logs` and `helm-mlops logs` stream through the real
  # API server (kube-apiserver -> kwok's kubelet endpoint) for every pod of the cluster.
  logs="$KWOK_WORKDIR/pod-$name.log"
  printf -- '---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: simulated-logs\nspec:\n  selector: {}\n  logs:\n    - logsFile: %s\n      follow: false\n' "$logs"
}

up() {
  case "${REAL_NODES:-0}" in
    0|""|1) ;;
    *) printf '[cluster] error: REAL_NODES=%s: only 0 or 1 real node is supported\n' "$REAL_NODES" >&2; exit 2 ;;
  esac
  if [ ! -x "$bin/kwokctl" ] || [ ! -f "$dir/stages/.complete" ]; then
    die "cluster binaries missing: run make cluster-tools"
  fi
  [ -n "$kubectl" ] || die "kubectl missing: run make tools"
  mkdir -p "$KWOK_WORKDIR"
  config="$KWOK_WORKDIR/config-$name.yaml"
  write_config > "$config.new"
  # A running cluster is reused only when it was created from the same configuration: one that an
  # older cluster.sh created (e.g. before kwok served PortForward objects) is recreated.
  if exists && healthy && cmp -s "$config.new" "$config"; then
    rm -f "$config.new"
    log "cluster $name already running; kubeconfig: $kubeconfig"
    real_node
    return 0
  fi
  bash "$here/real-node.sh" down >/dev/null 2>&1 || true
  if exists; then
    if healthy; then log "cluster $name runs an older configuration: recreating it"; fi
    "$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1 || true
  fi
  mv "$config.new" "$config"
  cp "$here/kwok/pod.log" "$KWOK_WORKDIR/pod-$name.log"
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
  real_node
}

# REAL_NODES=1: one real node beside the simulated ones (hack/real-node.sh).
real_node() {
  if [ "${REAL_NODES:-0}" = 1 ]; then bash "$here/real-node.sh" up; fi
}

case "${1:-}" in
  up) up ;;
  down) bash "$here/real-node.sh" down
        exists && "$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1; rm -f "$kubeconfig"; log "cluster $name deleted" ;;
  status) if healthy; then kc get nodes; else echo "cluster $name is not running"; exit 1; fi ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2 ;;
esac
