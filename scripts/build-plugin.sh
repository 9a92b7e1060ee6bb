#!/usr/bin/env bash
# Builds the static vpccni-cni (plugin-static/, Go standard library only) into OUT:
#   build-plugin.sh OUT [GOARCH]     GOARCH: amd64 (default: the host's) or arm64
# Reproducible: no cgo, -trimpath, no build id, no VCS stamp, so the same source and Go release
# give the same bytes; prints OUT's sha256. Offline: there are no modules to download
# (GOPROXY=off). Needs Debian's golang-go (scripts/test.sh installs it). Works without HOME (CI
# as root): the Go cache then lives in a temporary directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
  echo "usage: $0 OUT [GOARCH]   (GOARCH: amd64 or arm64)" >&2
  exit 2
fi
out="$1"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
command -v go >/dev/null || { echo "error: go is missing; install Debian's golang-go (apt-get install -y golang-go)" >&2; exit 1; }
arch="${2:-$(go env GOHOSTARCH)}"
case "$arch" in
  amd64|arm64) ;;
  *) echo "error: GOARCH $arch is not supported; use amd64 or arm64" >&2; exit 2 ;;
esac

scratch=""
if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  export GOCACHE="${GOCACHE:-$scratch/cache}" GOPATH="${GOPATH:-$scratch/gopath}"
  export HOME="$scratch"
fi
mkdir -p "$(dirname "$out")"
cd "$root/plugin-static"
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GO111MODULE=on GOPROXY=off GOFLAGS=-trimpath \
  go build -buildvcs=false -ldflags '-s -w -buildid=' -o "$out" .
sha256sum "$out"
