#!/usr/bin/env bash
# Debian packages the tests start for real on 127.0.0.1: PostgreSQL (backend store), wrk (load).
# Installs only what is missing; needs root or sudo for apt-get.
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v wrk >/dev/null || need+=(wrk)
[ ${#need[@]} -eq 0 ] && { echo "[system-deps] present"; exit 0; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "[system-deps] installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a cluster of its own; the tests run private instances instead.
$sudo service postgresql stop >/dev/null 2>&1 || true
