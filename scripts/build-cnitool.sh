#!/usr/bin/env bash
# Builds cnitool, the CNI project's reference client, from Debian's golang-github-appc-cni source
# package (Debian ships no cnitool binary), into .tools/cnitool. Idempotent; needs root for apt.
# Only Debian's registry is used: the Go toolchain and libcni come as Debian packages, the
# cnitool.go source from the source package's orig tarball (no Go module downloads).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.tools/cnitool"
[ -x "$out" ] && exit 0

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
sources=/etc/apt/sources.list.d/vpccni-deb-src.sources
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | $sudo tee "$sources" >/dev/null
fi
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q golang-go golang-github-appc-cni-dev dpkg-dev >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only golang-github-appc-cni >&2)
tarball="$(ls "$work"/golang-github-appc-cni_*.orig.tar.* | head -1)"
mkdir -p "$work/src"
tar -xf "$tarball" -C "$work/src"
source_file="$(find "$work/src" -path '*/cnitool/cnitool.go' | head -1)"
[ -n "$source_file" ] || { echo "cnitool.go not found in $tarball" >&2; exit 1; }
mkdir -p "$work/gopath/src/cnitool" "$(dirname "$out")"
cp "$source_file" "$work/gopath/src/cnitool/"
(cd "$work/gopath/src/cnitool" && GO111MODULE=off GOFLAGS= GOPROXY=off \
  GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/cache" go build -o "$out" .)
echo "built $out" >&2
