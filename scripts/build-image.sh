#!/usr/bin/env bash
# Build the vpccni node image (deploy/image/Containerfile) with podman, needing no registry.
#
#   scripts/build-image.sh [--tag REF] [--base-image REF --builder-image REF] [--cache DIR]
#
# Default bases: Debian bookworm made here with `debootstrap --variant=minbase` from Debian's
# mirror (VPCCNI_DEBIAN_MIRROR, default http://deb.debian.org/debian): a runtime base (python3,
# iproute2, iptables, ca-certificates) and a builder base (+ python3-venv, golang-go). Their
# rootfs tarballs are cached under the cache dir (VPCCNI_IMAGE_CACHE, default
# /var/cache/vpccni-image), keyed by their package lists, so a second build skips debootstrap;
# they are imported as localhost/vpccni-base:bookworm and localhost/vpccni-build:bookworm.
# The runtime wheels pinned in deploy/image/requirements.txt are downloaded on the host (pip,
# hashes required) into a wheelhouse, vpccni's own wheel is built with `pip wheel --no-deps .`,
# and the image is built from a small context (never the repository and its .venv) with
# `podman build --pull=never --network=none`: its RUN steps need no network.
#
# --base-image / --builder-image: registry bases instead (e.g. debian:bookworm-slim and
# golang:1.19-bookworm); no debootstrap, and the build gets the network for apt-get to add what
# those bases lack.
#
# podman: PODMAN_ROOT / PODMAN_RUNROOT (private storage), PODMAN_STORAGE_DRIVER (e.g. vfs),
# PODMAN_NETNS (run podman in that network namespace: nsenter --net=/var/run/netns/NAME),
# PODMAN_RUNTIME (default runc when installed: crun fails on hybrid cgroup hosts), PODMAN_ARGS
# (global flags; default "--cgroup-manager cgroupfs --events-backend file"). Without
# CONTAINERS_CONF a containers.conf with a nofile ulimit of 20000 is used (podman's default
# 1048576 fails where CAP_SYS_RESOURCE is missing).
#
# Prints the timings of each step and, last, `image REF id ID size BYTES`.
set -euo pipefail
shopt -s inherit_errexit
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tag="" base_image="" builder_image=""
cache="${VPCCNI_IMAGE_CACHE:-/var/cache/vpccni-image}"
mirror="${VPCCNI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "build-image: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --base-image) base_image="${2:?--base-image needs a value}"; shift 2 ;;
    --builder-image) builder_image="${2:?--builder-image needs a value}"; shift 2 ;;
    --cache) cache="${2:?--cache needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1'; see --help" ;;
  esac
done
if [ -n "$base_image" ] && [ -z "$builder_image" ]; then builder_image="golang:1.19-bookworm"; fi
if [ -n "$builder_image" ] && [ -z "$base_image" ]; then base_image="debian:bookworm-slim"; fi

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/vpccni/__init__.py)"
[ -n "$version" ] || die "cannot read __version__ from src/vpccni/__init__.py"
tag="${tag:-localhost/vpccni:$version}"
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
case "$arch" in
  amd64) wheel_arch=x86_64 ;;
  arm64) wheel_arch=aarch64 ;;
  *) die "unsupported architecture $arch (amd64 or arm64)" ;;
esac
[ -f plugin-static/go.mod ] && [ -f scripts/build-plugin.sh ] \
  || die "the static plugin's source is missing (plugin-static/go.mod, scripts/build-plugin.sh)"
command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

podman_cmd=(podman)
if [ -n "${PODMAN_NETNS:-}" ]; then
  podman_cmd=(nsenter "--net=/var/run/netns/$PODMAN_NETNS" podman)
fi
[ -z "${PODMAN_ROOT:-}" ] || podman_cmd+=(--root "$PODMAN_ROOT")
[ -z "${PODMAN_RUNROOT:-}" ] || podman_cmd+=(--runroot "$PODMAN_RUNROOT")
[ -z "${PODMAN_STORAGE_DRIVER:-}" ] || podman_cmd+=(--storage-driver "$PODMAN_STORAGE_DRIVER")
read -r -a extra <<< "${PODMAN_ARGS---cgroup-manager cgroupfs --events-backend file}"
podman_cmd+=("${extra[@]}")
runtime="${PODMAN_RUNTIME:-}"
if [ -z "$runtime" ] && command -v runc >/dev/null; then runtime=runc; fi

mkdir -p "$cache"
work="$(mktemp -d "${TMPDIR:-/tmp}/vpccni-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -z "${CONTAINERS_CONF:-}" ]; then
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' \
    > "$work/containers.conf"
  export CONTAINERS_CONF="$work/containers.conf"
fi
podman() { "${podman_cmd[@]}" "$@"; }

now() { date +%s.%N; }
since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%6.1f s", end - start }'; }
timings=()
timed() {  # timed LABEL COMMAND...: run it, remember how long it took
  local label="$1" start; shift
  start="$(now)"
  "$@" || return
  timings+=("$(printf '%-34s %s' "$label" "$(since "$start")")")
}

# --- (a) the Debian bases -----------------------------------------------------------------
runtime_packages="python3,iproute2,iptables,ca-certificates"
builder_packages="python3,python3-venv,golang-go,ca-certificates"

rootfs() {  # rootfs NAME PACKAGES -> prints the cached tarball's path (made when missing)
  local name="$1" packages="$2" key tarball dir
  key="$(printf '%s\n' "$suite" "$arch" "$mirror" minbase "$packages" v2 | sha256sum | cut -c1-16)"
  tarball="$cache/rootfs-$name-$suite-$arch-$key.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (or pass --base-image)"
    dir="$cache/rootfs-$name.tmp"
    rm -rf "$dir"
    echo "build-image: debootstrap $suite ($name: $packages) from $mirror" >&2
    if ! debootstrap --variant=minbase --arch="$arch" --include="$packages" "$suite" "$dir" \
         "$mirror" > "$cache/debootstrap-$name.log" 2>&1; then
      umount "$dir/proc" "$dir/sys" 2>/dev/null || true
      tail -20 "$cache/debootstrap-$name.log" >&2
      die "debootstrap failed; the whole log is $cache/debootstrap-$name.log"
    fi
    # no package caches, lists, manuals, docs or message translations (copyright notices stay)
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
      "$dir"/var/lib/apt/lists/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
      "$dir"/usr/share/locale/*/ "$dir"/var/log/* "$dir"/tmp/* 2>/dev/null || true
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
    tar --numeric-owner --sort=name --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
      -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  echo "$tarball"
}

import_base() {  # import_base TARBALL REF: podman import unless REF already holds TARBALL
  local tarball="$1" ref="$2" key have
  key="$(basename "$tarball" .tar)"
  have="$(podman image inspect --format '{{index .Labels "vpccni.rootfs"}}' "$ref" 2>/dev/null || true)"
  if [ "$have" != "$key" ]; then
    podman import --quiet --change "LABEL vpccni.rootfs=$key" "$tarball" "$ref" >/dev/null
  fi
}

network=(--network=none)
if [ -z "$base_image" ]; then
  base_ref=localhost/vpccni-base:bookworm
  builder_ref=localhost/vpccni-build:bookworm
  start="$(now)"
  runtime_tar="$(rootfs base "$runtime_packages")"
  builder_tar="$(rootfs build "$builder_packages")"
  timings+=("$(printf '%-34s %s' "debootstrap (or its cache)" "$(since "$start")")")
  timed "podman import of the bases" import_base "$runtime_tar" "$base_ref"
  timed "podman import of the builder" import_base "$builder_tar" "$builder_ref"
else
  base_ref="$base_image"
  builder_ref="$builder_image"
  network=()  # registry bases may lack packages: apt-get needs the network
fi

# --- (b) the wheelhouse ---------------------------------------------------------------------
context="$work/context"
mkdir -p "$context/wheels" "$context/scripts"
wheels="$cache/wheels-$wheel_arch"
download() {
  "$python" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: --platform "manylinux2014_$wheel_arch" --python-version 3.11 \
    --implementation cp --abi cp311 -r deploy/image/requirements.txt -d "$wheels"
  "$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$context/wheels" . \
    > "$work/pip-wheel.log" 2>&1 || { cat "$work/pip-wheel.log" >&2; return 1; }
}
timed "pip download + pip wheel" download
cp "$wheels"/*.whl "$context/wheels/"
cp -r plugin-static "$context/plugin-static"
cp scripts/build-plugin.sh "$context/scripts/"
cp deploy/image/requirements.txt "$context/requirements.txt"
cp deploy/image/Containerfile "$context/Containerfile"

# --- (c) the image --------------------------------------------------------------------------
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="${VPCCNI_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || echo "vpccni (local build)")}"
build=(build --pull=never --layers=false --timestamp 0 "${network[@]}" -f "$context/Containerfile"
  --build-arg "BASE=$base_ref" --build-arg "BUILDER=$builder_ref" --build-arg "GOARCH=$arch"
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "SOURCE=$source_url" -t "$tag")
[ -z "$runtime" ] || build+=(--runtime "$runtime")
timed "podman build" podman "${build[@]}" "$context" > "$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log" >&2; die "podman build failed (log above)"; }

read -r id size <<< "$(podman image inspect --format '{{.Id}} {{.Size}}' "$tag")"
for line in "${timings[@]}"; do echo "build-image: $line"; done
echo "build-image: image $tag: $(awk -v size="$size" 'BEGIN { printf "%.1f", size / 1048576 }') MiB"
echo "image $tag id $id size $size"
