"""Start-up time of the CNI plugin against Go CNI plugins, measured in the same run.

Subjects, each run ``--runs`` times, round-robin (one run of each subject per round, so machine
noise hits all of them alike), spawned with ``posix_spawn`` (stdin from a file, stdout to
/dev/null) and timed from spawn to exit:

* ``python -IS -c pass``: the interpreter's floor;
* ``vpccni-cni VERSION`` and ``vpccni-cni ADD``: the plugin as ``vpccni install-cni`` writes it
  (verbatim source behind ``#!<python> -IS``), ADD against the fake daemon of tests/plugin (an
  in-memory map in a thread of this process: no checkpoint fsync, no netlink - the plugin's own
  cost plus one socket round trip);
* the same plugin behind a three-line launcher that imports it from a bytecode cache
  (``launcher+pyc``): what the plugin would cost without compiling its source on every start;
* Go peers from Debian's ``containernetworking-plugins`` (``/usr/lib/cni``): ``host-local`` and
  ``ptp`` VERSION, and ``host-local`` ADD (file-backed IPAM in a temp ``dataDir``, no netns).
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

from vpccni.cli import install_cni_cmd  # noqa: E402

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


def launcher_variant(work: Path, interpreter: str) -> Path:
    """The plugin imported from a bytecode cache by a three-line launcher (for comparison)."""
    library = work / "lib"
    library.mkdir()
    module = library / "vpccni_cni.py"
    module.write_bytes(install_cni_cmd.plugin_source())
    compile_it = (
        "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True, "
        "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    subprocess.run([interpreter, "-IS", "-c", compile_it, str(module)], check=True)
    launcher = work / "vpccni-cni-launcher"
    launcher.write_text(
        f"#!{interpreter} -IS\nimport sys\nsys.path.insert(0, {str(library)!r})\n"
        "from vpccni_cni import main\nsys.exit(main())\n"
    )
    launcher.chmod(0o755)
    return launcher


def subjects(work: Path, interpreter: str, socket: Path) -> tuple[list[Subject], list[str]]:
    """Everything to time, and the names of missing peers."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    plugin = str(install_cni_cmd.install_plugin(bin_dir, interpreter))
    launcher = str(launcher_variant(work, interpreter))
    netns = work / "netns"
    netns.touch()
    ours_stdin = work / "ours.json"
    ours_stdin.write_text(json.dumps(CONFIG))
    add = cni_env("ADD", socket, str(netns))
    found = [
        Subject("python -IS -c pass", [interpreter, "-IS", "-c", "pass"], {}),
        Subject("vpccni-cni VERSION", [plugin], cni_env("VERSION")),
        Subject("vpccni-cni ADD", [plugin], add, str(ours_stdin), unique_container=True),
        Subject("launcher+pyc VERSION", [launcher], cni_env("VERSION")),
        Subject("launcher+pyc ADD", [launcher], add, str(ours_stdin), unique_container=True),
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
                cni_env("ADD", None, str(netns)),
                str(peer_stdin),
                unique_container=True,
            )
        )
    return found, missing


def report(found: list[Subject], missing: list[str], runs: int, interpreter: str) -> str:
    by_name = {subject.name: subject for subject in found}
    lines = [
        f"{runs} runs each, round-robin; plugin interpreter {interpreter} -IS; ms from spawn "
        "to exit",
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
        ("vpccni-cni VERSION", "host-local VERSION"),
        ("vpccni-cni VERSION", "ptp VERSION"),
        ("vpccni-cni ADD", "host-local ADD"),
        ("vpccni-cni VERSION", "python -IS -c pass"),
        ("vpccni-cni ADD", "launcher+pyc ADD"),
        ("launcher+pyc VERSION", "host-local VERSION"),
        ("launcher+pyc ADD", "host-local ADD"),
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
    interpreter = install_cni_cmd.choose_interpreter(args.python)
    work = Path(tempfile.mkdtemp(prefix="vpccni-bench-", dir="/tmp"))
    daemon = FakeDaemon(work / "ipamd.sock", pool="10.64.0.0/14").start()
    try:
        found, missing = subjects(work, interpreter, daemon.socket_path)
        for subject in found:  # warm-up, and a failing subject fails before the timings
            subject.samples = []
            subject.spawn(-1)
        for round_number in range(args.runs):
            for subject in found:
                assert subject.samples is not None
                subject.samples.append(subject.spawn(round_number))
        print(report(found, missing, args.runs, interpreter))
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
