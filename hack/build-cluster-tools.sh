#!/usr/bin/env bash
# Builds the local test cluster's binaries from upstream Go modules into a cache outside the repo:
# kube-apiserver, kube-controller-manager, kube-scheduler, and for the real node kubelet and kube-proxy
# (k8s.io/kubernetes), etcd (go.etcd.io/etcd), kwok/kwokctl (sigs.k8s.io/kwok) plus kwok's upstream
# stage files, and CoreDNS (github.com/coredns/coredns), the real node's cluster DNS. A second run with
# everything present does nothing. The first run takes about 15 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=cluster-tools
# shellcheck source=lib.sh
. "$here/lib.sh"

dir="$HELM_MLOPS_CACHE/kube-$KUBE_VERSION"
bin="$dir/bin"
stages="$dir/stages"
want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd kwok kwokctl coredns)
missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ] && [ -f "$stages/.complete" ]; then
  log "all present in $dir"
  exit 0
fi
command -v go >/dev/null || die "Go is needed to build the cluster binaries (Go 1.24+)"
export GOTOOLCHAIN=local
need() { local m; for m in "${missing[@]}"; do [ "$m" = "$1" ] && return 0; done; return 1; }
start=$(date +%s)

kube_components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
if need kube-apiserver || need kube-controller-manager || need kube-scheduler || need kubelet || need kube-proxy; then
  log "resolving k8s.io/kubernetes@$KUBE_VERSION"
  ( gomod_prepare "kubernetes-$KUBE_VERSION" "k8s.io/kubernetes@$KUBE_VERSION" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
    # k8s.io/kubernetes points its staging modules at ./staging; point them at their published
    # v0.x.y versions instead, one replace per line of upstream's own go.mod.
    upstream_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    staging_version="v0.${KUBE_VERSION#v1.}"
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$upstream_mod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace "$m=$m@$staging_version"
    done
    log "go mod tidy (downloads modules the first time)"
    go mod tidy >/dev/null 2>&1
    ver=k8s.io/component-base/version
    minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    flags="-X $ver.gitVersion=$KUBE_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"
    flags="$flags -X $ver.buildDate=1970-01-01T00:00:00Z -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
    for c in "${kube_components[@]}"; do
      need "$c" || continue
      log "building $c (several minutes on 2 cores)"
      gomod_build "k8s.io/kubernetes/cmd/$c" "$bin/$c" "$flags"
    done )
fi

if need etcd; then
  log "building etcd $ETCD_VERSION"
  ( gomod_prepare "etcd-$ETCD_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3
    go mod tidy >/dev/null 2>&1
    gomod_build go.etcd.io/etcd/server/v3 "$bin/etcd" "" )
fi

if need kwok || need kwokctl || [ ! -f "$stages/.complete" ]; then
  log "building kwok and kwokctl $KWOK_VERSION"
  ( gomod_prepare "kwok-$KWOK_VERSION" "sigs.k8s.io/kwok@$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
    go mod tidy >/dev/null 2>&1
    flags="-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION"
    for c in kwok kwokctl; do need "$c" && gomod_build "sigs.k8s.io/kwok/cmd/$c" "$bin/$c" "$flags"; done
    # kwok's own stage definitions (node, pod, volume), used by hack/cluster.sh.
    src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
    mkdir -p "$stages"
    cp "$src/node/fast/node-initialize.yaml" "$src/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
       "$src/pod/fast/pod-ready.yaml" "$src/pod/fast/pod-delete.yaml" \
       "$src/volume/fast/"{pv-bind,pv-delete,pvc-provision,pvc-delete,storage-class}.yaml "$stages/"
    cat "$src/volume/rbac/role.yaml" <(echo ---) "$src/volume/rbac/role_binding.yaml" > "$stages/volume-rbac.yaml"
    touch "$stages/.complete" )
fi

if need coredns; then
  log "building CoreDNS $COREDNS_VERSION"
  ( gomod_prepare "coredns-$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" github.com/coredns/coredns
    go mod tidy >/dev/null 2>&1
    gomod_build github.com/coredns/coredns "$bin/coredns" "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" )
fi

log "done in $(( $(date +%s) - start ))s: $(cd "$bin" && printf '%s ' *)"
