"""Start-up time of the CNI plugin against Go CNI plugins, measured in the same run.

Subjects, each run ``--runs`` times, round-robin (one run of each subject per round, so machine
noise hits all of them alike), spawned with ``posix_spawn`` (stdin from a file, stdout to
/dev/null) and timed from spawn to exit:

* ``python -IS -c pass``: the interpreter's floor;
* ``installed VERSION`` and ``installed ADD``: the Python plugin as ``vpccni install-cni
  --plugin python`` writes it (the launcher ``vpccni-cni`` behind ``#!<python> -IS``, running
  ``vpccni-cni.d/cni.py`` from the bytecode that interpreter compiled at install time), ADD
  against the fake daemon of tests/plugin (an in-memory map in a thread of this process: no
  checkpoint fsync, no netlink - the plugin's own cost, entering the pod's network namespace
  ``vt-bench-plugin-<pid>`` (made for the run; so root is needed) and passing it, plus one
  socket round trip);
* ``source script VERSION`` and ``source script ADD``: ``cni.py`` verbatim behind the same
  shebang (what install-cni wrote before the launcher), compiled by Python on every start;
* Go peers from Debian's ``containernetworking-plugins`` (``/usr/lib/cni``): ``host-local`` and
  ``ptp`` VERSION, and ``host-local`` ADD (file-backed IPAM in a temp ``dataDir``).
  A missing peer is reported as missing, and its ratios are skipped.

Run: ``.venv/bin/python benchmarks/bench_plugin.py [--runs 100] [--python /usr/bin/python3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.plugin.fake_daemon import FakeDaemon  # noqa: E402

from vpccni.node import plugin_install  # noqa: E402

GO_PLUGINS = Path("/usr/lib/cni")
CONFIG = {"cniVersion": "1.0.0", "name": "aws-cni", "type": "vpccni-cni"}


@dataclass
class Subject:
    """One command to time: argv, environment per run, stdin file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    stdin: str = os.devnull
    unique_container: bool = False
    samples: list[float] | None = None

    def spawn(self, round_number: int) -> float:
        env = dict(self.env)
        if self.unique_container:
            tag = "".join(c if c.isalnum() else "-" for c in self.name)
            env["CNI_CONTAINERID"] = f"bench-{tag}-{round_number + 1}"
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, self.stdin, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        ]
        started = time.perf_counter()
        pid = os.posix_spawn(self.argv[0], self.argv, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter() - started) * 1000
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{self.name} failed (exit {os.waitstatus_to_exitcode(status)})")
        return elapsed


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cni_env(command: str, socket: Path | None = None, netns: str = "") -> dict[str, str]:
    env = {"CNI_COMMAND": command, "PATH": os.defpath}
    if command == "ADD":
        env |= {"CNI_CONTAINERID": "bench", "CNI_NETNS": netns, "CNI_IFNAME": "eth0"}
        env |= {"CNI_PATH": str(GO_PLUGINS), "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=b"}
    if socket is not None:
        env["VPCCNI_SOCKET"] = str(socket)
    return env


def source_script(work: Path, interpreter: str) -> Path:
    """``cni.py`` verbatim behind the plugin's shebang: compiled by Python on every start."""
    script = work / "source-script" / plugin_install.PLUGIN_NAME
    script.parent.mkdir()
    shebang = f"#!{interpreter} {plugin_install.INTERPRETER_FLAGS}\n".encode()
    script.write_bytes(shebang + plugin_install.plugin_source())
    script.chmod(0o755)
    return script


def subjects(
    work: Path, interpreter: str, socket: Path, netns: str
) -> tuple[list[Subject], list[str]]:
    """Everything to time, and the names of missing peers."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    plugin = str(plugin_install.install_plugin(bin_dir, interpreter))
    script = str(source_script(work, interpreter))
    ours_stdin = work / "ours.json"
    ours_stdin.write_text(json.dumps(CONFIG))
    add = cni_env("ADD", socket, netns)
    found = [
        Subject("python -IS -c pass", [interpreter, "-IS", "-c", "pass"], {}),
        Subject("installed VERSION", [plugin], cni_env("VERSION")),
        Subject("installed ADD", [plugin], add, str(ours_stdin), unique_container=True),
        Subject("source script VERSION", [script], cni_env("VERSION")),
        Subject("source script ADD", [script], add, str(ours_stdin), unique_container=True),
    ]
    missing = []
    for name in ("host-local", "ptp"):
        path = GO_PLUGINS / name
        if path.exists():
            found.append(Subject(f"{name} VERSION", [str(path)], cni_env("VERSION")))
        else:
            missing.append(str(path))
    if (GO_PLUGINS / "host-local").exists():
        ipam = {"type": "host-local", "ranges": [[{"subnet": "10.200.0.0/16"}]]}
        ipam["dataDir"] = str(work / "host-local")
        peer_stdin = work / "host-local.json"
        peer_stdin.write_text(json.dumps({**CONFIG, "type": "ptp", "ipam": ipam}))
        found.append(
            Subject(
                "host-local ADD",
                [str(GO_PLUGINS / "host-local")],
                cni_env("ADD", None, netns),
                str(peer_stdin),
                unique_container=True,
            )
        )
    return found, missing


def report(
    found: list[Subject], missing: list[str], runs: int, interpreter: str, installed: str
) -> str:
    by_name = {subject.name: subject for subject in found}
    lines = [
        f"{runs} runs each, round-robin; plugin interpreter {interpreter} -IS; ms from spawn "
        f"to exit; installed: {installed}",
        f"{'subject':24} {'p50':>7} {'p90':>7}",
    ]
    for subject in found:
        samples = subject.samples or []
        lines.append(
            f"{subject.name:24} {statistics.median(samples):7.2f} {percentile(samples, 0.9):7.2f}"
        )
    for path in missing:
        lines.append(
            f"{Path(path).name + ' VERSION':24}  missing: {path} not found - install Debian's "
            "containernetworking-plugins (apt-get install containernetworking-plugins)"
        )
    lines.append("ratios of p50 (ours / peer):")
    pairs = [
        ("installed VERSION", "host-local VERSION"),
        ("installed VERSION", "ptp VERSION"),
        ("installed ADD", "host-local ADD"),
        ("installed VERSION", "python -IS -c pass"),
        ("source script VERSION", "installed VERSION"),
        ("source script ADD", "installed ADD"),
        ("source script ADD", "host-local ADD"),
    ]
    for ours, peer in pairs:
        if ours in by_name and peer in by_name:
            ratio = statistics.median(by_name[ours].samples or [0]) / statistics.median(
                by_name[peer].samples or [1]
            )
            lines.append(f"  {ours} / {peer}: {ratio:.1f}x")
        else:
            lines.append(f"  {ours} / {peer}: skipped (peer missing)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--python", default=None, help="plugin interpreter (default as install)")
    args = parser.parse_args()
    interpreter = plugin_install.choose_interpreter(args.python)
    if os.geteuid() != 0:
        raise SystemExit(
            "error: the plugin's ADD enters the pod's network namespace (setns): run as root"
        )
    name = f"vt-bench-plugin-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    work = Path(tempfile.mkdtemp(prefix="vpccni-bench-", dir="/tmp"))
    daemon = FakeDaemon(work / "ipamd.sock", pool="10.64.0.0/14").start()
    try:
        found, missing = subjects(work, interpreter, daemon.socket_path, f"/var/run/netns/{name}")
        for subject in found:  # warm-up, and a failing subject fails before the timings
            subject.samples = []
            subject.spawn(-1)
        for round_number in range(args.runs):
            for subject in found:
                assert subject.samples is not None
                subject.samples.append(subject.spawn(round_number))
        bytecode = plugin_install.installed_bytecode(work / "bin")
        installed = f"launcher + cni.py + {bytecode.name if bytecode else 'no bytecode'}"
        print(report(found, missing, args.runs, interpreter, installed))
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", name], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
