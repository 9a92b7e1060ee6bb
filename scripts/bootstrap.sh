#!/usr/bin/env bash
# Idempotent set-up shared by scripts/run.sh and scripts/test.sh.
#   bootstrap.sh [--dev] [APT_PACKAGE ...]
# Installs the Debian packages that are missing (apt-get only when something is missing), creates
# .venv from Debian's python3 (fast start-up; the pyenv shim costs ~200 ms per process) and
# installs vpccni into it in editable mode (with the test tools when --dev is given). Re-running
# is cheap and silent: pip runs again only when pyproject.toml changed.
# Quiet: one line per step on stderr; apt-get's, venv's and pip's output goes to .bootstrap.log
# (git-ignored); a failing step prints that output's last 40 lines and the log's path, and the
# script exits non-zero (scripts/quiet-steps.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/quiet-steps.sh
source "$root/scripts/quiet-steps.sh"

extras="" pip_time="~20 s"
if [ "${1:-}" = "--dev" ]; then extras="[dev]" pip_time="~1 min"; shift; fi
apt_packages=(python3 python3-venv iproute2 "$@")

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

sudo=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y "$@"
}
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
    sudo -v  # asks for the password here, not under the step's progress dots
  fi
  quiet_step "installing Debian packages: ${missing[*]} (apt-get)" apt_install "${missing[@]}"
fi

python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"
make_venv() {
  "$python" -m venv .venv || { rm -rf .venv; return 1; }
}
if [ ! -x .venv/bin/python ]; then
  quiet_step "creating .venv with $python ($("$python" -V 2>&1))" make_venv
fi

stamp=".venv/.vpccni-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
have="$(cat "$stamp" 2>/dev/null || true)"
# An install with the dev tools also satisfies a plain one.
if [ "$have" != "$want" ] && [ "$have" != "$want[dev]" ]; then
  quiet_step "installing vpccni$extras into .venv (pip, $pip_time)" \
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e ".$extras"
  echo "$want" > "$stamp"
fi
