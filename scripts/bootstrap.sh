#!/usr/bin/env bash
# Idempotent set-up shared by scripts/run.sh and scripts/test.sh.
#   bootstrap.sh [--dev] [APT_PACKAGE ...]
# Installs the Debian packages that are missing (apt-get only when something is missing), creates
# .venv from Debian's python3 (fast start-up; the pyenv shim costs ~200 ms per process) and
# installs vpccni into it in editable mode (with the test tools when --dev is given). Re-running
# is cheap: pip runs again only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

extras=""
if [ "${1:-}" = "--dev" ]; then extras="[dev]"; shift; fi
apt_packages=(python3 python3-venv iproute2 "$@")

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >&2
fi

python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $python" >&2
  "$python" -m venv .venv
fi

stamp=".venv/.vpccni-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
have="$(cat "$stamp" 2>/dev/null || true)"
# An install with the dev tools also satisfies a plain one.
if [ "$have" != "$want" ] && [ "$have" != "$want[dev]" ]; then
  echo "bootstrap: installing vpccni$extras into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras" >&2
  echo "$want" > "$stamp"
fi
