"""Resident memory of ``vpccni ipamd``: idle after start, with a full node of pods in prefix mode,
and over thousands of ADD/DEL cycles (root for the datapath; ``--ipam-only`` without).

For each source tree given with ``--src`` (default: this repository's ``src``), in turn and in
the same invocation: an in-process emulator (this process) with a VPC, a /20 subnet and one
instance (``--instance-type``, m5.8xlarge: a kubelet max-pods of 250 in prefix mode), and
``vpccni ipamd`` from that tree (``PYTHONPATH``) as a child process, in prefix mode
(``ENABLE_PREFIX_DELEGATION=true``, ``--max-pods 250``), ``IP_COOLDOWN_PERIOD=0`` (a churning
full node would otherwise grow its pool by the addresses cooling), the production tick,
reconcile and clean-up periods, metrics on a loopback port and introspection on a Unix socket.
With the datapath (the default), the lab of ``vpccni demo --datapath`` (a "node" and a "vpc"
namespace, ``vt-rss<pid>-*``, the ENIs mirrored as links) and ipamd wiring pods in the node
namespace (``--netns``); every pod has its own namespace (``vt-rss<pid>-p<n>``), and the ADD
passes it and a netlink socket in it as the plugin does (``tests/pod_fds.py``). With
``--ipam-only``, no namespaces: the daemon assigns addresses only.

Pods are added through the plugin API (``vpccni.daemon.rpc.call``) as ``tests/daemon/conftest.py``
does, retried while the daemon says "try again" (its pool growing). Measured from
``/proc/<pid>/status`` of the daemon (VmRSS, VmHWM, RssAnon, RssFile, Threads) and its open
descriptors: idle (the warm pool settled, then ``--idle-seconds``), after ``--pods`` pods (the
pool settled again), then every ``--every`` cycles over ``--cycles`` cycles; a cycle deletes the
oldest pod and adds a new one in its namespace, so the node stays full. Prints markdown tables,
one column group per tree. Everything created is removed on exit, Ctrl-C or SIGTERM.

Run: ``sudo .venv/bin/python benchmarks/daemon_rss.py [--cycles 10000] [--src OTHER/src]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.pod_fds: the plugin's way of passing a pod's namespace

from tests.pod_fds import FDS, pod_fds  # noqa: E402

from vpccni.adapters.ec2_boto3 import emulator_ec2  # noqa: E402
from vpccni.adapters.instance_data import load_instance_table  # noqa: E402
from vpccni.cli.status_cmd import fetch  # noqa: E402
from vpccni.daemon.rpc import call  # noqa: E402
from vpccni.emulator.realism import Knobs  # noqa: E402
from vpccni.emulator.server import EmulatorServer  # noqa: E402
from vpccni.emulator.service import Emulator  # noqa: E402
from vpccni.errors import VpccniError  # noqa: E402
from vpccni.lab.sync import LabSync  # noqa: E402
from vpccni.lab.topology import Lab, ip  # noqa: E402

VPC_CIDR, SUBNET = "10.0.0.0/16", IPv4Network("10.0.16.0/20")
TRY_AGAIN = 11
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")
CONFIG = {"cniVersion": "1.0.0", "name": "aws-cni", "mtu": 9001}


class BenchError(Exception):
    """The daemon or the lab failed; the benchmark stops (and cleans up)."""


@dataclass
class Sample:
    """One reading of the daemon's memory."""

    stage: str
    values: dict[str, int]  # kB, except Threads and fds
    seconds: float  # since the daemon started


@dataclass
class Subject:
    """One source tree under test and what was measured of its daemon."""

    src: Path
    label: str
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in FIELDS:
            values[name] = int(rest.split()[0])
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def describe_tree(src: Path) -> str:
    """The tree's commit (and whether its src/ has uncommitted changes)."""
    git = ["git", "-C", str(src)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return str(src)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{head.stdout.strip()}{' + uncommitted changes' if dirty else ''}"


class Node:
    """The emulator, the lab (unless IPAM-only), one ipamd, and the pods' namespaces."""

    def __init__(self, args: argparse.Namespace, work: Path, src: Path, stack: ExitStack) -> None:
        self.args, self.work, self.src = args, work, src
        self.socket = work / "ipamd.sock"
        self.introspection = f"unix:{work / 'introspection.sock'}"
        self.prefix = f"vt-rss{os.getpid() % 100000}"
        self.spaces: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.server = EmulatorServer(Emulator(load_instance_table(), Knobs()), "127.0.0.1", 0)
        self.server.start()
        stack.callback(self.server.stop)
        scenario = {
            "vpcs": [
                {
                    "name": "vpc",
                    "cidr": VPC_CIDR,
                    "subnets": [{"name": "nodes", "cidr": str(SUBNET)}],
                }
            ],
            "instances": [{"name": "node", "type": args.instance_type, "subnet": "nodes"}],
        }
        self.instance_id = self._admin("scenario", scenario)["ids"]["node"]
        self.lab: Lab | None = None
        if not args.ipam_only:
            self.lab = Lab(self.prefix, SUBNET)
            stack.callback(self.lab.destroy)
            self.lab.create()
            sync = LabSync(self.lab, emulator_ec2(self.server.endpoint), self.instance_id)
            stack.callback(sync.stop)
            sync.start()
        stack.callback(self.delete_spaces)
        stack.callback(self.stop)

    def _admin(self, path: str, payload: Any) -> Any:
        import urllib.request

        request = urllib.request.Request(
            f"{self.server.endpoint}/admin/{path}", data=json.dumps(payload).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "PYTHONPATH": str(self.src),
            "AWS_ENDPOINT_URL_EC2": self.server.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.server.imds_endpoint(self.instance_id),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-west-2",
            "VPCCNI_CLOCK": "system",
            "ENABLE_PREFIX_DELEGATION": "true",
            "IP_COOLDOWN_PERIOD": "0",
        }
        found = subprocess.run(
            [sys.executable, "-c", "import vpccni; print(vpccni.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).resolve().is_relative_to(self.src.resolve()):
            raise BenchError(f"the daemon would import vpccni from {found}, not {self.src}")
        command = [sys.executable, "-m", "vpccni.cli.main", "ipamd", "--socket", str(self.socket)]
        command += ["--checkpoint-dir", str(self.work / "checkpoint")]
        command += ["--spool-dir", str(self.work / "spool")]
        command += ["--introspection-bind", self.introspection]
        command += ["--metrics-bind", f"127.0.0.1:{free_port()}", "--max-pods", str(self.args.pods)]
        if self.lab is not None:
            command += ["--netns", self.lab.node]
        log = (self.work / "ipamd.log").open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait("ipamd to answer", lambda: self.rpc({"op": "status"}).get("ok"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rpc(self, request: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        return call(self.socket, {"version": 1, **request}, timeout=30, fds=fds or ())

    def wait(self, what: str, condition: Callable[[], object], timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.work / "ipamd.log").read_text(errors="replace")[-3000:]
                raise BenchError(f"ipamd exited ({self.process.returncode}):\n{tail}")
            with suppress(OSError, ValueError, KeyError, VpccniError):
                if condition():
                    return
            time.sleep(0.2)
        raise BenchError(f"timed out waiting for {what}")

    def settled(self) -> None:
        """Until the pool rules ask for nothing (no growth or shrink pending)."""
        self.wait(
            "the pool to settle", lambda: not fetch(self.introspection, "/v1/explain")["actions"]
        )

    def namespace(self, index: int) -> str:
        """The namespace of pod slot ``index`` (a placeholder file when IPAM-only)."""
        if self.lab is None:
            path = self.work / "netns-placeholder"
            path.touch()
            return str(path)
        name = f"{self.prefix}-p{index}"
        if name not in self.spaces:
            ip("netns", "add", name)
            self.spaces.append(name)
        return f"/var/run/netns/{name}"

    def add(self, container: str, netns: str) -> None:
        cni = {
            "command": "ADD",
            "container_id": container,
            "netns": netns,
            "ifname": "eth0",
            "args": f"K8S_POD_NAMESPACE=bench;K8S_POD_NAME={container}",
        }
        deadline = time.monotonic() + 120
        while True:
            request = {"op": "add", "cni": cni, "config": CONFIG}
            if self.lab is None:
                reply = self.rpc(request)
            else:
                with pod_fds(netns) as fds:
                    reply = self.rpc({**request, "fds": FDS}, fds)
            if reply.get("ok"):
                return
            code = reply.get("error", {}).get("code")
            if code != TRY_AGAIN or time.monotonic() > deadline:
                raise BenchError(f"ADD {container} failed: {reply}")
            time.sleep(0.1)

    def delete(self, container: str, netns: str) -> None:
        cni = {"command": "DEL", "container_id": container, "netns": netns, "ifname": "eth0"}
        reply = self.rpc({"op": "del", "cni": cni, "config": CONFIG})
        if not reply.get("ok"):
            raise BenchError(f"DEL {container} failed: {reply}")

    def delete_spaces(self) -> None:
        for name in self.spaces:
            ip("netns", "del", name, check=False)
        self.spaces.clear()

    def sample(self, subject: Subject, stage: str) -> None:
        subject.samples.append(Sample(stage, status(self.pid), time.monotonic() - self.started))
        last = subject.samples[-1].values
        print(
            f"  {subject.label}: {stage}: VmRSS {last['VmRSS'] / 1024:.1f} MiB, "
            f"VmHWM {last['VmHWM'] / 1024:.1f} MiB",
            flush=True,
        )


def measure(args: argparse.Namespace, subject: Subject) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"daemon-rss-{os.getpid()}-", dir=args.dir))
    failed = True
    try:
        with ExitStack() as stack:
            node = Node(args, work, subject.src, stack)
            node.start()
            node.settled()
            time.sleep(args.idle_seconds)
            node.sample(subject, "idle after start")
            pods: list[tuple[str, str]] = []  # (container, netns), oldest first
            started = time.monotonic()
            for index in range(args.pods):
                netns = node.namespace(index)
                node.add(f"pod-{index}", netns)
                pods.append((f"pod-{index}", netns))
            subject.notes.append(f"{args.pods} ADDs in {time.monotonic() - started:.1f} s")
            node.settled()
            time.sleep(args.idle_seconds)
            node.sample(subject, f"{args.pods} pods")
            started = time.monotonic()
            for cycle in range(1, args.cycles + 1):
                container, netns = pods.pop(0)
                node.delete(container, netns)
                node.add(f"cycle-{cycle}", netns)
                pods.append((f"cycle-{cycle}", netns))
                if cycle % args.every == 0 or cycle == args.cycles:
                    node.sample(subject, f"after {cycle:,} cycles")
            if args.cycles:
                rate = args.cycles / (time.monotonic() - started)
                subject.notes.append(f"{args.cycles:,} DEL+ADD cycles at {rate:.1f} per second")
                node.settled()
                time.sleep(args.idle_seconds)
                node.sample(subject, "settled after the cycles")
            failed = False
    finally:
        if failed:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def mib(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def report(subjects: list[Subject], info: str) -> str:
    lines = [info, ""]
    header = "| stage |"
    rule = "| --- |"
    for subject in subjects:
        header += f" {subject.label} VmRSS | {subject.label} VmHWM | {subject.label} RssAnon |"
        rule += " ---: | ---: | ---: |"
    if len(subjects) == 2:
        header += " VmRSS change |"
        rule += " ---: |"
    lines += [header, rule]
    for row, sample in enumerate(subjects[0].samples):
        line = f"| {sample.stage} |"
        for subject in subjects:
            values = subject.samples[row].values
            line += f" {mib(values['VmRSS'])} | {mib(values['VmHWM'])} | {mib(values['RssAnon'])} |"
        if len(subjects) == 2:
            before, after = (s.samples[row].values["VmRSS"] for s in subjects)
            line += f" {(after - before) / 1024:+.1f} |"
        lines.append(line)
    lines += ["", "MiB. Threads and open descriptors of the daemon:", ""]
    lines.append("| stage |" + "".join(f" {s.label} threads | {s.label} fds |" for s in subjects))
    lines.append("| --- |" + " ---: | ---: |" * len(subjects))
    for row, sample in enumerate(subjects[0].samples):
        cells = "".join(
            f" {s.samples[row].values['Threads']} | {s.samples[row].values['fds']} |"
            for s in subjects
        )
        lines.append(f"| {sample.stage} |{cells}")
    lines.append("")
    for subject in subjects:
        cycles = [s for s in subject.samples if s.stage.startswith("after ")]
        growth = ""
        if len(cycles) >= 2:
            first, last = cycles[0].values["VmRSS"], cycles[-1].values["VmRSS"]
            growth = (
                f"; VmRSS {cycles[0].stage} -> {cycles[-1].stage}: {(last - first) / 1024:+.1f} MiB"
            )
        lines.append(
            f"- {subject.label} = {subject.src} ({subject.notes[0] if subject.notes else ''}"
            f"{'; ' if len(subject.notes) > 1 else ''}{'; '.join(subject.notes[1:])}{growth})"
        )
    return "\n".join(lines)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every clean-up runs."""

    def on_term(number: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000, help="DEL+ADD cycles at full node")
    parser.add_argument("--every", type=int, default=1_000, help="sample every N cycles")
    parser.add_argument("--pods", type=int, default=250, help="pods on the node (max pods)")
    parser.add_argument("--instance-type", default="m5.8xlarge")
    parser.add_argument(
        "--src",
        type=Path,
        action="append",
        help="a source tree to run ipamd from (repeatable; default: this repository's src)",
    )
    parser.add_argument("--label", action="append", help="a name per --src, in order")
    parser.add_argument("--ipam-only", action="store_true", help="no namespaces, no root")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="wait before sampling")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench-tmp", help="work directory")
    args = parser.parse_args()
    sources = [path.resolve() for path in (args.src or [ROOT / "src"])]
    labels = args.label or [
        f"tree {n + 1}" if len(sources) > 1 else "vpccni" for n in range(len(sources))
    ]
    if len(labels) != len(sources):
        raise SystemExit("give one --label per --src")
    for src in sources:
        if not (src / "vpccni" / "__init__.py").is_file():
            raise SystemExit(f"--src {src}: no vpccni package there; give a tree's src directory")
    if not args.ipam_only and os.geteuid() != 0:
        raise SystemExit("daemon_rss.py needs root for the datapath (or give --ipam-only)")
    if args.pods < 1 or args.cycles < 0 or args.every < 1:
        raise SystemExit("--pods >= 1, --cycles >= 0 and --every >= 1, please")
    args.dir.mkdir(parents=True, exist_ok=True)
    subjects = [Subject(src, label) for src, label in zip(sources, labels, strict=True)]
    load = os.getloadavg()[0]
    with terminate_as_interrupt():
        try:
            for subject in subjects:
                print(f"{subject.label}: ipamd from {subject.src} ({describe_tree(subject.src)})")
                measure(args, subject)
        except KeyboardInterrupt:
            print("\ninterrupted; cleaned up", file=sys.stderr)
            return 1
        except (BenchError, VpccniError, OSError, subprocess.CalledProcessError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    info = (
        f"{args.instance_type}, prefix mode, {args.pods} pods, {args.cycles:,} cycles, "
        f"{'IPAM only (no datapath)' if args.ipam_only else 'datapath in a lab netns'}; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, 1-min load "
        f"{load:.1f} -> {os.getloadavg()[0]:.1f}; trees: "
        + ", ".join(f"{s.label} {describe_tree(s.src)}" for s in subjects)
    )
    print()
    print(report(subjects, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
