"""The static plugin on a host without Python (Bottlerocket's case), driven by cnitool.

scripts/build-plugin.sh builds plugin-static/ and the executable replaces the ``vpccni-cni``
that install-cni wrote. Each cnitool call then runs in a private mount namespace where every
Python interpreter on the machine is covered (``/dev/null`` bound over each interpreter binary,
an empty tmpfs over pyenv's shims and versions), and ``python3 -c 1`` is checked to fail there
first. ADD gives the pod an address that reaches the lab's VPC host, CHECK passes, DEL (twice)
releases it; the plugin log, written by the plugin itself, shows each call. The mounts never
leave that namespace; the lab is torn down by its fixture."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.netns.conftest import PORT, PROBE, Lab, Node, _require, install_plugin, ip
from tests.netns.test_interop_cnitool import CNITOOL, DEBIAN_PLUGINS, require

ROOT = Path(__file__).resolve().parents[2]
INTERPRETER_PATTERNS = ("python", "python[0-9]*", "pypy*")
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


@pytest.fixture(scope="module")
def static_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require(shutil.which("go") is not None, "go is missing (apt-get install -y golang-go)")
    out = tmp_path_factory.mktemp("static") / "vpccni-cni"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-plugin.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def python_interpreters() -> tuple[list[str], list[str]]:
    """(interpreter files to cover, directories to empty): every python on PATH and in the usual
    places, resolved to the real binaries, plus pyenv's shims and versions."""
    directories = {*os.environ.get("PATH", "").split(":"), "/usr/bin", "/usr/local/bin", "/bin"}
    directories |= {str(Path(sys.executable).parent), str(ROOT / ".venv" / "bin")}
    files = {os.path.realpath(sys.executable)}
    for directory in filter(None, directories):
        for pattern in INTERPRETER_PATTERNS:
            for path in glob.glob(os.path.join(directory, pattern)):
                real = os.path.realpath(path)
                if os.path.isfile(real) and os.access(real, os.X_OK):
                    files.add(real)
    emptied = [str(PYENV / name) for name in ("shims", "versions") if (PYENV / name).is_dir()]
    return sorted(files), emptied


def without_python(command: list[str]) -> list[str]:
    """``command`` run in a private mount namespace where no Python interpreter can start."""
    files, emptied = python_interpreters()
    lines = ["set -e"]
    lines += [f"mount --bind /dev/null {shlex.quote(path)}" for path in files]
    lines += [f"mount -t tmpfs -o ro,size=4k tmpfs {shlex.quote(path)}" for path in emptied]
    probes = ["python3", "python", "/usr/bin/python3", sys.executable, *files]
    lines += [
        f"for p in {' '.join(map(shlex.quote, probes))}; do",
        '  if "$p" -c 1 >/dev/null 2>&1; then echo "vt: $p still runs" >&2; exit 97; fi',
        "done",
        'exec "$@"',
    ]
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]


def cnitool(
    lab: Lab, conf: Path, bin_dir: Path, log: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NETCONFPATH": str(conf),
        "CNI_PATH": f"{bin_dir}:{DEBIAN_PLUGINS}",
        "AWS_VPC_K8S_PLUGIN_LOG_FILE": str(log),  # libcni passes its environment on
    }
    command = without_python(["ip", "netns", "exec", lab.node, str(CNITOOL), *args])
    return subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=120
    )


def test_python_is_gone_inside(tmp_path: Path) -> None:
    _require(os.geteuid() == 0, "mount namespaces need root")
    _require(shutil.which("unshare") is not None, "unshare (util-linux) is missing")
    done = subprocess.run(
        without_python(["sh", "-c", "python3 -c 1; echo status=$?"]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "status=0" not in done.stdout
    assert subprocess.run([sys.executable, "-c", "1"], check=False).returncode == 0  # outside


def test_static_plugin_add_check_del_without_python(
    lab_node: tuple[Node, Lab], static_plugin: Path, tmp_path: Path
) -> None:
    require(CNITOOL, "built by scripts/build-cnitool.sh")
    require(DEBIAN_PLUGINS / "portmap", "Debian's containernetworking-plugins")
    _require(shutil.which("unshare") is not None, "unshare (util-linux) is missing")
    node, lab = lab_node
    bin_dir, conf = install_plugin(node, tmp_path)
    shutil.copy2(static_plugin, bin_dir / "vpccni-cni")  # the static one replaces cni.py
    assert (bin_dir / "vpccni-cni").read_bytes()[:4] == b"\x7fELF"
    log = tmp_path / "plugin.log"
    pod = f"{lab.prefix}-st"
    netns = f"/var/run/netns/{pod}"
    ip("netns", "add", pod)
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
        added = cnitool(lab, conf, bin_dir, log, "add", "aws-cni", netns)
        assert added.returncode == 0, added.stdout + added.stderr
        result: dict[str, Any] = json.loads(added.stdout)
        assert result["cniVersion"] == "1.0.0"
        address = result["ips"][0]["address"].split("/")[0]
        assert address in ip("-n", pod, "-4", "addr", "show", "dev", "eth0")
        assert [held["address"] for held in node.introspect("/v1/pods")] == [address]
        send = [sys.executable, *PROBE, "send", str(lab.vpc_host), str(PORT)]
        answer = subprocess.run(
            ["ip", "netns", "exec", pod, *send],
            capture_output=True,
            text=True,
            check=False,
        )
        assert answer.stdout.split()[:1] == [address], answer.stderr
        checked = cnitool(lab, conf, bin_dir, log, "check", "aws-cni", netns)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for _ in range(2):
            deleted = cnitool(lab, conf, bin_dir, log, "del", "aws-cni", netns)
            assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert node.introspect("/v1/pods") == []
        assert address not in ip("-n", lab.node, "rule")
        lines = log.read_text().splitlines()
        assert [line.split(" ")[2] for line in lines] == ["ADD", "CHECK", "DEL", "DEL"], lines
        assert all(" -> ok" in line for line in lines), lines
        assert f"-> ok {address}/" in lines[0]
    finally:
        ip("netns", "del", pod)
