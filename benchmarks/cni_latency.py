"""CNI ADD/DEL latency of vpccni's two plugins against Debian's ptp + host-local, driven the
same way (root).

Each is exec'd per pod exactly as a runtime does - ``ip netns exec NODE <plugin>`` with the
``CNI_*`` variables and the network config on stdin (``prevResult`` on DEL) - inside the node
namespace of the lab that ``vpccni demo --datapath`` builds, each for a pod namespace created
just before the timed ADD and deleted after the timed DEL. vpccni: the emulator, ``vpccni ipamd
--netns NODE`` with a pre-grown warm pool (MINIMUM_IP_TARGET, no cooldown, so no ADD waits for
EC2), and both plugins with the same network config: the Python plugin as ``vpccni
install-cni --plugin python`` writes it (a launcher behind ``#!/usr/bin/python3 -IS`` running
``cni.py``'s bytecode) and the static Go plugin built by ``scripts/build-plugin.sh``
(plugin-static/). Both pass the pod's namespace to the daemon as two descriptors for ADD
(docs/plugin-api.md). Peer: ``ptp`` with ``host-local`` IPAM (``ipMasq: false``,
10.199.0.0/16, dataDir in the work directory).

Per cycle, in rotating order: each plugin's ADD+DEL, vpccni's daemon ADD+DEL through
``vpccni.daemon.rpc.call`` from this (warm) process with the pod's namespace and a netlink socket
in it passed as the plugin passes them (``tests/pod_fds.py``; opening them is timed apart),
``ip netns exec NODE true`` (the spawn floor), every plugin's VERSION, a ``status`` round trip,
and one cycle of each in-process harness for the daemon's two pieces of work, against throwaway
state: ``IpamService.add`` and ``delete`` on a ``FileCheckpointStore`` in the work directory
(the checkpoint append timed separately), and ``NetlinkPodNetwork.setup`` (given the pod's
descriptors, as the daemon is), ``unroute`` and ``delete_link`` (DEL's parts, from the node's
side: before and after the daemon answers) between a throwaway node netns and fresh pod netns,
with ``IPRoute`` wrapped (in this process only) to time each netlink call. Finally
``--concurrent`` pods are added (and deleted) at once by as many threads, per plugin,
``--rounds`` times, with the time until the node has no pod host veth left. Prints markdown
tables with ratios and the targets of issue 18. Exit 0; on an error
or Ctrl-C/SIGTERM everything created is removed, the work directory is kept for its logs, exit
1.

Run: ``sudo .venv/bin/python benchmarks/cni_latency.py [--cycles 200] [--concurrent 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from functools import partial
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any
from unittest import mock

import pyroute2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.pod_fds: the plugin's way of passing a pod's namespace

from tests.pod_fds import FDS, pod_fds  # noqa: E402

from vpccni.adapters import netlink_kit, pod_network  # noqa: E402
from vpccni.adapters.checkpoint_file import FileCheckpointStore  # noqa: E402
from vpccni.adapters.clock import SystemClock  # noqa: E402
from vpccni.adapters.emulator_time import RemoteEmulatorClock  # noqa: E402
from vpccni.cli.demo_cmd import Demo  # noqa: E402
from vpccni.cli.demo_datapath import DatapathDemo  # noqa: E402
from vpccni.cli.status_cmd import fetch  # noqa: E402
from vpccni.core.checkpoint import CheckpointState, Record  # noqa: E402
from vpccni.core.datastore import Datastore  # noqa: E402
from vpccni.core.model import EniInfo, Mode, PodKey, PodMeta  # noqa: E402
from vpccni.core.naming import MAIN_TABLE, host_veth_name  # noqa: E402
from vpccni.daemon.rpc import call  # noqa: E402
from vpccni.daemon.service import IpamService  # noqa: E402
from vpccni.errors import VpccniError  # noqa: E402
from vpccni.lab.topology import ip  # noqa: E402
from vpccni.node.plugin_install import choose_interpreter, install_plugin  # noqa: E402
from vpccni.ports import Clock, PodNamespace, PodWiring  # noqa: E402

GO_PLUGINS = Path("/usr/lib/cni")
BUILD_PLUGIN = ROOT / "scripts" / "build-plugin.sh"
PYTHON, STATIC, PEER = "vpccni python", "vpccni static", "ptp+host-local"
PEER_SUBNET = "10.199.0.0/16"
HARNESS_SUBNET = IPv4Network("10.250.0.0/24")
WARMUP = 3
TRY_AGAIN = 11  # CNI error code "try again later"
RETRIES, RETRY_SECONDS = 100, 0.1
Samples = dict[str, list[float]]


class BenchError(Exception):
    """A plugin or the lab failed; the benchmark stops (and cleans up)."""


class PluginFailed(BenchError):
    """A plugin exited non-zero; ``code`` is its CNI error code (0 when it printed none)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def pct(samples: list[float], point: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[point - 1]


class BenchDemo(Demo):
    """``Demo`` with the daemon's pool pre-grown and (by default) the production clock."""

    def __init__(self, directory: Path, instance_type: str, minimum: int, emulator_clock: bool):
        super().__init__(directory, instance_type)
        self.minimum = minimum
        self.emulator_clock = emulator_clock

    def cloud_env(self, instance_id: str) -> dict[str, str]:
        env = super().cloud_env(instance_id)
        if not self.emulator_clock:
            env["VPCCNI_CLOCK"] = "system"  # the demo reads the emulator's clock over HTTP
        pool = {"MINIMUM_IP_TARGET": str(self.minimum), "WARM_IP_TARGET": "10"}
        return {**env, **pool, "IP_COOLDOWN_PERIOD": "0"}

    def start_daemon(self, instance_id: str, *extra: str) -> None:
        super().start_daemon(instance_id, *extra, "--reconcile-seconds", "60")  # upstream's


class Namespaces:
    """Pod namespaces (and the harness's node namespace) made by this run."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0
        self.live: set[str] = set()

    def new(self) -> str:
        self.count += 1
        name = f"{self.prefix}-p{self.count}"
        self.live.add(name)
        ip("netns", "add", name)
        return name

    def delete(self, name: str) -> None:
        ip("netns", "del", name)
        self.live.discard(name)

    def delete_all(self) -> None:
        """Every namespace this run made that still exists (whatever ``live`` says)."""
        for number in range(1, self.count + 1):
            name = f"{self.prefix}-p{number}"
            if Path("/var/run/netns", name).exists():
                try:
                    self.delete(name)
                except VpccniError as error:
                    print(f"cleanup: {error}", file=sys.stderr)
        self.live.clear()


class Plugin:
    """One CNI plugin binary exec'd in the node namespace with one network config."""

    def __init__(self, label: str, binary: Path, config: dict[str, Any], node: str, path: str):
        self.label, self.binary, self.config = label, binary, config
        self.node, self.cni_path = node, path

    def spool_record(self, index: int) -> Path | None:
        """Where vpccni-cni writes the DEL record of pod ``index`` when the daemon is away."""
        spool = self.config.get("spoolDir")
        return Path(spool) / f"bench-{index}-eth0.json" if spool else None

    def exec(
        self, command: str, index: int = 0, netns: str = "", prev: dict[str, Any] | None = None
    ) -> tuple[float, dict[str, Any]]:
        env = {"CNI_COMMAND": command, "PATH": os.environ.get("PATH", os.defpath)}
        if command != "VERSION":
            env |= {
                "CNI_CONTAINERID": f"bench-{index}",
                "CNI_NETNS": f"/var/run/netns/{netns}",
                "CNI_IFNAME": "eth0",
                "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{index}",
                "CNI_PATH": self.cni_path,
            }
        config = self.config if prev is None else {**self.config, "prevResult": prev}
        stdin = json.dumps(config).encode()
        argv = ["ip", "netns", "exec", self.node, str(self.binary)]
        started = time.perf_counter()
        done = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
        elapsed = ms_since(started)
        if done.returncode != 0:
            code = 0
            with suppress(ValueError, TypeError, AttributeError):
                code = int(json.loads(done.stdout).get("code", 0))
            raise PluginFailed(
                f"{self.label} {command} failed (exit {done.returncode}): "
                f"{done.stdout.decode().strip()} {done.stderr.decode().strip()}",
                code,
            )
        return elapsed, json.loads(done.stdout) if done.stdout.strip() else {}


def verify_pod(netns: str, result: dict[str, Any], label: str) -> None:
    """The pod's eth0 holds the address the ADD reported (checked outside the timings)."""
    address = result["ips"][0]["address"].split("/")[0]
    if f"inet {address}/" not in ip("-n", netns, "-4", "addr", "show", "dev", "eth0"):
        raise BenchError(f"{label}: eth0 in {netns} does not hold {address} after ADD")


def plugin_cycle(
    plugin: Plugin, spaces: Namespaces, index: int, samples: Samples, verify: bool = False
) -> None:
    netns = spaces.new()
    try:
        add_ms, result = plugin.exec("ADD", index, netns)
        if verify:
            verify_pod(netns, result, plugin.label)
        del_ms, _ = plugin.exec("DEL", index, netns, prev=result)
    finally:
        spaces.delete(netns)
    samples[f"{plugin.label} ADD"].append(add_ms)
    samples[f"{plugin.label} DEL"].append(del_ms)


def rpc_cycle(ours: Plugin, socket: Path, spaces: Namespaces, index: int, samples: Samples) -> None:
    """The daemon's ADD and DEL as a warm client sees them (no plugin process). ADD passes the
    pod's namespace and a netlink socket in it as the plugin does; opening them (a thread that
    enters the namespace to create the socket) is timed apart, outside the ADD."""
    netns = spaces.new()
    cni = {
        "command": "ADD",
        "container_id": f"rpc-{index}",
        "netns": f"/var/run/netns/{netns}",
        "ifname": "eth0",
        "args": f"K8S_POD_NAMESPACE=bench;K8S_POD_NAME=rpc-{index}",
        "path": ours.cni_path,
    }
    try:
        started = time.perf_counter()
        with pod_fds(cni["netns"]) as fds:
            fds_ms = ms_since(started)
            request = {"version": 1, "op": "add", "cni": cni, "config": ours.config, "fds": FDS}
            started = time.perf_counter()
            reply = call(socket, request, fds=fds)
            add_ms = ms_since(started)
        if not reply.get("ok"):
            raise BenchError(f"daemon ADD failed: {reply}")
        prev = {"cniVersion": ours.config["cniVersion"], **reply["result"]}
        request = {"version": 1, "op": "del", "cni": {**cni, "command": "DEL"}}
        started = time.perf_counter()
        reply = call(socket, {**request, "config": {**ours.config, "prevResult": prev}})
        del_ms = ms_since(started)
        if not reply.get("ok"):
            raise BenchError(f"daemon DEL failed: {reply}")
    finally:
        spaces.delete(netns)
    samples["daemon ADD (rpc.call)"].append(add_ms)
    samples["daemon DEL (rpc.call)"].append(del_ms)
    samples["pod fds (client)"].append(fds_ms)


def timed(samples: Samples, name: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    samples[name].append(ms_since(started))


def run_cycles(
    plugins: tuple[Plugin, Plugin, Plugin],
    socket: Path,
    spaces: Namespaces,
    *,
    harnesses: tuple[IpamHarness, WiringHarness],
    cycles: int,
) -> Samples:
    samples: Samples = defaultdict(list)
    ipam, wiring = harnesses
    ours, static, peer = plugins
    floor = ["ip", "netns", "exec", ours.node, shutil.which("true") or "/bin/true"]
    subjects: list[Callable[[int], None]] = [
        lambda i: plugin_cycle(ours, spaces, i, samples, verify=i == 0),
        lambda i: plugin_cycle(static, spaces, i, samples, verify=i == 0),
        lambda i: plugin_cycle(peer, spaces, i, samples, verify=i == 0),
        lambda i: rpc_cycle(ours, socket, spaces, i, samples),
        lambda i: timed(samples, "floor", lambda: subprocess.run(floor, check=True)),
        lambda i: samples[f"{PYTHON} VERSION"].append(ours.exec("VERSION")[0]),
        lambda i: samples[f"{STATIC} VERSION"].append(static.exec("VERSION")[0]),
        lambda i: samples[f"{PEER} VERSION"].append(peer.exec("VERSION")[0]),
        lambda i: timed(samples, "status", lambda: call(socket, {"version": 1, "op": "status"})),
        lambda i: ipam.cycle(i, samples),
        lambda i: wiring.cycle(i, samples),
    ]
    for index in range(-WARMUP, cycles):
        if index == 0:
            samples.clear()  # drop the warm-up
        for offset in range(len(subjects)):
            subjects[(index + offset) % len(subjects)](index + WARMUP)
        if index > 0 and index % 50 == 0:
            print(f"  {index}/{cycles} cycles", flush=True)
    return samples


class TimedStore:
    """A ``CheckpointStore`` that remembers how long its last ``append`` took."""

    def __init__(self, inner: FileCheckpointStore) -> None:
        self.inner = inner
        self.last_ms = 0.0

    def load(self) -> CheckpointState:
        return self.inner.load()

    def append(self, record: Record) -> None:
        started = time.perf_counter()
        self.inner.append(record)
        self.last_ms = ms_since(started)

    def prune_cooldowns(self, cutoff: float) -> None:
        self.inner.prune_cooldowns(cutoff)


class IpamHarness:
    """``IpamService.add``/``delete`` in-process: 3 ENIs x 29 addresses, durable journal."""

    def __init__(self, directory: Path, clock: Clock) -> None:
        self.store = TimedStore(FileCheckpointStore(directory))
        self.store.load()
        datastore = Datastore(Mode.SECONDARY_IP, 0)
        hosts = iter(HARNESS_SUBNET.hosts())
        for device in range(3):
            datastore.add_eni(EniInfo(f"eni-bench{device}", device, primary=device == 0))
            for _ in range(29):
                datastore.add_cidr(f"eni-bench{device}", IPv4Network(f"{next(hosts)}/32"))
        self.service = IpamService(datastore, self.store, clock)

    def cycle(self, index: int, samples: Samples) -> None:
        key = PodKey("aws-cni", f"ipam-{index}", "eth0")
        started = time.perf_counter()
        self.service.add(key, PodMeta("bench", f"pod-{index}"))
        samples["ipam add"].append(ms_since(started))
        samples["ipam add append"].append(self.store.last_ms)
        started = time.perf_counter()
        self.service.delete(key)
        samples["ipam del"].append(ms_since(started))
        samples["ipam del append"].append(self.store.last_ms)

    def close(self) -> None:
        self.store.inner.close()


class CallTimer:
    """Exclusive time per phase of pod wiring, from wrappers around pyroute2 (this process only).

    ``IPRoute`` (as ``vpccni.adapters.pod_network`` sees it) is wrapped so that each netlink call
    and each socket open/close is timed: the pod side is an ``IPRoute`` on (a duplicate of) the
    netlink socket passed with the pod (``fileno=``), the node side the adapter's one long-lived
    node-namespace ``IPRoute``. ``pyroute2.netns.create_socket`` (how pyroute2 opens that node
    socket, by a fork, once per adapter: in the warm-up) is wrapped too. Nested spans are
    subtracted from the outer one, so the phases add up to the time spent in pyroute2.
    """

    def __init__(self) -> None:
        self.real_iproute = pyroute2.IPRoute
        self.real_create_socket = pyroute2.netns.create_socket
        self.phases: dict[str, float] = {}
        self._spent = 0.0

    @contextmanager
    def span(self, phase: str) -> Iterator[None]:
        started, mark = time.perf_counter(), self._spent
        try:
            yield
        finally:
            elapsed = ms_since(started)
            self.phases[phase] = self.phases.get(phase, 0.0) + elapsed - (self._spent - mark)
            self._spent = mark + elapsed

    def iproute(self, *args: Any, **kwargs: Any) -> _TimedIPRoute:
        side = "pod" if "fileno" in kwargs else "node"  # the pod's side: its passed socket
        return _TimedIPRoute(self, side, args, kwargs)

    def create_socket(self, netns: Any = None, *args: Any, **kwargs: Any) -> Any:
        # Never O_CREAT (pyroute2's default): a late socket must not re-create a netns that
        # the clean-up has just deleted. The namespaces exist whenever a cycle runs.
        kwargs["flags"] = 0
        if netns is None:  # a plain socket in this namespace (no fork): its IPRoute's open span
            return self.real_create_socket(netns, *args, **kwargs)
        with self.span("fork: node netns socket"):
            return self.real_create_socket(netns, *args, **kwargs)

    @contextmanager
    def installed(self) -> Iterator[None]:
        with (
            mock.patch.object(pod_network, "IPRoute", self.iproute),
            mock.patch.object(netlink_kit, "IPRoute", self.iproute),  # the workers' node side
            mock.patch.object(pyroute2.netns, "create_socket", self.create_socket),
        ):
            yield


class _TimedIPRoute:
    def __init__(self, timer: CallTimer, side: str, args: Any, kwargs: Any) -> None:
        self._timer, self._side = timer, side
        with timer.span(f"{side}: IPRoute open/close"):
            self._inner = timer.real_iproute(*args, **kwargs)

    def __enter__(self) -> _TimedIPRoute:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._timer.span(f"{self._side}: IPRoute open/close"):
            self._inner.close()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call_timed(*args: Any, **kwargs: Any) -> Any:
            phase = f"{self._side}: netlink calls"
            if name == "link" and args[:1] == ("add",) and kwargs.get("kind") == "veth":
                phase = "veth create"
            elif name == "link" and args[:1] == ("del",):
                phase = "veth delete"
            with self._timer.span(phase):
                return method(*args, **kwargs)

        return call_timed


def in_new_thread(action: Callable[[], object]) -> float:
    """Run ``action`` in a fresh thread, as the daemon's RPC server runs each request; ms."""
    outcome: list[float | BaseException] = []

    def target() -> None:
        started = time.perf_counter()
        try:
            action()
            outcome.append(ms_since(started))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        thread.join()
    except BaseException:
        thread.join()  # Ctrl-C: let the netlink work finish before anything is cleaned up
        raise
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


class WiringHarness:
    """``NetlinkPodNetwork`` in-process, as the daemon calls it: ``setup`` given the pod's
    namespace and a netlink socket in it (opened as the plugin opens them, not timed here);
    DEL's two parts from the node's side, ``unroute`` (before the reply) and ``delete_link``
    (the host veth, after it, in the background: timed to its end). Each call is made from a
    fresh thread, as from a request's worker; the adapter runs it on one of its workers."""

    def __init__(self, spaces: Namespaces) -> None:
        self.spaces = spaces
        self.node = spaces.new()
        self.timer = CallTimer()
        self.patches = ExitStack()
        self.patches.enter_context(self.timer.installed())  # until close(), this process only
        self.network = pod_network.NetlinkPodNetwork(self.node)

    def cycle(self, index: int, samples: Samples) -> None:
        pod = self.spaces.new()
        path = f"/var/run/netns/{pod}"
        address = HARNESS_SUBNET.network_address + 2 + index % 200
        veth = host_veth_name("bench", f"wire-{index}", "", "eth0")
        wiring = PodWiring(path, "eth0", veth, address, MAIN_TABLE, 9001)
        try:
            with pod_fds(path) as (netns_fd, netlink_fd):
                passed = replace(wiring, pod=PodNamespace(netns_fd, netlink_fd))
                self.timed("setup", partial(self.network.setup, passed), samples)
            found: list[int | None] = []
            self.timed("unroute", lambda: found.append(self.unroute(wiring)), samples)
            if found[0] is not None:
                self.timed("veth delete", self.network.delete_link(found[0]).result, samples)
        finally:
            self.spaces.delete(pod)

    def unroute(self, wiring: PodWiring) -> int | None:
        index, failed = self.network.unroute(wiring, address=True)
        if failed:
            raise BenchError(f"unroute of {wiring.host_veth} failed: {failed}")
        return index

    def timed(self, step: str, action: Callable[[], object], samples: Samples) -> None:
        self.timer.phases = {}
        elapsed = in_new_thread(action)
        self.timer.phases["other"] = elapsed - sum(self.timer.phases.values())
        samples[f"wire {step}"].append(elapsed)
        for phase, value in self.timer.phases.items():
            samples[f"wire {step} {phase}"].append(value)

    def close(self) -> None:
        try:
            self.network.close()
        finally:
            self.patches.close()
            self.spaces.delete(self.node)


def concurrent_round(plugin: Plugin, spaces: Namespaces, count: int, base: int) -> Samples:
    """``count`` ADDs released at once by as many threads, then ``count`` DELs likewise.

    An ADD refused with CNI error 11 (try again later) is retried every RETRY_SECONDS, its
    latency counted from the first attempt; refusals are counted. A DEL that vpccni-cni spooled
    (daemon unreachable: exit 0, but nothing released until ipamd restarts) is counted and then
    re-sent one at a time, so that the next round starts from a clean pool.
    """
    names = [spaces.new() for _ in range(count)]
    out: Samples = {"ADD refused": [0.0], "DEL refused": [0.0], "DEL spooled": [0.0]}
    lock = threading.Lock()
    while host_veths(plugin.node):  # what earlier cycles left is gone before the round
        time.sleep(0.005)
    try:
        results: list[dict[str, Any]] = [{} for _ in range(count)]
        for command in ("ADD", "DEL"):
            gate = threading.Barrier(count + 1)

            def one(slot: int, command: str = command, gate: threading.Barrier = gate) -> float:
                gate.wait()
                started = time.perf_counter()
                prev = results[slot] if command == "DEL" else None
                for attempt in range(RETRIES + 1):
                    try:
                        results[slot] = plugin.exec(command, base + slot, names[slot], prev)[1]
                        return ms_since(started)
                    except PluginFailed as error:
                        if error.code != TRY_AGAIN or attempt == RETRIES:
                            raise
                        with lock:
                            out[f"{command} refused"][0] += 1
                    time.sleep(RETRY_SECONDS)
                raise AssertionError("unreachable")

            with ThreadPoolExecutor(max_workers=count) as pool:
                futures = [pool.submit(one, slot) for slot in range(count)]
                try:
                    gate.wait(timeout=60)
                except BaseException:
                    gate.abort()
                    raise
                started = time.perf_counter()
                latencies = [future.result() for future in futures]
                out[f"{command} wall"] = [ms_since(started)]
                if command == "DEL":  # vpccni deletes host veths after its replies
                    while host_veths(plugin.node):
                        time.sleep(0.005)
                    out["DEL settled"] = [ms_since(started)]
            out[command] = latencies
        for slot, prev in enumerate(results):
            record = plugin.spool_record(base + slot)
            if record is not None and record.exists():
                out["DEL spooled"][0] += 1
                plugin.exec("DEL", base + slot, names[slot], prev)
                record.unlink()
    finally:
        for name in names:
            spaces.delete(name)
    return out


def host_veths(node: str) -> int:
    """How many pod host veths the node namespace has (vpccni's ``eni*``, ptp's ``veth*``)."""
    names = (line.split(":")[1].strip() for line in ip("-n", node, "-o", "link").splitlines())
    return sum(1 for name in names if name.startswith(("eni", "veth")))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_pool(demo: Demo, minimum: int, timeout: float = 240.0) -> int:
    """Until ipamd has ``minimum`` addresses ready and no pool action pending."""
    deadline = time.monotonic() + timeout
    available = 0
    while time.monotonic() < deadline:
        with suppress(OSError, ValueError, KeyError):
            available = int(demo.rpc({"op": "status"})["result"]["available"])
            if available >= minimum and not fetch(demo.introspection, "/v1/explain")["actions"]:
                return available
        time.sleep(0.5)
    raise BenchError(f"the warm pool reached {available}/{minimum} addresses in {timeout:.0f} s")


def peer_plugin(work: Path, node: str) -> Plugin:
    binary = GO_PLUGINS / "ptp"
    if not binary.exists() or not (GO_PLUGINS / "host-local").exists():
        raise BenchError(
            f"{binary} or host-local missing: apt-get install -y containernetworking-plugins"
        )
    ipam: dict[str, Any] = {"type": "host-local", "dataDir": str(work / "host-local")}
    ipam |= {"ranges": [[{"subnet": PEER_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}
    plugin = {"type": "ptp", "ipMasq": False, "mtu": 9001, "ipam": ipam}
    conflist = {"cniVersion": "1.0.0", "name": "bench-ptp", "plugins": [plugin]}
    (work / "net.d-peer").mkdir()
    (work / "net.d-peer" / "10-bench-ptp.conflist").write_text(json.dumps(conflist, indent=2))
    return Plugin(PEER, binary, runtime_config(conflist), node, str(GO_PLUGINS))


def vpccni_plugins(work: Path, config: dict[str, Any], node: str) -> tuple[Plugin, Plugin]:
    """The Python plugin as ``install-cni --plugin python`` writes it and the static plugin as
    ``scripts/build-plugin.sh`` builds it, each alone in a bin directory, same network config."""
    python_dir, static_dir = work / "bin-python", work / "bin-static"
    python_dir.mkdir()
    static_dir.mkdir()
    python = install_plugin(python_dir, choose_interpreter(None))
    static = static_dir / "vpccni-cni"
    if shutil.which("go") is None:
        raise BenchError("go is missing: apt-get install -y golang-go (to build plugin-static/)")
    built = subprocess.run(
        ["bash", str(BUILD_PLUGIN), str(static)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise BenchError(f"scripts/build-plugin.sh failed: {built.stderr.strip()}")
    return (
        Plugin(PYTHON, python, config, node, str(python_dir)),
        Plugin(STATIC, static, config, node, str(static_dir)),
    )


def runtime_config(conflist: dict[str, Any]) -> dict[str, Any]:
    """The first plugin's config as a runtime passes it (name and cniVersion injected)."""
    return {
        **conflist["plugins"][0],
        "cniVersion": conflist["cniVersion"],
        "name": conflist["name"],
    }


def row(name: str, samples: list[float], peer: list[float] | None = None) -> str:
    cells = [pct(samples, 50), pct(samples, 90), pct(samples, 99)]
    text = f"| {name} | " + " | ".join(f"{value:.1f}" for value in cells) + " |"
    if peer is not None:
        ratios = (a / b for a, b in zip(cells, (pct(peer, p) for p in (50, 90, 99)), strict=True))
        text += " " + " | ".join(f"{ratio:.2f}x" for ratio in ratios) + " |"
    return text


WIRING_PHASES = (
    ("fork: node netns socket", "node-ns socket (pyroute2 fork; once per daemon)"),
    ("pod: IPRoute open/close", "IPRoute on the pod's passed netlink socket, open/close"),
    ("node: IPRoute open/close", "node IPRoute open/close"),
    ("veth create", "veth create, peer placed in the pod's netns by fd"),
    ("veth delete", "host veth delete"),
    ("pod: netlink calls", "pod side: lookups, up, addr, routes, neigh"),
    ("node: netlink calls", "node side: lookups, MAC read, up, route, rules"),
    ("other", "Python between calls, dup, hand-off to a wiring worker"),
)


def breakdown(op: str, c: Samples, label: str) -> list[str]:
    """Where ``label``'s ADD or DEL time goes (medians; residuals are differences of medians)."""
    m = statistics.median
    step, key = ("setup", "add") if op == "ADD" else ("unroute", "del")
    total, floor = m(c[f"{label} {op}"]), m(c["floor"])
    start = m(c[f"{label} VERSION"]) - floor
    daemon, status = m(c[f"daemon {op} (rpc.call)"]), m(c["status"])
    append = m(c[f"ipam {key} append"])
    datastore = m(c[f"ipam {key}"]) - append
    wire = m(c[f"wire {step}"])
    method = "setup" if op == "ADD" else "unroute (rules, route; the veth later)"
    parts = [
        (f"{label} {op}, end to end", total, "exec of the plugin (table above)"),
        ("  spawn + `ip netns exec` floor", floor, "exec of `ip netns exec NODE true`"),
        ("  plugin start (VERSION - floor)", start, "start-up + reply"),
        (f"  daemon {op}, warm client", daemon, f"rpc.call('{key}') from this process"),
        ("    RPC round trip, trivial handler", status, "rpc.call('status')"),
        ("    IPAM: datastore, lock, clock", datastore, f"harness: IpamService.{key} - append"),
        ("    IPAM: checkpoint append (fdatasync)", append, "harness: FileCheckpointStore"),
        (f"    wiring: NetlinkPodNetwork.{method}", wire, "harness, a wiring worker"),
    ]
    for phase, name in WIRING_PHASES:
        if f"wire {step} {phase}" in c:
            parts.append((f"      {name}", m(c[f"wire {step} {phase}"]), "harness, timed spans"))
    rest = daemon - status - datastore - append - wire
    parts.append(("    rest of the daemon (residual)", rest, "JSON, validation, fds check"))
    how = "open netns, setns, netlink socket, " if op == "ADD" else ""
    parts.append(
        (
            "  plugin: config, request, reply (residual)",
            total - floor - start - daemon,
            f"{how}config, request, reply",
        )
    )
    if op == "DEL":
        parts.append(
            (
                "  (after the reply) host veth delete, in the background",
                m(c["wire veth delete"]),
                "harness: NetlinkPodNetwork.delete_link, to its end",
            )
        )
    if op == "ADD":
        parts.append(
            (
                "  (for scale) open netns + netlink socket in it",
                m(c["pod fds (client)"]),
                "this warm process, a thread enters the netns (tests/pod_fds.py)",
            )
        )
    lines = [f"| {name} | {value:.1f} | {how} |" for name, value, how in parts]
    return ["| phase | ms | measured by |", "| --- | ---: | --- |", *lines]


def cycle_table(c: Samples) -> list[str]:
    lines = ["| subject | p50 | p90 | p99 | ratio p50 | ratio p90 | ratio p99 |"]
    lines += ["| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for op in ("ADD", "DEL"):
        for label in (PYTHON, STATIC):
            lines.append(row(f"{label} {op}", c[f"{label} {op}"], c[f"{PEER} {op}"]))
        lines.append(row(f"{PEER} {op}", c[f"{PEER} {op}"]) + " | | |")
    for name, label in (
        ("daemon ADD (rpc.call)", "vpccni daemon ADD, rpc.call"),
        ("daemon DEL (rpc.call)", "vpccni daemon DEL, rpc.call"),
        ("pod fds (client)", "open netns + netlink socket in it (warm process)"),
        ("status", "vpccni status, rpc.call"),
        ("floor", "ip netns exec NODE true"),
        (f"{PYTHON} VERSION", f"{PYTHON} VERSION"),
        (f"{STATIC} VERSION", f"{STATIC} VERSION"),
        (f"{PEER} VERSION", "ptp VERSION"),
    ):
        lines.append(row(label, c[name]) + " | | |")
    return lines


def concurrent_table(concurrent: dict[str, Samples]) -> list[str]:
    m = statistics.median
    lines = [
        "| subject | ADD p50 | ADD p99 | ADD wall | DEL p50 | DEL p99 | DEL wall "
        "| host veths gone | ADD attempts refused (11) | DELs spooled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, s in concurrent.items():
        cells = [pct(s["ADD"], 50), pct(s["ADD"], 99), m(s["ADD wall"])]
        cells += [pct(s["DEL"], 50), pct(s["DEL"], 99), m(s["DEL wall"]), m(s["DEL settled"])]
        cells += [sum(s["ADD refused"]) + sum(s["DEL refused"]), sum(s["DEL spooled"])]
        lines.append(f"| {label} | " + " | ".join(f"{v:.0f}" for v in cells) + " |")
    peer = concurrent[PEER]
    lines.append("")
    for label in (PYTHON, STATIC):
        ours = concurrent[label]
        lines.append(
            f"ratios {label} / peer: ADD p50 {pct(ours['ADD'], 50) / pct(peer['ADD'], 50):.2f}x, "
            f"ADD p99 {pct(ours['ADD'], 99) / pct(peer['ADD'], 99):.2f}x, "
            f"ADD wall {m(ours['ADD wall']) / m(peer['ADD wall']):.2f}x, "
            f"DEL p50 {pct(ours['DEL'], 50) / pct(peer['DEL'], 50):.2f}x, "
            f"DEL wall {m(ours['DEL wall']) / m(peer['DEL wall']):.2f}x, "
            f"host veths gone {m(ours['DEL settled']) / m(peer['DEL settled']):.2f}x"
        )
    return lines


def report(cycles: Samples, concurrent: dict[str, Samples], info: str) -> str:
    lines = [info, "", f"One pod at a time, ms (ratio = vpccni / {PEER}):", ""]
    lines += cycle_table(cycles)
    for label in (PYTHON, STATIC):
        lines += ["", f"{label} ADD breakdown (medians, ms; residuals: differences of medians):"]
        lines += ["", *breakdown("ADD", cycles, label)]
    lines += ["", f"{PYTHON} DEL breakdown (same method):", ""]
    lines += breakdown("DEL", cycles, PYTHON)
    n = len(concurrent[PYTHON]["ADD"]) // max(1, len(concurrent[PYTHON]["ADD wall"]))
    rounds = len(concurrent[PYTHON]["ADD wall"])
    lines += [
        "",
        f"{n} pods at once, one thread each, {rounds} rounds; ms (wall: release to last exit; "
        "host veths gone: release until the node namespace has no pod host veth left, polled "
        "every ~5 ms plus an `ip` exec; "
        f"p50/p99 over all pods, wall the median round; a refused ADD is retried every "
        f"{RETRY_SECONDS * 1000:.0f} ms, its latency counted from the first attempt; refusals "
        "and spooled DELs are totals over the rounds):",
        "",
    ]
    lines += concurrent_table(concurrent)
    m = statistics.median
    peer_add, peer_del = m(cycles[f"{PEER} ADD"]), m(cycles[f"{PEER} DEL"])
    lines.append("")
    for label in (PYTHON, STATIC):
        add = m(cycles[f"{label} ADD"])
        ratio = add / peer_add
        verdict = "MET" if ratio <= 2 else f"NOT MET: {add - 2 * peer_add:.1f} ms too slow per ADD"
        lines.append(f"Target, {label} ADD p50 <= 2x the peer's: {ratio:.2f}x - {verdict}")
        ratio = m(cycles[f"{label} DEL"]) / peer_del
        lines.append(f"Target, {label} DEL p50 <= 1x the peer's: {ratio:.2f}x - {met(ratio, 1)}")
        ours, peer = concurrent[label], concurrent[PEER]
        for op in ("ADD", "DEL"):
            ratio = m(ours[f"{op} wall"]) / m(peer[f"{op} wall"])
            lines.append(
                f"Target, {label} {n} pods at once, {op} wall <= 1.5x the peer's: {ratio:.2f}x - "
                f"{met(ratio, 1.5)}"
            )
    return "\n".join(lines)


def met(ratio: float, target: float) -> str:
    return "MET" if ratio <= target else "NOT MET"


@contextmanager
def terminate_as_interrupt(owner: int) -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C in this process, so every ``finally`` cleans up.

    pyroute2 opens a netns socket in a forked child that it then SIGTERMs; such a child must
    die as by default, never unwind into the clean-up below (it would tear the lab down).
    """

    def on_term(number: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def only_in(owner: int) -> None:
    """A forked child (pyroute2's netns helper, e.g. hit by Ctrl-C) exits here at once."""
    if os.getpid() != owner:
        os._exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="ADD/DEL cycles per subject")
    parser.add_argument("--concurrent", type=int, default=50, help="pods added at once")
    parser.add_argument("--rounds", type=int, default=3, help="concurrent rounds per plugin")
    parser.add_argument("--instance-type", default="m5.4xlarge")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench-tmp", help="work directory")
    parser.add_argument(
        "--emulator-clock",
        action="store_true",
        help="let ipamd read the emulator's clock over HTTP on every ADD/DEL, as `vpccni demo`",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("cni_latency.py needs root: it creates network namespaces")
    if not 2 <= args.concurrent <= 150 or args.cycles < 2 or args.rounds < 1:
        raise SystemExit("--cycles >= 2, --rounds >= 1 and 2 <= --concurrent <= 150, please")
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"cni-latency-{os.getpid()}-", dir=args.dir))
    demo = BenchDemo(work, args.instance_type, args.concurrent + 30, args.emulator_clock)
    datapath = DatapathDemo(demo)
    datapath.lab.prefix = f"vt-cd{os.getpid() % 100000}"  # the lab's node and vpc namespaces
    spaces = Namespaces(f"vt-cl{os.getpid() % 100000}")
    failed, owner = True, os.getpid()
    with terminate_as_interrupt(owner):
        try:
            failed = run(args, work, demo, datapath, spaces)
        except KeyboardInterrupt:
            only_in(owner)
            print("\ninterrupted; cleaning up", file=sys.stderr)
        except (BenchError, VpccniError) as error:
            only_in(owner)
            print(f"error: {error}", file=sys.stderr)
        finally:
            only_in(owner)
            spaces.delete_all()
            datapath.stop()
            spaces.delete_all()  # again: nothing may bring one back, but make sure
            if failed:
                print(f"logs kept in {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def run(
    args: argparse.Namespace,
    work: Path,
    demo: BenchDemo,
    datapath: DatapathDemo,
    spaces: Namespaces,
) -> bool:
    """The whole benchmark; returns whether it failed."""
    datapath.start()
    available = wait_for_pool(demo, demo.minimum)
    assert datapath.sync is not None
    datapath.sync.once()
    datapath.sync.stop()  # the pool is stable now: no EC2 polling behind the timings
    conflist = json.loads((datapath.conf_dir / "10-vpccni.conflist").read_text())
    node = datapath.lab.node
    ours, static = vpccni_plugins(work, runtime_config(conflist), node)
    peer = peer_plugin(work, node)
    print(f"warm pool ready: {available} addresses; {args.cycles} cycles", flush=True)
    daemon = demo.children[-1].pid
    fds_before, load_before = open_fds(daemon), os.getloadavg()[0]
    clock: Clock = RemoteEmulatorClock(demo.endpoint) if args.emulator_clock else SystemClock()
    ipam, wiring = IpamHarness(work / "ipam-harness", clock), WiringHarness(spaces)
    try:
        cycles = run_cycles(
            (ours, static, peer), demo.socket, spaces, harnesses=(ipam, wiring), cycles=args.cycles
        )
    finally:
        ipam.close()
        wiring.close()
    fds_after, load_after = open_fds(daemon), os.getloadavg()[0]
    daemon_rss = rss_mb(daemon)
    harness_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    concurrent: dict[str, Samples] = {PYTHON: {}, STATIC: {}, PEER: {}}
    print(f"{args.concurrent} pods at once, {args.rounds} rounds per plugin", flush=True)
    for round_number in range(args.rounds):
        for plugin in (ours, static, peer):
            base = 100_000 + round_number * 1000
            result = concurrent_round(plugin, spaces, args.concurrent, base)
            for name, values in result.items():
                concurrent[plugin.label].setdefault(name, []).extend(values)
    fs = subprocess.run(
        ["stat", "-f", "-c", "%T", str(work)], check=False, capture_output=True, text=True
    )
    info = (
        f"{args.cycles} cycles, {args.instance_type}, clock "
        f"{'emulator (HTTP)' if args.emulator_clock else 'system'}, work dir on "
        f"{fs.stdout.strip()}, {os.cpu_count()} CPUs; daemon RSS {daemon_rss:.0f} MB, "
        f"harness max RSS {harness_rss:.0f} MB.\nDuring the cycles ipamd's open fds went "
        f"{fds_before} -> {fds_after} ({6 * (args.cycles + WARMUP)} ADD/DEL requests reached "
        f"it). 1-min load average {load_before:.1f} before the cycles, {load_after:.1f} after."
    )
    print()
    print(report(cycles, concurrent, info))
    return False


if __name__ == "__main__":
    sys.exit(main())
