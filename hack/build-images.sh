#!/usr/bin/env bash
# Container images of the real test node, built locally (nothing is pulled from a registry) as OCI
# image-layout archives under $HELM_MLOPS_CACHE/images, with the exact references the charts use:
#
#   hack/build-images.sh [build] [python|pause|mlflow|runtime|torch]...   build (all by default)
#   hack/build-images.sh import SOCKET    import every built archive into the containerd at SOCKET
#   hack/build-images.sh list             print the image references
#
# No container engine: a Debian root filesystem from debootstrap is the shared base layer; each image
# adds one layer of its own (pip installs run on the host into the layer's directory); the layers,
# config, manifest and index are written by hack/oci_image.py. A layer is rebuilt only when the hash
# of its recipe (the bash function that builds it, its versions and input files) changes; an archive
# only when its layers or config change. See docs/testing.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=images
# shellcheck source=lib.sh
. "$here/lib.sh"

py=${PY:-python3}
images="$HELM_MLOPS_CACHE/images"
layers="$images/layers"
work="$images/work"
suite=bookworm
# The python the images run: Debian's, behind /usr/local/bin symlinks as in the upstream image.
image_py=/usr/local/bin/python3
image_site=/usr/local/lib/python3.11/dist-packages
image_env=(--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8)

chart_app_version() { sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/$1/Chart.yaml"; }
mlflow_version=$(chart_app_version mlflow)
runtime_version=$(chart_app_version inference-service)
if [ -z "$mlflow_version" ] || [ -z "$runtime_version" ]; then die "no appVersion in charts/*/Chart.yaml"; fi

# The references as containerd names them (python:3.11-slim is docker.io/library/python:3.11-slim).
declare -A REFS=(
  [python]=docker.io/library/python:3.11-slim
  [pause]=registry.k8s.io/pause:3.10
  [mlflow]=ghcr.io/mlflow/mlflow:v$mlflow_version-full
  [runtime]=docker.io/library/helm-mlops-runtime:$runtime_version-sklearn
  [torch]=docker.io/library/helm-mlops-torch:$TORCH_VERSION-cpu
)
ALL=(python pause mlflow runtime torch)

# What the -full MLflow image carries that the chart's stores, auth and metrics use.
MLFLOW_PACKAGES=("mlflow[auth]==$mlflow_version" boto3 "psycopg2-binary" "psycopg[binary]" pymysql
  prometheus-flask-exporter google-cloud-storage azure-storage-blob azure-identity)
# docker/runtime.Dockerfile's install line, with the sklearn flavor's extras.
RUNTIME_PACKAGES=("starlette>=0.46,<2" "uvicorn[standard]>=0.34,<1" "orjson>=3.10,<4"
  "prometheus-client>=0.21,<1" "numpy>=1.26,<3" scikit-learn joblib onnxruntime)

ref_of() { printf '%s\n' "${REFS[$1]}"; }
archive_of() { printf '%s/%s.tar\n' "$images" "$1"; }

# The Debian mirror this machine's apt uses (deb822 .sources first, then sources.list).
debian_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) print $i; break } }' \
      /etc/apt/sources.list | head -n1)
  fi
  [ -n "$uri" ] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  printf '%s\n' "$uri"
}

# ---- layer recipes: each fills the directory $1 with the layer's files ----

recipe_base() {
  local dir=$1
  command -v debootstrap >/dev/null || die "debootstrap is missing (hack/install-system-deps.sh)"
  # netbase and tzdata: what upstream's python:3.11-slim adds to debian:bookworm-slim besides Python.
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,netbase,tzdata \
    "$suite" "$dir" "$(debian_mirror)" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
  # The upstream image's Python lets pip install system-wide: no PEP 668 marker.
  rm -f "$dir"/usr/lib/python3.*/EXTERNALLY-MANAGED
  local name
  for name in python python3 python3.11; do ln -sfn /usr/bin/python3.11 "$dir/usr/local/bin/$name"; done
  for name in pip pip3 pip3.11; do ln -sfn /usr/bin/pip3 "$dir/usr/local/bin/$name"; done
  # Small: no package caches, lists, docs (copyright files stay), man pages, logs; the runtime
  # provides resolv.conf and the hostname.
  rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/lintian "$dir"/var/log/*
  find "$dir/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
  : > "$dir/etc/resolv.conf"
  : > "$dir/etc/hostname"
  # localhost resolves where nothing mounts an /etc/hosts (the kubelet does; `ctr run` does not).
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$dir/etc/hosts"
}

recipe_pause() {
  local dir=$1 kube src tag
  kube=$(GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  src="$kube/build/pause/linux/pause.c"
  tag=$(sed -n 's/^TAG ?= *//p' "$kube/build/pause/Makefile")
  # The flags of upstream's Makefile.
  gcc -Os -Wall -Werror -static -DVERSION="v$tag-helm-mlops" -o "$dir/pause" "$src"
  strip "$dir/pause"
}

# pip_into DIR PACKAGE...: install into the image's dist-packages inside DIR with the host's pip (and
# its configuration), scripts into /usr/local/bin pointing at the image's python, bytecode compiled
# for the paths the files will have in the image.
pip_into() {
  local dir=$1; shift
  local site="$dir$image_site"
  "$py" -m pip install -q --no-compile --no-warn-script-location --no-warn-conflicts --root-user-action=ignore \
    --target "$site" "$@"
  finish_python_layer "$dir"
}

finish_python_layer() {
  local dir=$1 site="$1$image_site"
  mkdir -p "$dir/usr/local/bin"
  if [ -d "$site/bin" ]; then
    cp -a "$site/bin/." "$dir/usr/local/bin/"
    rm -rf "${site:?}/bin"
  fi
  "$py" "$here/oci_image.py" fix-scripts "$dir/usr/local/bin" "$image_py" >/dev/null
  "$py" -m compileall -q -j0 -s "$dir" -p / "$dir" >/dev/null || true
}

recipe_mlflow() { pip_into "$1" "${MLFLOW_PACKAGES[@]}"; }

recipe_runtime() {
  local dir=$1
  pip_into "$dir" "${RUNTIME_PACKAGES[@]}"
  mkdir -p "$dir/opt/helm-mlops/runtime"
  cp -r "$root/charts/inference-service/files/hm_runtime" "$dir/opt/helm-mlops/runtime/"
  find "$dir/opt/helm-mlops/runtime" -name __pycache__ -prune -exec rm -rf {} +
  "$py" -m compileall -q -s "$dir" -p / "$dir/opt/helm-mlops/runtime" >/dev/null
}

recipe_torch() {
  local dir=$1 venv_py
  venv_py=$("$here/torch-env.sh")
  # copy-dists evaluates requirement markers for the Python that runs it: the image's is 3.11.
  "$venv_py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "the torch venv's Python is not 3.11 like the images' (hack/torch-env.sh)"
  # torch (with numpy, which torch.from_numpy and most training code use) and what they require on
  # Linux, copied from the torch venv: no second download. Triton, the GPU kernel compiler (about
  # 1 GB), is left out: CPU-only training never loads it.
  "$venv_py" "$here/oci_image.py" copy-dists "$("$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    "$dir$image_site" "$dir/usr/local/bin" torch numpy --exclude triton >/dev/null
  finish_python_layer "$dir"
}

# ---- cache machinery ----

hash_of() { sha256sum | cut -c1-16; }

# layer NAME RECIPE_INPUTS... : sets $layer_desc to the descriptor of layer NAME, building it with
# recipe_NAME only when the hash of the recipe's code and of RECIPE_INPUTS changed.
layer() {
  local name=$1; shift
  local key desc dir t0 compress=--gzip
  key=$({ declare -f "recipe_$name" pip_into finish_python_layer; printf '%s\n' "$@"; sha256sum < "$here/oci_image.py"; } | hash_of)
  desc="$layers/$name-$key.json"
  layer_desc=$desc
  # Up to date even when its blob was dropped (it lives on in the archive): image() rebuilds the
  # layer if the archive has to be written again.
  if [ -f "$desc" ]; then
    log "layer $name: up to date ($key)"
    return
  fi
  rm -f "$layers/$name"-*
  dir="$work/$name"
  rm -rf "$dir"
  mkdir -p "$dir" "$layers"
  log "layer $name: building ($key)"
  t0=$SECONDS
  "recipe_$name" "$dir"
  # Layers over 1 GiB stay uncompressed: gzip would cost minutes of CPU for little.
  [ "$(du -sm "$dir" | cut -f1)" -lt 1024 ] || compress=
  "$py" "$here/oci_image.py" layer "$dir" "$layers" "$name-$key" $compress > "$desc.tmp"
  mv "$desc.tmp" "$desc"
  rm -rf "$dir"
  log "layer $name: built in $((SECONDS - t0))s, $(du -sh --apparent-size "$layers/$name-$key".tar* | cut -f1)"
}

# image NAME CONFIG_ARG... -- LAYER_DESC... : write the archive of NAME unless its inputs are unchanged.
image() {
  local name=$1; shift
  local cfg=() descs=() ref out key t0
  while [ "$1" != -- ]; do cfg+=("$1"); shift; done
  shift
  descs=("$@")
  ref=$(ref_of "$name")
  out=$(archive_of "$name")
  key=$({ printf '%s\n' "$ref" "${cfg[@]}"; cat "${descs[@]}"; sha256sum < "$here/oci_image.py"; } | hash_of)
  if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$key" ]; then
    log "$ref: up to date ($(du -sh --apparent-size "$out" | cut -f1))"
    return
  fi
  local args=() d blob
  for d in "${descs[@]}"; do
    blob=$(sed -n 's/^ *"path": "\(.*\)",\{0,1\}$/\1/p' "$d")
    if [ ! -f "$blob" ]; then
      log "$ref: layer $(basename "$d" .json) has to be built again"
      rm -f "$d"
      rebuild=1
    fi
  done
  [ -z "$rebuild" ] || return 0
  t0=$SECONDS
  for d in "${descs[@]}"; do args+=(--layer "$d"); done
  "$py" "$here/oci_image.py" archive "$out" --ref "$ref" "${cfg[@]}" "${args[@]}"
  printf '%s\n' "$key" > "$out.inputs"
  log "$ref: archive written in $((SECONDS - t0))s, $(du -sh --apparent-size "$out" | cut -f1)"
  # An uncompressed (over 1 GiB) layer lives on in the archive only: not twice on disk. Rebuilding
  # the archive (a new base, say) rebuilds the layer.
  for d in "${descs[@]}"; do rm -f "${d%.json}.tar"; done
}

rebuild=
build_one() {
  local name=$1 t0=$SECONDS base
  case $name in
    pause)
      layer pause "$KUBE_VERSION" "$(gcc --version | head -n1)"
      image pause --entrypoint '["/pause"]' --user 65535:65535 -- "$layer_desc" ;;
    *)
      layer base "$suite"
      base=$layer_desc
      case $name in
        python)
          image python "${image_env[@]}" --cmd '["python3"]' -- "$base" ;;
        mlflow)
          layer mlflow "$("$py" -V)" "${MLFLOW_PACKAGES[@]}"
          image mlflow "${image_env[@]}" --cmd '["python3"]' -- "$base" "$layer_desc" ;;
        runtime)
          layer runtime "$("$py" -V)" "${RUNTIME_PACKAGES[@]}" \
            "$(cd "$root/charts/inference-service/files" && find hm_runtime -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum)"
          image runtime "${image_env[@]}" --env PYTHONPATH=/opt/helm-mlops/runtime --env HOME=/tmp \
            --user 1000:1000 --entrypoint '["python3", "-m", "hm_runtime"]' -- "$base" "$layer_desc" ;;
        torch)
          layer torch "$TORCH_VERSION" "$(cat "$here/torch-env-requirements.txt")"
          image torch "${image_env[@]}" --cmd '["python3"]' -- "$base" "$layer_desc" ;;
        *) die "unknown image $name (one of: ${ALL[*]})" ;;
      esac ;;
  esac
  if [ -n "$rebuild" ]; then
    rebuild=
    build_one "$name"
    return
  fi
  log "$name done in $((SECONDS - t0))s"
}

cmd_build() {
  [ "$(id -u)" = 0 ] || die "building needs root (debootstrap, file ownership in the layers)"
  mkdir -p "$images" "$work"
  exec 9> "$images/.lock"
  flock 9
  local name
  [ $# -gt 0 ] || set -- "${ALL[@]}"
  for name in "$@"; do build_one "$name"; done
  rm -rf "$work"
}

cmd_import() {
  local socket=${1:-} name out want have
  [ -n "$socket" ] || die "usage: $0 import SOCKET"
  for name in "${ALL[@]}"; do
    out=$(archive_of "$name")
    [ -f "$out" ] || die "$out is missing: run $0 build first"
    # Skip an image containerd already holds at the same manifest digest (index.json comes first in
    # the archive, so reading it costs nothing; the PyTorch image takes a minute to import).
    want=$(tar --occurrence=1 -xOf "$out" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
    have=$(ctr --address "$socket" -n k8s.io images ls "name==$(ref_of "$name")" 2>/dev/null | awk 'NR == 2 { print $3 }')
    if [ -n "$want" ] && [ "$want" = "$have" ]; then
      log "$(ref_of "$name"): already imported"
      continue
    fi
    log "importing $(ref_of "$name")"
    ctr --address "$socket" -n k8s.io images import --all-platforms "$out" >/dev/null
  done
}

cmd_list() {
  local name
  for name in "${ALL[@]}"; do ref_of "$name"; done
}

case ${1:-build} in
  build) shift || true; cmd_build "$@" ;;
  import) shift; cmd_import "$@" ;;
  list) cmd_list ;;
  *) die "usage: $0 [build [IMAGE...]] | import SOCKET | list" ;;
esac
