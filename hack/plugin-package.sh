#!/usr/bin/env bash
# Package the helm plugin (make plugin-package): what plugin/files lists, nothing else (no tests,
# hack/, venvs or caches; in a git checkout, only files git tracks or would add).
#
#   hack/plugin-package.sh [--out DIR] [--sign] [--key KEY]
#
#   --out DIR   where to write (default: dist)
#   --sign      write FILE.prov beside each tarball, signed by gpg (its default key, or --key)
#   --key KEY   the gpg key to sign with (a user id or fingerprint; implies --sign); GNUPGHOME picks
#               another gpg home
#
# Writes, for VERSION from pyproject.toml (plugin.yaml must agree):
#   DIR/helm-mlops-plugin-VERSION.tgz        files under helm-mlops-plugin/: Helm 4 installs it from a
#                                            file or an http(s) URL (with FILE.prov: verified)
#   DIR/helm3/helm-mlops-plugin-VERSION.tgz  the same files at the archive root: the layout Helm 3
#                                            needs; Helm 3 installs a tarball only from an http(s) URL
#                                            served as application/gzip (Helm 4 takes this URL too)
# The .prov is Helm's provenance format (the plugin metadata, then the tarball's sha256, clear-signed);
# `helm plugin install FILE.tgz --keyring PUBRING` (Helm 4) checks it. Tarballs are reproducible
# (sorted, owner 0, file times from SOURCE_DATE_EPOCH, default the last commit) with GNU tar.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
LOG_TAG=plugin-package

out=dist sign=false key=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --sign) sign=true; shift ;;
    --key) key=${2:?--key needs a gpg key}; sign=true; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)
[ -n "$version" ] || die "no version in $root/pyproject.toml"
plugin_version=$(sed -n 's/^version: *//p' "$root/plugin.yaml")
[ "$plugin_version" = "$version" ] ||
  die "plugin.yaml version $plugin_version differs from pyproject.toml's $version"
if $sign; then command -v gpg >/dev/null || die "--sign needs gpg"; fi

mapfile -t entries < <(grep -v -e '^#' -e '^$' "$root/plugin/files")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
name=helm-mlops-plugin
mkdir "$stage/$name"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' file; do
    [ -f "$root/$file" ] || continue # tracked but deleted in the working tree
    mkdir -p "$stage/$name/$(dirname "$file")"
    cp -L "$root/$file" "$stage/$name/$file"
  done < <(git -C "$root" ls-files -z --cached --others --exclude-standard -- "${entries[@]}")
else
  for entry in "${entries[@]}"; do
    [ -e "$root/$entry" ] && cp -RL "$root/$entry" "$stage/$name/"
  done
  find "$stage/$name" \( -name __pycache__ -o -name '*.py[cod]' -o -name '.*_cache' -o -name '*.egg-info' \
    -o -name '.plugin-venv*' \) -prune -exec rm -rf {} +
fi
if [ ! -f "$stage/$name/plugin.yaml" ] || [ ! -f "$stage/$name/plugin/hook.sh" ]; then
  die "the package lacks plugin.yaml or plugin/hook.sh: check plugin/files"
fi

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
tar_flags=()
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
  tar_flags=(--sort=name --owner=0 --group=0 --numeric-owner "--mtime=@$epoch" "--mode=u+rwX,go+rX,go-w")
fi
# Entries are named one by one: Helm 3 refuses an archive with a "./" entry (it creates every
# directory entry and fails on one that exists).
mapfile -t top < <(cd "$stage/$name" && ls -A)

mkdir -p "$out/helm3"
tgz=$out/$name-$version.tgz
flat=$out/helm3/$name-$version.tgz
tar "${tar_flags[@]}" -C "$stage" -cf - "$name" | gzip -n -9 >"$tgz"
tar "${tar_flags[@]}" -C "$stage/$name" -cf - "${top[@]}" | gzip -n -9 >"$flat"

# provenance FILE: FILE.prov in Helm's format, clear-signed with gpg.
provenance() {
  local file=$1 sum
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  { grep -v -e '^#' -e '^$' "$root/plugin.yaml"; printf '\n...\nfiles:\n  %s: sha256:%s\n' "${file##*/}" "$sum"; } |
    gpg --yes --clearsign --digest-algo SHA512 ${key:+--local-user "$key"} --output "$file.prov"
}
rm -f "$tgz.prov" "$flat.prov"
for file in "$tgz" "$flat"; do
  if $sign; then provenance "$file"; fi
  if $sign; then log "wrote $file and $file.prov"; else log "wrote $file"; fi
done
