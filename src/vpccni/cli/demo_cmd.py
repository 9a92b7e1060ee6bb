"""``vpccni demo``: the main job on a laptop - emulator, daemon, pod churn, the pool changing.

Starts ``vpccni emulator`` (a VPC, a /24 subnet and one instance) and ``vpccni ipamd`` for that
instance as child processes in a temporary directory, then drives pods through the plugin API
and prints the pool (``vpccni status``) as it grows, holds and shrinks. The emulator's clock is
advanced to show cooldown and the one-minute ENI lifetime without waiting (the section titles
say "(emulator clock)"); while spare ENIs stay, the demo prints why, in the pool rules' own words
from ``/v1/explain``. Everything started is stopped and the temporary directory (logs, sockets,
checkpoint) removed at the end, unless ``--keep`` is given; when the demo fails, the directory
is kept for its logs and named on stderr.
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
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.status_cmd import fetch, render
from vpccni.core.config import parse_bool
from vpccni.core.maxpods import MaxPodsOptions, compute_max_pods
from vpccni.daemon.rpc import call
from vpccni.errors import InvalidInput, VpccniError

KEPT_PREFIX = "no ENI can be freed: "
"""How the pool rules' reason for keeping every secondary ENI starts (``deletable_eni``)."""
COOLDOWN_STEP_SECONDS = 31
"""A step past IP_COOLDOWN_PERIOD's default 30 s."""
LIFETIME_STEP_SECONDS = 61
"""A step past the 60 s an ENI is kept after it joined the pool."""


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the emulator and the daemon, churn pods, show the warm pool changing",
        description="The main job on the embedded emulator: watch upstream's warm-pool "
        "behaviour (WARM_ENI_TARGET etc.) as pods come and go. Extra upstream variables can be "
        "set in the environment (e.g. WARM_IP_TARGET=5).",
    )
    parser.add_argument(
        "--instance-type", default="c5.large", help="the node's instance type (default c5.large)"
    )
    parser.add_argument("--pods", type=int, default=12, help="pods to start, then delete")
    parser.add_argument("--keep", action="store_true", help="leave emulator and daemon running")
    parser.add_argument(
        "--datapath",
        action="store_true",
        help="root: real pods in network namespaces, wired through the CNI plugin, with traffic",
    )
    parser.set_defaults(run=run)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _admin(endpoint: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{endpoint}/admin/{path}", data=data, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class DemoChildExited(VpccniError):
    """The emulator or ipamd the demo started has exited."""


def _wait(what: str, condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except DemoChildExited:
            raise
        except (OSError, ValueError, VpccniError):
            pass
        time.sleep(0.2)
    raise VpccniError(f"demo: timed out waiting for {what}")


class Demo:
    """The child processes and files of one demo run."""

    def __init__(self, directory: Path, instance_type: str) -> None:
        self.directory = directory
        self.instance_type = instance_type
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.socket = directory / "ipamd.sock"
        self.introspection = f"unix:{directory / 'introspection.sock'}"
        self.children: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []  # each child's name, as in its log file's name
        self.instance_id = ""

    def start(self, *daemon_args: str) -> None:
        """Emulator, then ipamd for its one instance (``daemon_args`` extend ipamd's flags)."""
        self.start_daemon(self.start_emulator(), *daemon_args)

    def start_emulator(self) -> str:
        """Start the emulator with a VPC, a /24 and one instance; returns the instance id."""
        scenario = {
            "vpcs": [
                {
                    "name": "vpc",
                    "cidr": "10.0.0.0/16",
                    "subnets": [{"name": "nodes", "cidr": "10.0.1.0/24"}],
                }
            ],
            "instances": [{"name": "node", "type": self.instance_type, "subnet": "nodes"}],
        }
        (self.directory / "scenario.json").write_text(json.dumps(scenario))
        scenario_file = str(self.directory / "scenario.json")
        self._spawn("emulator", ["emulator", "--port", str(self.port), "--scenario", scenario_file])
        self.wait("the emulator", lambda: _admin(self.endpoint, "health"))
        instance_id: str = next(iter(_admin(self.endpoint, "endpoints")["imds"]))
        self.instance_id = instance_id
        return instance_id

    def cloud_env(self, instance_id: str) -> dict[str, str]:
        """How ipamd (and anything else) reaches the emulator as this instance."""
        return {
            "AWS_ENDPOINT_URL_EC2": self.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"{self.endpoint}/imds/{instance_id}/",
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_REGION": "us-west-2",
            "VPCCNI_CLOCK": "emulator",
        }

    def start_daemon(self, instance_id: str, *extra: str) -> None:
        directory = self.directory
        args = ["ipamd", "--socket", str(self.socket)]
        args += ["--checkpoint-dir", str(directory / "checkpoint")]
        args += ["--spool-dir", str(directory / "spool")]
        args += ["--introspection-bind", self.introspection, "--metrics-bind", "none"]
        args += [
            "--tick-seconds",
            "1",
            "--reconcile-seconds",
            "10",
            *pods_capacity(self.instance_type)[2],
            *extra,
        ]
        self._spawn("ipamd", args, self.cloud_env(instance_id))
        self.wait("ipamd", lambda: self.rpc({"op": "status"})["ok"])
        print(
            f"emulator on {self.endpoint}; ipamd for {instance_id} ({self.instance_type}) "
            f"on {self.socket}; logs in {directory} (removed at the end unless --keep)",
            flush=True,
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.directory / f"{name}.log").open("wb")
        child = subprocess.Popen(
            [sys.executable, "-m", "vpccni.cli.main", *args],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.children.append(child)
        self.names.append(name)

    def wait(self, what: str, condition: Any, timeout: float = 60.0) -> None:
        """:func:`_wait`, failing at once (with its log's last line) when a child exits."""

        def done() -> bool:
            for name, child in zip(self.names, self.children, strict=True):
                if child.poll() is not None:
                    log = self.directory / f"{name}.log"
                    lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
                    raise DemoChildExited(
                        f"demo: {name} exited with status {child.returncode} while waiting for "
                        f"{what}: {lines[-1]}"
                    )
            return bool(condition())

        _wait(what, done, timeout)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()

    def left_running(self, *more: str, pids: Sequence[int] = ()) -> str:
        """What ``--keep`` leaves, and how to stop it (``pids``: more processes to stop)."""
        alive = [child.pid for child in self.children if child.poll() is None]
        pids_text = " ".join(str(pid) for pid in [*alive, *pids])
        return "\n".join(
            [
                f"left running (--keep): emulator {self.endpoint}, ipamd on {self.socket} "
                f"(introspection {self.introspection}); files and logs in {self.directory}",
                *more,
                f"stop it with: kill {pids_text}; rm -rf {self.directory}",
            ]
        )

    def rpc(self, request: dict[str, Any]) -> dict[str, Any]:
        return call(self.socket, {"version": 1, **request})

    def pod(self, op: str, name: str) -> dict[str, Any]:
        netns = self.directory / "netns-placeholder"
        netns.touch()
        return self.rpc(
            {
                "op": op,
                "cni": {
                    "command": op.upper(),
                    "container_id": name,
                    "netns": str(netns),
                    "ifname": "eth0",
                    "args": f"K8S_POD_NAMESPACE=demo;K8S_POD_NAME={name}",
                },
                "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
            }
        )

    def add_pod(self, name: str) -> str:
        """ADD ``name`` through the plugin API, retrying while the pool grows; its address."""
        reply: dict[str, Any] = {}

        def added() -> bool:
            reply.clear()
            reply.update(self.pod("add", name))
            return bool(reply["ok"])

        self.wait(f"an address for {name}", added)
        return str(reply["result"]["ips"][0]["address"]).split("/")[0]

    def show(self, title: str, why_kept: bool = False) -> None:
        """Wait until the pool settles, then print it; with ``why_kept``, also why spare ENIs
        stay (the pool rules' reason from ``/v1/explain``, e.g. an ENI younger than 60 s)."""
        self.wait(
            "the pool to settle", lambda: not fetch(self.introspection, "/v1/explain")["actions"]
        )
        print(f"\n== {title}", flush=True)
        explain = fetch(self.introspection, "/v1/explain")
        print(render(explain, fetch(self.introspection, "/v1/pods")), flush=True)
        if why_kept:
            kept = [r for r in explain["reasons"] if r.startswith(KEPT_PREFIX)]
            if kept:
                print(
                    f"why the pool does not shrink yet: {kept[0][len(KEPT_PREFIX) :]}", flush=True
                )

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock (which ipamd follows) forward: no real waiting."""
        _admin(self.endpoint, "clock/advance", {"seconds": seconds})

    def shrink(self) -> None:
        """After the pods are gone: the cooldown ends, then the spare ENIs reach a minute."""
        self.advance(COOLDOWN_STEP_SECONDS)
        self.show(
            f"{COOLDOWN_STEP_SECONDS} s later (emulator clock): the addresses have cooled down, "
            "the spare ENIs stay until they are a minute old",
            why_kept=True,
        )
        self.advance(LIFETIME_STEP_SECONDS)
        time.sleep(2)
        self.show("a minute later (emulator clock): spare ENIs beyond WARM_ENI_TARGET are freed")


def prefix_mode() -> bool:
    """Whether the daemon will run in prefix mode (its own parser reads the same variable)."""
    raw = os.environ.get("ENABLE_PREFIX_DELEGATION", "")
    try:
        return parse_bool(raw) if raw else False
    except ValueError:
        return False  # the daemon refuses the value itself, with the variable named


def pods_capacity(instance_type: str) -> tuple[int, str, list[str]]:
    """How many pods the demo node can hold, why, and the ipamd flags that make it so.

    Secondary-IP mode: the pod addresses of every ENI (the daemon's ``eni-max-pods.txt`` figure
    is two more, for host-network pods). Prefix mode: the demo has no API server to read the
    Node's ``capacity.pods`` from, so the daemon would fall back to that secondary-IP figure
    (29 on an m5.large) and stop there; EKS nodes in prefix mode give kubelet the calculator's
    recommended figure (110 on an m5.large), which the demo passes as ``--max-pods``.
    """
    limits = load_instance_table().get(instance_type)
    if not prefix_mode():
        capacity = limits.enis * limits.secondary_ipv4_per_eni
        why = f"{capacity} pod addresses: {limits.enis} ENIs x {limits.secondary_ipv4_per_eni}"
        return capacity, why, []
    figure = compute_max_pods(limits, MaxPodsOptions(prefix_delegation=True))
    pods = figure.recommended if figure.recommended is not None else figure.uncapped
    why = f"max pods {pods} in prefix mode, as an EKS node's kubelet is given"
    return pods, why, ["--max-pods", str(pods)]


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse an unknown instance type or a pod count the node cannot hold, before starting."""
    capacity, why, _ = pods_capacity(args.instance_type)
    least = 2 if args.datapath else 1
    if not least <= args.pods <= capacity:
        raise InvalidInput(
            f"--pods {args.pods}: give {least} to {capacity} (a {args.instance_type} holds {why}"
            + ("; the traffic proofs need 2 pods)" if args.datapath else ")")
        )
    args.instance_type = load_instance_table().get(args.instance_type).instance_type


def run(args: argparse.Namespace) -> str:
    check_arguments(args)
    directory = Path(tempfile.mkdtemp(prefix="vpccni-demo-"))
    demo = Demo(directory, args.instance_type)
    try:
        if args.datapath:
            from vpccni.cli.demo_datapath import run_datapath

            done = run_datapath(demo, args.pods, args.keep)
        else:
            done = run_ipam(demo, args.pods, args.keep)
    except KeyboardInterrupt:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    except VpccniError as error:
        failed = VpccniError(f"{error}; the demo's logs are kept in {directory}")
        failed.exit_code = error.exit_code
        raise failed from None
    except BaseException:
        print(f"demo: its logs are kept in {directory} (remove it when done)", file=sys.stderr)
        raise
    if args.keep:
        return done
    shutil.rmtree(directory, ignore_errors=True)
    return f"{done}; removed {directory} (--keep leaves everything running)"


def run_ipam(demo: Demo, pods: int, keep: bool) -> str:
    """The IPAM-only demo (pods through the plugin API); returns the closing line."""
    try:
        demo.start()
        demo.show("fresh node: the primary ENI is filled to keep one ENI of addresses warm")
        for index in range(pods):
            print(f"ADD pod-{index}: {demo.add_pod(f'pod-{index}')} (plugin API)", flush=True)
        demo.show(f"{pods} pods: the pool grew ENI by ENI")
        for index in range(pods):
            demo.pod("del", f"pod-{index}")
        print(f"DEL {pods} pods: their addresses cool down for 30 s before reuse", flush=True)
        demo.shrink()
    finally:
        if not keep:
            demo.stop()
    if keep:
        return demo.left_running()
    return "demo done"
