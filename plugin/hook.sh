#!/bin/sh
# Install and update hook of the helm plugin (plugin.yaml `hooks`): builds the virtualenv that
# plugin/run.sh runs helm-mlops from, $HELM_PLUGIN_DIR/.plugin-venv, with `pip install` of the package
# from the plugin directory (not editable: the wheel carries charts/ and values-presets/, setup.py).
#
#   sh plugin/hook.sh install|update
#
# Environment:
#   HELM_MLOPS_PYTHON=PATH  the Python to use (3.11 or newer); default: the first of python3.13,
#                           python3.12, python3.11, python3, python on PATH that is 3.11 or newer
#   HELM_MLOPS_WHEELS=DIR   offline: pip install --no-index --find-links DIR; DIR must hold the
#                           runtime dependencies and the build backend (setuptools>=77, wheel)
#   HELM_MLOPS_SKIP_VENV=1  build nothing: run.sh then uses $HELM_PLUGIN_DIR/.venv or helm-mlops on PATH
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and the other PIP_* variables: read by pip itself
#
# install and update do the same: build a new virtualenv beside the current one, check that it runs,
# then switch the .plugin-venv link to it in one rename, so a failed update leaves the old one working.
# The venvs are $HELM_PLUGIN_DIR/.plugin-venv-*, or $HELM_PLUGIN_DIR/.git/helm-mlops-plugin/.plugin-venv-*
# when the plugin directory is a git checkout (see below).
# Nothing is written outside the plugin directory but a temporary build copy (removed on exit); pip
# runs with --no-cache-dir.
set -eu

action=${1:-install}
case $action in
  install | update) ;;
  *)
    echo "usage: sh plugin/hook.sh install|update" >&2
    exit 2
    ;;
esac

say() { printf 'helm-mlops: %s\n' "$*"; }
die() {
  printf 'helm-mlops: error: %s\n' "$*" >&2
  exit 1
}

# The physical path: the console scripts' #! lines must not go through a link that helm may remove
# (a plugin installed from a directory is a link to it).
dir=$(CDPATH='' cd -- "${HELM_PLUGIN_DIR:-$(dirname -- "$0")/..}" && pwd -P)
# Where the virtualenvs live (plugin/run.sh looks in the same place): in a git checkout, under .git/.
# `helm plugin update` of a plugin installed from a git URL runs `git clean -x -d -f -f` in the plugin
# directory before the update hook (all of Helm 3.17, 3.18 and 4), which removes every untracked or
# ignored file; only .git/ survives it, so only there can a failed update leave the old venv working.
if [ -d "$dir/.git" ]; then home=$dir/.git/helm-mlops-plugin; else home=$dir; fi
link=$home/.plugin-venv

case ${HELM_MLOPS_SKIP_VENV:-} in
  '' | 0) ;;
  *)
    say "$action: HELM_MLOPS_SKIP_VENV is set: no virtualenv built; helm mlops runs $dir/.venv/bin/helm-mlops (a checkout after make setup) or helm-mlops from PATH"
    exit 0
    ;;
esac

# python_version CMD: prints CMD's version and succeeds when it runs and is 3.11 or newer.
python_version() {
  "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

if [ -n "${HELM_MLOPS_PYTHON:-}" ]; then
  python=$HELM_MLOPS_PYTHON
  if ! version=$(python_version "$python"); then
    if [ -n "$version" ]; then found="it is Python $version"; else found="it does not run"; fi
    die "HELM_MLOPS_PYTHON=$python is not a Python 3.11 or newer ($found): point HELM_MLOPS_PYTHON at one (or unset it), then run: sh $dir/plugin/hook.sh $action"
  fi
else
  python=
  for candidate in python3.13 python3.12 python3.11 python3 python; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if version=$(python_version "$path"); then
      python=$path
      break
    fi
  done
  [ -n "$python" ] ||
    die "no Python 3.11 or newer found (tried python3.13, python3.12, python3.11, python3, python on PATH): install one or set HELM_MLOPS_PYTHON to its path, then run: sh $dir/plugin/hook.sh $action"
fi
say "$action: Python $version ($python)"

set --
if [ -n "${HELM_MLOPS_WHEELS:-}" ]; then
  wheels=$(CDPATH='' cd -- "$HELM_MLOPS_WHEELS" 2>/dev/null && pwd) ||
    die "HELM_MLOPS_WHEELS=$HELM_MLOPS_WHEELS is not a directory"
  set -- --no-index --find-links "$wheels"
  source="offline, wheels from $wheels"
elif [ -n "${PIP_INDEX_URL:-}" ]; then
  source="package index from PIP_INDEX_URL"
else
  source="pip's default package index"
fi

new=
build=
cleanup() {
  [ -z "$new" ] || rm -rf "$new"
  [ -z "$build" ] || rm -rf "$build"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# The package is built from a copy of what plugin/files lists, so no build/ or *.egg-info lands in
# the plugin directory (or in the checkout it links to) and no stale build output goes into the wheel.
build=$(mktemp -d "${TMPDIR:-/tmp}/helm-mlops-build.XXXXXX")
while IFS= read -r entry; do
  case $entry in '' | '#'*) continue ;; esac
  [ -e "$dir/$entry" ] || continue
  cp -RL "$dir/$entry" "$build/$entry"
done <"$dir/plugin/files"
find "$build" \( -name __pycache__ -o -name '*.py[cod]' -o -name .pytest_cache -o -name .mypy_cache \
  -o -name .ruff_cache -o -name '*.egg-info' \) -prune -exec rm -rf {} +

mkdir -p "$home"
new=$(mktemp -d "$home/.plugin-venv-XXXXXX")
chmod 755 "$new" # mktemp makes it 0700
say "$action: creating a virtualenv in $new"
"$python" -m venv "$new" ||
  die "'$python -m venv' failed (on Debian and Ubuntu: apt install python3-venv): install the venv module, or set HELM_MLOPS_PYTHON to another Python 3.11 or newer"

say "$action: pip install of helm-mlops and its dependencies ($source)"
# --no-compile: byte-compiling every dependency (kubernetes alone has thousands of modules) doubles the
# install time; Python compiles what helm-mlops imports on first use instead.
"$new/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-cache-dir --no-compile \
  "$@" "$build" ||
  die "pip install failed (see above); the plugin's previous virtualenv, if any, is unchanged"
"$new/bin/helm-mlops" --version >/dev/null || die "$new/bin/helm-mlops does not run"

# Switch the link in one rename (os.replace): helm mlops runs the old venv or the new one, never none.
"$new/bin/python" - "$link" "${new##*/}" <<'PY'
import os
import sys

link, target = sys.argv[1], sys.argv[2]
if os.path.isdir(link) and not os.path.islink(link):  # a plain directory: move it aside, removed below
    os.rename(link, f"{link}-previous")
tmp = f"{link}.{os.getpid()}"
os.symlink(target, tmp)
os.replace(tmp, link)
PY
current=$new
new=
for old in "$home"/.plugin-venv-*; do
  [ "$old" = "$current" ] || rm -rf "$old"
done
say "$action: done: $link -> ${current##*/} ($("$current/bin/helm-mlops" --version))"
