"""``vpccni demo --datapath``: the main job with real pods (root only).

On top of the IPAM demo: a lab (a "node" and a "vpc" network namespace, one veth pair per ENI
the emulator attaches), ipamd wiring pods and host networking in the node namespace, the plugin
installed with ``vpccni install-cni`` and exec'd for every pod exactly as a container runtime
does (``CNI_*`` variables, network config on stdin), then proofs that traffic flows: pod to pod
on the node, a pod on a secondary ENI to a VPC host through that ENI's route table, and a pod to
a host outside the VPC CIDR leaving with the node's address (SNAT). The pods are then deleted
through the plugin and the pool shrinks on the emulator's clock, as in the IPAM demo (the spare
ENIs stay, with the reason, until they are a minute old). Everything is removed at the end unless
``--keep``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from ipaddress import IPv4Network
from typing import Any

from vpccni.adapters.ec2_boto3 import emulator_ec2
from vpccni.cli.demo_cmd import Demo
from vpccni.errors import VpccniError
from vpccni.lab.sync import LabSync
from vpccni.lab.topology import Lab, ip

PORT = 7777
PROBE = [sys.executable, "-m", "vpccni.lab.probe"]


class DatapathDemo:
    """Pods in network namespaces, wired through the real CNI exec path."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.lab = Lab(f"vd{os.getpid() % 100000}", IPv4Network("10.0.1.0/24"))
        self.bin_dir = demo.directory / "bin"
        self.conf_dir = demo.directory / "net.d"
        self.pods: list[tuple[str, str]] = []  # (netns name, address)
        self.sync: LabSync | None = None
        self.servers: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        demo, lab = self.demo, self.lab
        if os.geteuid() != 0:
            raise VpccniError("vpccni demo --datapath needs root (it creates network namespaces)")
        instance_id = demo.start_emulator()
        lab.create()
        self.sync = LabSync(lab, emulator_ec2(demo.endpoint), instance_id)
        self.sync.start()
        self._serve(lab.vpc, str(lab.vpc_host), str(lab.internet_host))
        demo.start_daemon(instance_id, "--netns", lab.node)
        self.bin_dir.mkdir()
        self.conf_dir.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "vpccni.cli.main",
                "install-cni",
                "--bin-dir",
                str(self.bin_dir),
                "--conf-dir",
                str(self.conf_dir),
                "--socket",
                str(demo.socket),
                "--spool-dir",
                str(demo.directory / "spool"),
            ],
            check=True,
            capture_output=True,
        )
        print(f"lab: namespaces {lab.node} and {lab.vpc}; plugin in {self.bin_dir}", flush=True)

    def cni(self, command: str, index: int) -> dict[str, Any]:
        """Exec the installed plugin for pod ``index`` as a runtime does, in the node netns."""
        conflist = json.loads((self.conf_dir / "10-vpccni.conflist").read_text())
        config = {
            **conflist["plugins"][0],
            "cniVersion": conflist["cniVersion"],
            "name": conflist["name"],
        }
        netns = f"{self.lab.prefix}-pod{index}"
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": f"demo-{index}",
            "CNI_NETNS": f"/var/run/netns/{netns}",
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"K8S_POD_NAMESPACE=demo;K8S_POD_NAME=pod-{index}",
            "CNI_PATH": str(self.bin_dir),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        done = subprocess.run(
            ["ip", "netns", "exec", self.lab.node, str(self.bin_dir / "vpccni-cni")],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            return {"error": json.loads(done.stdout or "{}")}
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def add_pods(self, count: int) -> None:
        for index in range(count):
            ip("netns", "add", f"{self.lab.prefix}-pod{index}")
            for _ in range(100):
                result = self.cni("ADD", index)
                if "ips" in result:
                    break
                subprocess.run(["sleep", "0.2"], check=False)
            else:
                raise VpccniError(f"pod-{index} got no address: {result}")
            address = result["ips"][0]["address"].split("/")[0]
            self.pods.append((f"{self.lab.prefix}-pod{index}", address))
            veth = result["interfaces"][0]["name"]
            print(f"ADD pod-{index}: {address} (host veth {veth})", flush=True)

    def prove_connectivity(self) -> None:
        lab = self.lab
        first, second, last = self.pods[0], self.pods[1], self.pods[-1]
        self._serve(second[0], second[1])
        peer = self._probe(first[0], second[1])
        print(f"pod-0 -> pod-1 ({second[1]}): answered, pod-1 saw {peer[0]}", flush=True)
        on_eni = {str(a): e for e in self._enis() for a in e.secondary_ips}
        device = on_eni[last[1]].attachment.device_index if on_eni[last[1]].attachment else 0
        peer = self._probe(last[0], str(lab.vpc_host))
        print(
            f"pod-{len(self.pods) - 1} ({last[1]}, ENI device {device}) -> VPC host "
            f"{lab.vpc_host}: arrived from {peer[0]} on VPC link {peer[1]} "
            f"(the ENI's own route table {device + 1 if device else 'main'})",
            flush=True,
        )
        peer = self._probe(first[0], str(lab.internet_host))
        print(
            f"pod-0 ({first[1]}) -> internet host {lab.internet_host}: arrived from "
            f"{peer[0]} (SNAT to the node's primary address)",
            flush=True,
        )

    def delete_pods(self) -> None:
        for index, _ in enumerate(self.pods):
            self.cni("DEL", index)
        print(
            f"DEL {len(self.pods)} pods through the plugin: their addresses cool down for 30 s "
            "before reuse",
            flush=True,
        )

    def stop(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait()
        if self.sync is not None:
            self.sync.stop()
        self.demo.stop()
        for index in range(len(self.pods) + 1):
            ip("netns", "del", f"{self.lab.prefix}-pod{index}", check=False)
        self.lab.destroy()

    def _enis(self) -> list[Any]:
        assert self.sync is not None
        return self.sync.ec2.describe_enis(
            filters={"attachment.instance-id": [self.demo.instance_id]}
        )

    def _serve(self, netns: str, *addresses: str) -> None:
        server = subprocess.Popen(
            ["ip", "netns", "exec", netns, *PROBE, "serve", str(PORT), *addresses],
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None
        server.stdout.readline()
        self.servers.append(server)

    def _probe(self, netns: str, host: str) -> list[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", netns, *PROBE, "send", host, str(PORT)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            raise VpccniError(f"no answer from {host} in {netns}: traffic does not flow")
        return done.stdout.split()


def run_datapath(demo: Demo, pods: int, keep: bool) -> str:
    """The whole datapath demo; returns the closing line."""
    datapath = DatapathDemo(demo)
    try:
        datapath.start()
        demo.show("fresh node")
        datapath.add_pods(pods)
        demo.show(f"{pods} pods wired through the CNI exec path")
        datapath.prove_connectivity()
        datapath.delete_pods()
        demo.shrink()
    finally:
        if not keep:
            datapath.stop()
    if keep:
        lab = datapath.lab
        spaces = [lab.node, lab.vpc, *(f"{lab.prefix}-pod{i}" for i in range(len(datapath.pods)))]
        return demo.left_running(
            f"network namespaces {', '.join(spaces)} (plugin in {datapath.bin_dir}); remove "
            "them with: " + "; ".join(f"ip netns del {name}" for name in spaces),
            pids=[server.pid for server in datapath.servers if server.poll() is None],
        )
    return "datapath demo done"
