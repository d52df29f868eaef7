# Shared helpers for hack/*.sh. Source after versions.env.
# shellcheck shell=bash
HELM_MLOPS_CACHE=${HELM_MLOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/helm-mlops}

log() { printf '[%s %s] %s\n' "${LOG_TAG:-hack}" "$(date +%H:%M:%S)" "$*"; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-hack}" "$*" >&2; exit 1; }

# gomod_prepare NAME MODULE@VERSION PKG... : enter a throwaway module under the cache that requires
# MODULE@VERSION and imports PKG..., so `go build` can build them. `go install pkg@version` is not
# used: it refuses modules with replace directives and asks the proxy for a version list (for
# deprecation notices) that some modules do not serve.
gomod_prepare() {
  local name=$1 modver=$2; shift 2
  local d="$HELM_MLOPS_CACHE/build/$name"
  mkdir -p "$d" || die "cannot create $d"
  cd "$d" || die "cannot enter $d"
  [ -f go.mod ] || go mod init "helm-mlops.local/$name" >/dev/null 2>&1
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n'; } > tools.go
  go mod edit -require "$modver"
}

# gomod_build PKG OUT LDFLAGS : build PKG (inside the prepared module) to OUT atomically.
gomod_build() {
  local pkg=$1 out=$2 ldflags=$3
  mkdir -p "$(dirname "$out")"
  CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -tags tools -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg"
  mv "$out.tmp" "$out"
}
