"""CPU cost of the DaemonSet's health probes (HTTP GET /healthz and /readyz against a running
ipamd) against what an exec probe would cost.

The DaemonSet probes ipamd with ``httpGet`` on ``127.0.0.1:61679`` (``/healthz`` for liveness,
``/readyz`` for readiness, ``periodSeconds: 10`` each). A real ``vpccni ipamd`` runs against the
emulator (``vpccni.cli.demo_cmd.Demo``: emulator and daemon as child processes), with the
production tick and reconcile periods (5 s, 60 s), the system clock, and its introspection
listener on ``127.0.0.1:<free port>`` (the port does not change the cost; 61679 may be taken on
this machine). Each probe is what kubelet's prober does: a new TCP connection, ``GET`` with
``Connection: close`` (kubelet disables keep-alive for probes), the whole reply read, closed.

Measured, for ``--rounds`` rounds of ``--probes`` probes per path:

* the daemon's CPU time per probe: the delta of its CPU time over the round, minus what it spent
  idle over the same wall time (its idle rate, measured first over ``--idle-seconds``), divided
  by the probes; read two ways: ``utime+stime`` from ``/proc/<pid>/stat`` (clock ticks, 10 ms)
  and the process CPU clock of the daemon (``clock_gettime`` on ``clock_getcpuclockid(pid)``,
  ns, all threads, dead ones included);
* the client's CPU time per probe (this thread's CPU clock): a minimal Python HTTP client, not
  kubelet's Go one, so an indication only.

Against the exec alternatives, each run ``--execs`` times as a child process (CPU time from
``RUSAGE_CHILDREN`` deltas, so everything the process and its waited-for children used; the
daemon's share measured as above): ``vpccni --version`` (the interpreter and the CLI's imports:
the floor of any Python exec probe), ``vpccni status --introspection 127.0.0.1:<port> --format
json`` (asks the daemon), the static plugin's STATUS (``CNI_COMMAND=STATUS``, a 1.1.0 config on
stdin; built by ``scripts/build-plugin.sh``: asks the daemon over its plugin socket) and, for
comparison, the Python plugin's STATUS. An exec probe also pays the container runtime's exec
(CRI ExecSync, runc exec entering the container's namespaces), which is not measured here: its
figures are lower bounds.

Prints a table: CPU ms per probe (probe process or client, daemon, total), wall ms, and CPU
seconds per node per day for the two probes at periodSeconds 10 (2 x 8640 = 17,280 probes).
Needs no root. Exit 0; on an error or Ctrl-C the children are stopped and the work directory is
kept for its logs, exit 1.

Run: ``.venv/bin/python benchmarks/probe_cost.py [--probes 500] [--execs 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vpccni.cli.demo_cmd import Demo  # noqa: E402
from vpccni.errors import VpccniError  # noqa: E402
from vpccni.node.plugin_install import choose_interpreter, install_plugin  # noqa: E402

BUILD_PLUGIN = ROOT / "scripts" / "build-plugin.sh"
VPCCNI = Path(sys.executable).with_name("vpccni")
PERIOD_SECONDS = 10
PROBES_PER_DAY = 2 * 86400 // PERIOD_SECONDS  # liveness + readiness, each every 10 s
TICKS = os.sysconf("SC_CLK_TCK")
STATUS_CONFIG = json.dumps({"cniVersion": "1.1.0", "name": "aws-cni", "type": "vpccni-cni"})


class BenchError(Exception):
    """The daemon or a probe failed; the benchmark stops (and cleans up)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ProbeDemo(Demo):
    """``Demo`` with production periods, the system clock and introspection on TCP."""

    def __init__(self, directory: Path, port: int) -> None:
        super().__init__(directory, "m5.large")
        self.introspection = f"127.0.0.1:{port}"

    def cloud_env(self, instance_id: str) -> dict[str, str]:
        # the demo's emulator clock would cost an HTTP GET per clock read, a probe's included
        return {**super().cloud_env(instance_id), "VPCCNI_CLOCK": "system"}

    def start_daemon(self, instance_id: str, *extra: str) -> None:
        # argparse keeps the last value: the production defaults (settings.py) over the demo's
        super().start_daemon(
            instance_id, *extra, "--tick-seconds", "5", "--reconcile-seconds", "60"
        )

    @property
    def daemon_pid(self) -> int:
        return self.children[-1].pid


# --- CPU clocks ---


def stat_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads, live and dead) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


def clock_seconds(pid: int) -> float:
    """The process CPU clock of ``pid`` (clock_getcpuclockid: ((~pid) << 3) | CPUCLOCK_SCHED)."""
    return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9


@dataclass(frozen=True)
class Reading:
    """The daemon's CPU clocks and the wall clock at one instant."""

    wall: float
    stat: float
    clock: float

    @classmethod
    def of(cls, pid: int) -> Reading:
        return cls(time.monotonic(), stat_seconds(pid), clock_seconds(pid))


@dataclass(frozen=True)
class IdleRate:
    """The daemon's CPU seconds per wall second while nobody asks it anything."""

    stat: float
    clock: float

    def excess(self, before: Reading, after: Reading) -> tuple[float, float]:
        """CPU seconds between the readings beyond the idle rate: (stat, clock)."""
        wall = after.wall - before.wall
        return (
            after.stat - before.stat - self.stat * wall,
            after.clock - before.clock - self.clock * wall,
        )


def idle_rate(pid: int, seconds: float) -> IdleRate:
    before = Reading.of(pid)
    time.sleep(seconds)
    after = Reading.of(pid)
    wall = after.wall - before.wall
    return IdleRate((after.stat - before.stat) / wall, (after.clock - before.clock) / wall)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the probes ---


def http_probe(port: int, path: str) -> int:
    """One kubelet-style HTTP probe: connect, GET with Connection: close, read all; status."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.31\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@dataclass
class Row:
    """One probe option's figures, per probe (medians over rounds)."""

    name: str
    prober_ms: float  # the probe process (exec) or this client (HTTP)
    daemon_stat_ms: float
    daemon_clock_ms: float
    wall_ms: float
    count: int

    @property
    def total_ms(self) -> float:
        return self.prober_ms + self.daemon_clock_ms

    def per_day(self) -> float:
        return self.total_ms * PROBES_PER_DAY / 1000


@dataclass(frozen=True)
class Meter:
    """Rounds of one probe option against the daemon ``pid`` (whose idle rate is ``idle``)."""

    pid: int
    idle: IdleRate
    rounds: int

    def measure(
        self, name: str, once: Callable[[], None], count: int, prober: Callable[[], float]
    ) -> Row:
        """``rounds`` x ``count`` calls of ``once``; per call, the medians over the rounds of
        ``prober`` (a CPU clock of the probing side), the daemon's excess CPU and wall time."""
        spent, stat, clock, wall = [], [], [], []
        for _ in range(self.rounds):
            before, mine = Reading.of(self.pid), prober()
            for _ in range(count):
                once()
            after, mine = Reading.of(self.pid), prober() - mine
            extra_stat, extra_clock = self.idle.excess(before, after)
            spent.append(mine / count * 1000)
            stat.append(extra_stat / count * 1000)
            clock.append(extra_clock / count * 1000)
            wall.append((after.wall - before.wall) / count * 1000)
        m = statistics.median
        return Row(name, m(spent), m(stat), m(clock), m(wall), count * self.rounds)


def http_once(port: int, path: str) -> Callable[[], None]:
    def once() -> None:
        status = http_probe(port, path)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}, not 200")

    return once


def exec_once(name: str, argv: list[str], env: dict[str, str], stdin: bytes) -> Callable[[], None]:
    def once() -> None:
        done = subprocess.run(
            argv, env=env, input=stdin, capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise BenchError(
                f"{name} failed (exit {done.returncode}): "
                f"{done.stdout.decode()[:300]} {done.stderr.decode()[:300]}"
            )

    return once


def wait_until(what: str, check: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise BenchError(f"{what} did not happen within {timeout:.0f} s")


def ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        return bool(response.status == 200)


def build_static(directory: Path) -> Path:
    if shutil.which("go") is None:
        raise BenchError("go is missing: apt-get install -y golang-go (to build plugin-static/)")
    binary = directory / "vpccni-cni"
    built = subprocess.run(
        ["bash", str(BUILD_PLUGIN), str(binary)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise BenchError(f"scripts/build-plugin.sh failed: {built.stderr.strip()}")
    return binary


# --- the report ---


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| probe | runs | prober CPU ms | daemon CPU ms (clock) | daemon CPU ms (/proc stat) "
        "| total CPU ms per probe | wall ms | CPU s per node per day (2 probes, 10 s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.count} | {row.prober_ms:.2f} | {row.daemon_clock_ms:.2f} "
            f"| {row.daemon_stat_ms:.2f} | {row.total_ms:.2f} | {row.wall_ms:.2f} "
            f"| {row.per_day():.1f} |"
        )
    return lines


def ratios(rows: list[Row]) -> list[str]:
    http = [row for row in rows if row.name.startswith("HTTP")]
    execs = [row for row in rows if not row.name.startswith("HTTP")]
    pair = sum(row.total_ms for row in http)
    lines = [
        f"Both HTTP probes: {pair:.2f} ms CPU per pair, "
        f"{pair * PROBES_PER_DAY / 2 / 1000:.1f} CPU s per node per day."
    ]
    for row in execs:
        lines.append(
            f"{row.name} as both probes instead: {row.total_ms * 2:.2f} ms per pair "
            f"({row.total_ms * 2 / pair:.0f}x the HTTP pair), {row.per_day():.1f} CPU s per node "
            "per day"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=500, help="HTTP probes per path per round")
    parser.add_argument("--execs", type=int, default=20, help="exec runs per option per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench-tmp", help="work directory")
    args = parser.parse_args()
    if args.probes < 10 or args.execs < 2 or args.rounds < 1 or args.idle_seconds < 5:
        raise SystemExit("--probes >= 10, --execs >= 2, --rounds >= 1, --idle-seconds >= 5")
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"probe-cost-{os.getpid()}-", dir=args.dir))
    port = free_port()
    demo = ProbeDemo(work, port)
    failed = True
    try:
        failed = run(args, work, demo, port)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except (BenchError, VpccniError) as error:
        print(f"error: {error}", file=sys.stderr)
    finally:
        demo.stop()
        if failed:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def run(args: argparse.Namespace, work: Path, demo: ProbeDemo, port: int) -> bool:
    demo.start()
    pid = demo.daemon_pid
    wait_until("ipamd answering /readyz with 200", lambda: ready(port))
    bins = work / "bin-static", work / "bin-python"
    for directory in bins:
        directory.mkdir()
    static, python = build_static(bins[0]), install_plugin(bins[1], choose_interpreter(None))
    time.sleep(5)  # let the pool settle after readiness before the idle window
    print(f"ipamd pid {pid} ready; idle window {args.idle_seconds:.0f} s", flush=True)
    idle = idle_rate(pid, args.idle_seconds)
    for path in ("/healthz", "/readyz"):  # warm-up: connections, code paths
        for _ in range(20):
            http_probe(port, path)
    meter = Meter(pid, idle, args.rounds)
    rows = [
        meter.measure(f"HTTP GET {path}", http_once(port, path), args.probes, time.thread_time)
        for path in ("/healthz", "/readyz")
    ]
    plugin_env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/opt/cni/bin", "PATH": os.defpath}
    plugin_env["VPCCNI_SOCKET"] = str(demo.socket)
    cli_env = {**os.environ}
    config = STATUS_CONFIG.encode()
    options = [
        ("exec `vpccni --version`", [str(VPCCNI), "--version"], cli_env, b""),
        (
            "exec `vpccni status --format json`",
            [str(VPCCNI), "status", "--introspection", demo.introspection, "--format", "json"],
            cli_env,
            b"",
        ),
        ("exec static plugin STATUS", [str(static)], plugin_env, config),
        ("exec Python plugin STATUS", [str(python)], plugin_env, config),
    ]
    for name, argv, env, stdin in options:
        once = exec_once(name, argv, env, stdin)
        for _ in range(2):  # warm-up: page cache, bytecode
            once()
        rows.append(meter.measure(name, once, args.execs, children_cpu))
    info = (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; ipamd idle: {idle.clock * 1000:.2f} ms CPU per s "
        f"(/proc stat: {idle.stat * 1000:.2f}); {args.rounds} rounds of {args.probes} HTTP "
        f"probes per path and {args.execs} runs per exec option; medians of the rounds; "
        f"1-min load {os.getloadavg()[0]:.1f}."
    )
    print()
    print("\n".join([info, "", *table(rows), "", *ratios(rows)]))
    return False


if __name__ == "__main__":
    sys.exit(main())
