"""``vpccni demo``: the main job on a laptop - emulator, daemon, pod churn, the pool changing.

Starts ``vpccni emulator`` (a VPC, a /24 subnet and one instance) and ``vpccni ipamd`` for that
instance as child processes in a temporary directory, then drives pods through the plugin API
and prints the pool (``vpccni status``) as it grows, holds and shrinks. The emulator's clock is
advanced to show cooldown and the one-minute ENI lifetime without waiting. Everything started is
stopped at the end, unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from vpccni.cli.status_cmd import fetch, render
from vpccni.daemon.rpc import call
from vpccni.errors import VpccniError


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


def _wait(what: str, condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
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
        _wait("the emulator", lambda: _admin(self.endpoint, "health"))
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
        args += ["--tick-seconds", "1", "--reconcile-seconds", "10", *extra]
        self._spawn("ipamd", args, self.cloud_env(instance_id))
        _wait("ipamd", lambda: self.rpc({"op": "status"})["ok"])
        print(
            f"emulator on {self.endpoint}; ipamd for {instance_id} ({self.instance_type}) "
            f"on {self.socket}; logs in {directory}",
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

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()

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

    def show(self, title: str) -> None:
        _wait("the pool to settle", lambda: not fetch(self.introspection, "/v1/explain")["actions"])
        print(f"\n== {title}", flush=True)
        explain = fetch(self.introspection, "/v1/explain")
        print(render(explain, fetch(self.introspection, "/v1/pods")), flush=True)

    def advance(self, seconds: float) -> None:
        _admin(self.endpoint, "clock/advance", {"seconds": seconds})


def run(args: argparse.Namespace) -> str:
    directory = Path(tempfile.mkdtemp(prefix="vpccni-demo-"))
    demo = Demo(directory, args.instance_type)
    if args.datapath:
        from vpccni.cli.demo_datapath import run_datapath

        return run_datapath(demo, args.pods, args.keep)
    try:
        demo.start()
        demo.show("fresh node: the primary ENI is filled to keep one ENI of addresses warm")
        for index in range(args.pods):
            name = f"pod-{index}"
            _wait(f"an address for {name}", lambda n=name: demo.pod("add", n)["ok"])
            print(f"ADD {name}", flush=True)
        demo.show(f"{args.pods} pods: the pool grew ENI by ENI")
        for index in range(args.pods):
            demo.pod("del", f"pod-{index}")
        print(f"DEL {args.pods} pods", flush=True)
        demo.advance(31)
        demo.show("pods gone, cooldown over: spare ENIs stay until they are a minute old")
        demo.advance(61)
        time.sleep(2)
        demo.show("a minute later: spare ENIs beyond WARM_ENI_TARGET are freed")
    finally:
        if not args.keep:
            demo.stop()
    if args.keep:
        return f"left running: emulator {demo.endpoint}, ipamd socket {demo.socket}"
    return f"demo done; logs in {directory}"
