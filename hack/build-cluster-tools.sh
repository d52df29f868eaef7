#!/usr/bin/env bash
# Builds the local test cluster's binaries from upstream Go modules into a cache outside the repo:
# kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes), etcd (go.etcd.io/etcd)
# and kwok/kwokctl (sigs.k8s.io/kwok). A second run with every binary present does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${HELM_MLOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/helm-mlops}
bin="$cache/kube-$KUBE_VERSION/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl)

missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "cluster-tools: all present in $bin"
  exit 0
fi
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local
step() { printf '[cluster-tools %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

need() { for m in "${missing[@]}"; do [ "$m" = "$1" ] && return 0; done; return 1; }

# A throwaway module per upstream, so `replace` directives can point k8s.io/kubernetes's
# staging modules at their published v0.x.y versions (go install pkg@version refuses replaces).
workdir() { local d="$cache/build/$1"; mkdir -p "$d"; echo "$d"; }

if need kube-apiserver || need kube-controller-manager || need kube-scheduler; then
  d=$(workdir "kubernetes-$KUBE_VERSION")
  cd "$d"
  step "resolving k8s.io/kubernetes@$KUBE_VERSION"
  [ -f go.mod ] || go mod init helm-mlops.local/kubebuild >/dev/null 2>&1
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging_version="v0.${KUBE_VERSION#v1.}"
  # Generate one replace per staging module from upstream's own go.mod (lines "k8s.io/x => ./staging/...").
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$upstream_mod" | awk '{print $1}' | while read -r m; do
    go mod edit -replace "$m=$m@$staging_version"
  done
  go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  step "go mod tidy (downloads modules the first time)"
  go mod tidy >/dev/null
  ver_pkg=k8s.io/component-base/version
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X $ver_pkg.gitVersion=$KUBE_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$minor -X $ver_pkg.gitTreeState=clean -X $ver_pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    need "$c" || continue
    step "building $c (several minutes on 2 cores the first time)"
    go build -tags tools -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c.tmp" "$bin/$c"
  done
fi

if need etcd; then
  d=$(workdir "etcd-$ETCD_VERSION")
  cd "$d"
  [ -f go.mod ] || go mod init helm-mlops.local/etcdbuild >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  step "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy >/dev/null
  step "building etcd"
  go build -tags tools -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

if need kwok || need kwokctl; then
  step "building kwok and kwokctl $KWOK_VERSION"
  ver_pkg=sigs.k8s.io/kwok/pkg/consts
  GOBIN="$bin" go install -ldflags "-s -w -X $ver_pkg.Version=$KWOK_VERSION -X $ver_pkg.KubeVersion=$KUBE_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
fi

step "done: $(ls "$bin" | tr '\n' ' ')"
