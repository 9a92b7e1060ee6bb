#!/usr/bin/env bash
# Builds cnitool, the CNI project's reference client, from Debian's golang-github-appc-cni source
# package (Debian ships no cnitool binary), into .tools/cnitool. Idempotent; needs root for apt.
# Only Debian's registry is used: the Go toolchain and libcni come as Debian packages, the
# cnitool.go source from the source package's orig tarball (no Go module downloads).
# Quiet: one line on stderr; apt-get's and go's output goes to .bootstrap.log (a failure prints
# its last 40 lines and the log's path; scripts/quiet-steps.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.tools/cnitool"
[ -x "$out" ] && exit 0
# shellcheck source=scripts/quiet-steps.sh
source "$root/scripts/quiet-steps.sh"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
  sudo -v  # asks for the password here, not under the step's progress dots
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

build_cnitool() {
  local sources=/etc/apt/sources.list.d/vpccni-deb-src.sources
  if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $sudo tee "$sources" >/dev/null
  fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y golang-go golang-github-appc-cni-dev dpkg-dev
  (cd "$work" && apt-get source --download-only golang-github-appc-cni)
  local tarball source_file
  tarball="$(ls "$work"/golang-github-appc-cni_*.orig.tar.* | head -1)"
  mkdir -p "$work/src"
  tar -xf "$tarball" -C "$work/src"
  source_file="$(find "$work/src" -path '*/cnitool/cnitool.go' | head -1)"
  [ -n "$source_file" ] || { echo "cnitool.go not found in $tarball"; return 1; }
  mkdir -p "$work/gopath/src/cnitool" "$(dirname "$out")"
  cp "$source_file" "$work/gopath/src/cnitool/"
  (cd "$work/gopath/src/cnitool" && GO111MODULE=off GOFLAGS= GOPROXY=off \
    GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/cache" go build -o "$out" .)
}
quiet_step "building .tools/cnitool from Debian's golang-github-appc-cni source (apt-get, go build)" \
  build_cnitool
