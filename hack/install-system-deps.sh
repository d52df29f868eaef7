#!/usr/bin/env bash
# Debian packages the tests start for real on 127.0.0.1: PostgreSQL (backend store), wrk (load),
# docker-registry (an OCI registry for helm push/pull and login), gpg (signed charts and plugin
# packages), prometheus (Prometheus and promtool: the alert rules and dashboards are checked against a
# real scrape); and the real node's (hack/real-node.sh):
# containerd, runc, the CNI plugins, iptables (kube-proxy), debootstrap and a static C toolchain
# (build-essential: gcc, libc.a) for its images (hack/build-images.sh).
# Installs only what is missing; needs root or sudo for apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
LOG_TAG=system-deps
# shellcheck source=lib.sh
. "$here/lib.sh"

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v wrk >/dev/null || need+=(wrk)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v gpg >/dev/null || need+=(gpg gpg-agent)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || need+=(prometheus)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v debootstrap >/dev/null || need+=(debootstrap)
{ command -v gcc >/dev/null && compgen -G "/usr/lib/*/libc.a" >/dev/null; } || need+=(build-essential)
if [ ${#need[@]} -eq 0 ]; then log "present"; exit 0; fi
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
log "installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start services of their own; the tests run private instances instead.
for service in postgresql docker-registry containerd prometheus; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
