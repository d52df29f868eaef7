#!/usr/bin/env bash
# A real node beside kwok's simulated ones: Debian's containerd + runc, the CNI bridge, a kubelet and
# kube-proxy built from k8s.io/kubernetes, CoreDNS as the cluster DNS and a local-path provisioner,
# all under the cache, registered with the cluster of hack/cluster.sh.
#   real-node.sh up | down | status
# Needs root (containerd, mounts, the bridge, iptables). Pods reach the node only when they select
# it and tolerate its taint (tests/support/realnode.py gives the values):
#   nodeSelector: {helm-mlops.dev/real-node: "true"}
#   tolerations: [{key: helm-mlops.dev/real-node, operator: Exists, effect: NoSchedule}]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=real-node
# shellcheck source=lib.sh
. "$here/lib.sh"

name=${HELM_MLOPS_CLUSTER:-helm-mlops}
bin="$HELM_MLOPS_CACHE/kube-$KUBE_VERSION/bin"
kwok_dir="$HELM_MLOPS_CACHE/kwok"
kubeconfig="$kwok_dir/kubeconfig-$name"
pki="$kwok_dir/clusters/$name/pki"
d="$HELM_MLOPS_CACHE/real-node/$name"
node=${HELM_MLOPS_REAL_NODE:-real-node-0}
sock="$d/containerd/containerd.sock"
# The pod network: a /24 of 10.244/16 on the bridge; the gateway (.1) is this machine on the bridge,
# where tests serve what pods would download (wheels, model files, S3). Service IPs come from the
# API server's default range (10.0.0.0/24); the cluster DNS is 10.0.0.10.
bridge=hmcni0
pod_cidr=${HELM_MLOPS_POD_CIDR:-10.244.0.0/24}
gateway=${pod_cidr%.*}.1
dns_ip=10.0.0.10
kubectl=$(command -v "$root/.tools/bin/kubectl" || command -v kubectl || true)
kc() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

# A pid file's process is alive and still ours (its command line names our directory): after a
# reboot or a crash the number may belong to anything else, which is never signalled.
is_ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"; }
pid_alive() { [ -f "$d/pids/$1.pid" ] && is_ours "$(cat "$d/pids/$1.pid")" "$d/"; }

# The cluster whose real node runs on this machine, if another than ours (one per machine: the
# bridge, the pod network, the kubelet's ports and the iptables chains are shared).
other_node() {
  local f dir
  for f in "$HELM_MLOPS_CACHE"/real-node/*/pids/kubelet.pid; do
    dir=$(dirname "$(dirname "$f")")
    [ -f "$f" ] && [ "$dir" != "$d" ] && is_ours "$(cat "$f")" "$dir/" && { basename "$dir"; return 0; }
  done
  return 1
}

# start NAME CMD...: run CMD in the background, its output in $d/logs/NAME.log, its pid in a file.
start() {
  local what=$1; shift
  nohup "$@" >"$d/logs/$what.log" 2>&1 </dev/null &
  echo $! >"$d/pids/$what.pid"
}

wait_for() { # wait_for SECONDS WHAT CMD...
  local secs=$1 what=$2; shift 2
  local _
  for _ in $(seq $((secs * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  tail -20 "$d/logs/$what.log" >&2 || true
  die "$what did not come up in ${secs}s (log: $d/logs/$what.log)"
}

preflight() {
  [ "$(id -u)" = 0 ] || die "the real node needs root (containerd, mounts, the CNI bridge, iptables)"
  local b
  for b in containerd containerd-shim-runc-v2 runc ctr iptables; do
    command -v "$b" >/dev/null || die "$b missing: run make system-deps"
  done
  [ -x /usr/lib/cni/bridge ] || die "CNI plugins missing (/usr/lib/cni): run make system-deps"
  for b in kubelet kube-proxy coredns; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: run make cluster-tools"
  done
  [ -f "$kubeconfig" ] || die "the cluster $name is not running: run hack/cluster.sh up first"
  [ -x "$root/.venv/bin/python" ] || die ".venv missing: run make setup"
}

write_configs() {
  mkdir -p "$d"/{containerd,kubelet,cni/net.d,logs,pids,pod-logs,volumes}
  cat >"$d/containerd/config.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # Writing a negative oom_score_adj is denied on this machine kind; without this every sandbox
  # fails with runc's "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
EOF
  # No masquerading: pods talk to each other, to Services and to this machine (the gateway).
  cat >"$d/cni/net.d/10-helm-mlops.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "helm-mlops",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr", "gateway": "$gateway"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$d/cni/ipam"}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$d/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$sock
# cgroup v1 in hybrid mode, no systemd, no QoS hierarchy: what this machine kind allows.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: /etc/resolv.conf
podLogsDir: $d/pod-logs
# The API server calls the kubelet (logs, exec, port-forward) with the cluster's admin client
# certificate; anything else is refused.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
readOnlyPort: 0
healthzPort: 10248
serializeImagePulls: false
# The images are imported once and cannot be pulled again: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi"}
registerWithTaints:
  - {key: helm-mlops.dev/real-node, value: "true", effect: NoSchedule}
EOF
  cat >"$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node
clientConnection: {kubeconfig: $kubeconfig}
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  cat >"$d/Corefile" <<EOF
.:1053 {
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# The cluster DNS: CoreDNS runs on this machine; the kube-dns Service's endpoints point at it, so
# pods resolve through a ClusterIP and kube-proxy like on any cluster.
dns_objects() {
  local ip=$1
  cat <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, helm-mlops.dev/real-node: "true"}
spec:
  clusterIP: $dns_ip
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, helm-mlops.dev/real-node: "true"}
addressType: IPv4
endpoints:
  - addresses: [$ip]
    conditions: {ready: true}
ports:
  - {name: dns, port: 1053, protocol: UDP}
  - {name: dns-tcp, port: 1053, protocol: TCP}
EOF
}

up() {
  preflight
  if pid_alive kubelet && pid_alive containerd && pid_alive kube-proxy && pid_alive coredns \
     && pid_alive provisioner && kc get node "$node" >/dev/null 2>&1; then
    log "real node $node already running"
    return 0
  fi
  local other t0 t1 host_ip
  if other=$(other_node); then
    die "a real node of cluster $other runs on this machine (one at a time): stop it with HELM_MLOPS_CLUSTER=$other hack/cluster.sh down"
  fi
  down quiet
  # A failure half-way leaves nothing running.
  trap 'down quiet' EXIT
  t0=$(date +%s.%N)
  write_configs
  # Bridged pod traffic must pass iptables (ClusterIPs between pods of the same bridge).
  [ -e /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null \
    || die "the br_netfilter kernel module is missing (modprobe br_netfilter failed)"
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null
  # The bridge exists before the first pod, so the tests can serve on the gateway address at once.
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  ip addr replace "$gateway/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up
  local t_images
  t_images=$(date +%s)
  bash "$here/build-images.sh" >"$d/logs/images.log" 2>&1 || { tail -20 "$d/logs/images.log" >&2; die "building the images failed (log: $d/logs/images.log)"; }
  log "images ready in $(( $(date +%s) - t_images ))s (hack/build-images.sh; log: $d/logs/images.log)"
  start containerd containerd --config "$d/containerd/config.toml"
  wait_for 30 containerd ctr --address "$sock" version
  t_images=$(date +%s)
  bash "$here/build-images.sh" import "$sock" >>"$d/logs/images.log" 2>&1 || { tail -20 "$d/logs/images.log" >&2; die "importing the images failed (log: $d/logs/images.log)"; }
  log "images imported into containerd in $(( $(date +%s) - t_images ))s"
  host_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [ -n "$host_ip" ] || host_ip=$(hostname -I | tr ' ' '\n' | grep -v -e "^$gateway\$" -e '^$' | head -n1)
  [ -n "$host_ip" ] || die "no address of this machine for the node (no default route, no address but the bridge's)"
  # CoreDNS answers on the node address (where the kube-dns endpoints point) and loopback only.
  sed -i "s/^    errors$/    bind $host_ip 127.0.0.1\n    errors/" "$d/Corefile"
  start kubelet "$bin/kubelet" --config "$d/kubelet/config.yaml" --kubeconfig "$kubeconfig" \
    --root-dir "$d/kubelet/root" --hostname-override "$node" --node-ip "$host_ip" \
    --node-labels "helm-mlops.dev/real-node=true"
  start kube-proxy "$bin/kube-proxy" --config "$d/kube-proxy.yaml"
  start coredns "$bin/coredns" -conf "$d/Corefile"
  start provisioner "$root/.venv/bin/python" "$here/local_path_provisioner.py" \
    --kubeconfig "$kubeconfig" --node "$node" --root "$d/volumes"
  dns_objects "$host_ip" | kc apply -f - >/dev/null
  kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
provisioner: helm-mlops.dev/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
  wait_for 90 kubelet kc wait --for=condition=Ready "node/$node" --timeout=1s
  wait_for 30 coredns curl -fsS http://127.0.0.1:8181/ready
  t1=$(date +%s.%N)
  log "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "node ready in %.1fs", b - a }'): $node ($host_ip), pods on $pod_cidr via $bridge, gateway $gateway, DNS $dns_ip"
  trap - EXIT
}

# The chains the kubelet made (KUBE-FIREWALL, the canaries and the hint) and whatever kube-proxy's
# own cleanup left: the rules that jump to them, then the chains.
clean_iptables() {
  local cmd table rule chain
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    for table in filter nat mangle; do
      "$cmd-save" -t "$table" 2>/dev/null | { grep -E '^-A [^ ]+ .*-j KUBE-' || true; } | { grep -v '^-A KUBE-' || true; } \
        | while read -r rule; do
            # xargs splits the rule as iptables-save quoted it (comments), and runs nothing from it.
            printf '%s\n' "${rule#-A }" | xargs "$cmd" -t "$table" -D 2>/dev/null || true
          done
      for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
        "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
        "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# Stop everything and leave nothing behind: containers, processes, mounts, the bridge, network
# namespaces, kube-proxy's iptables rules.
down() {
  local quiet=${1:-} what pid ns other=""
  [ -d "$d" ] || return 0
  other=$(other_node) || true
  if [ -S "$sock" ] && pid_alive containerd; then
    # Kill the containers while containerd still knows them.
    for pid in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$pid" >/dev/null 2>&1 || true
    done
  fi
  for what in provisioner coredns kube-proxy kubelet containerd; do
    if pid_alive "$what"; then kill "$(cat "$d/pids/$what.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  for what in provisioner coredns kube-proxy kubelet containerd; do
    if pid_alive "$what"; then kill -9 "$(cat "$d/pids/$what.pid")" 2>/dev/null || true; fi
    rm -f "$d/pids/$what.pid"
  done
  # The shims of our containerd (they outlive it) and whatever still runs under them.
  for pid in $(pgrep -x containerd-shim-runc-v2 || true); do
    is_ours "$pid" "-address $sock " || continue
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  done
  # Mounts under our directories, deepest first.
  if [ -d "$d" ]; then
    { findmnt -rn -o TARGET | grep -F "$d/" || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  # What the node shares with the machine, unless another cluster's real node runs and uses it: the
  # iptables chains (kube-proxy's and the kubelet's), the network namespaces containerd's CRI created
  # (cni-<uuid>, now empty: a live pod of another runtime keeps its pause process there), the bridge.
  if [ -z "$other" ]; then
    if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
    clean_iptables
    for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && ip netns delete "$ns" 2>/dev/null || true
    done
    ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge" 2>/dev/null || true
  fi
  rm -rf "$d/cni/ipam" "$d/containerd/state" "$d/kubelet/root/pods" "$d/pod-logs"
  if [ -f "$kubeconfig" ] && [ -n "$kubectl" ]; then
    kc delete node "$node" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kc -n kube-system delete service kube-dns --ignore-not-found >/dev/null 2>&1 || true
    kc -n kube-system delete endpointslice kube-dns-host --ignore-not-found >/dev/null 2>&1 || true
  fi
  [ "$quiet" = quiet ] || log "real node $node removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    for what in containerd kubelet kube-proxy coredns provisioner; do
      if pid_alive "$what"; then echo "$what: running"; else echo "$what: stopped"; fi
    done
    kc get node "$node" -o wide 2>/dev/null || true ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
