"""The rendered DaemonSet, run for real: image built from scratch, pod template played by podman.

What runs, and where (never in this machine's own namespaces):

* a lab (``vpccni.lab``): a "node" and a "vpc" network namespace with the emulated instance's
  ENIs as links, kept in step with the in-process EC2 + IMDS emulator;
* a private mount namespace (a holder process made by ``unshare --mount``) with fresh tmpfs over
  the node directories the DaemonSet's hostPath volumes name (/opt, /etc/cni, /var/lib, /var/log,
  /run), so the manifest's real host paths (/opt/cni/bin, /etc/cni/net.d, /run/vpccni,
  /var/lib/vpccni, ...) are used unchanged and nothing lands in the machine's own directories;
* podman ``kube play`` of the Pod the DaemonSet controller would stamp from the manifest
  ``vpccni manifests`` printed (``tests.e2e.kubelet``), inside that mount namespace and the lab's
  node network namespace (``hostNetwork`` is the node's network);
* the daemon reaches the emulator through a loopback forwarder in the node namespace and gets
  its AWS credentials the way an EKS node does: the instance profile's, from IMDS.

Then, as on a node: the init container installs the static plugin; the main container (NET_ADMIN
and NET_RAW only) serves and its probes pass; cnitool (the CNI project's reference runtime) ADDs a
pod through the installed conflist and plugin, and the pod reaches the VPC; the pod's host veth has
upstream's IPv6 settings, written by the unprivileged daemon through the DaemonSet's read-write
mount of the host's /proc/sys/net (its own /proc/sys is read-only); SIGTERM leaves a checkpoint
that loads and holds the pod; the restarted container resumes it; DEL releases it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon.conftest import Node
from tests.e2e.kubelet import pod_from_daemonset, run_probe
from tests.e2e.netns_sockets import Forwarder, connect_in
from tests.image.conftest import BuiltImage
from tests.netns.conftest import PORT, PROBE, ip
from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.lab.sync import LabSync
from vpccni.lab.topology import Lab

ROOT = Path(__file__).parents[2]
CNITOOL = ROOT / ".tools" / "cnitool"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
NODE_DIRS = ("/opt", "/etc/cni", "/var/lib", "/var/log", "/run")
NODE_NAME = "e2e-node"
NET_ADMIN_AND_NET_RAW = (1 << 12) | (1 << 13)
HOST_VETH_SYSCTLS = {"accept_ra": "0", "accept_redirects": "1", "forwarding": "0"}
SYSCTL_WARNING = "cannot set net.ipv6.conf"
INTROSPECTION = ("127.0.0.1", 61679)


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the DaemonSet end to end, but {reason}")
    pytest.skip(reason)


@dataclass
class Host:
    """The node as the DaemonSet sees it: the lab's network, a private mount namespace."""

    lab: Lab
    holder: subprocess.Popen[str]
    image: BuiltImage
    conf: Path
    endpoint: str  # the emulator (EC2 and IMDS) as the node's loopback reaches it

    def path(self, inside: str) -> Path:
        """A path of the private mount namespace, as this process can read it."""
        return Path(f"/proc/{self.holder.pid}/root{inside}")

    def enter(self) -> list[str]:
        return [
            "nsenter",
            f"--mount=/proc/{self.holder.pid}/ns/mnt",
            f"--net=/var/run/netns/{self.lab.node}",
        ]

    def podman(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        image = self.image
        command = [
            *self.enter(),
            *("podman", "--root", str(image.root), "--runroot", str(image.runroot)),
            *("--storage-driver", "overlay", "--cgroup-manager", "cgroupfs"),
            *("--events-backend", "file"),
            *args,
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CONTAINERS_CONF": str(self.conf),
            "HOME": str(self.conf.parent),
        }
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )

    def cnitool(self, *args: str, pod: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NETCONFPATH": "/etc/cni/net.d",
            "CNI_PATH": f"/opt/cni/bin:{DEBIAN_PLUGINS}",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
        }
        return subprocess.run(
            [*self.enter(), str(CNITOOL), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def host(make_node: Any, built_image: BuiltImage) -> Iterator[tuple[Host, Node]]:
    _require(shutil.which("unshare") is not None, "util-linux unshare is missing")
    _require(CNITOOL.exists(), f"{CNITOOL} is missing (scripts/build-cnitool.sh builds it)")
    _require((DEBIAN_PLUGINS / "portmap").exists(), "Debian's containernetworking-plugins")
    missing = [d for d in NODE_DIRS if not Path(d).is_dir()]
    assert not missing, f"the private node needs these directories to mount over: {missing}"
    node: Node = make_node("c5.large")
    lab = Lab(f"ve{os.getpid() % 10000}", IPv4Network("10.0.1.0/24"))
    lab.create()
    sync = LabSync(lab, node.backend.ec2, node.instance_id)
    setup = "set -eu\n"
    setup += "".join(f"mount -t tmpfs -o mode=0755 vpccni-e2e {d}\n" for d in NODE_DIRS)
    setup += f"mkdir -p /opt/cni/bin /etc/cni/net.d {built_image.runroot}\n"
    setup += "echo ready\nexec sleep 3600\n"
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup],
        stdout=subprocess.PIPE,
        text=True,
    )
    server = None
    forwarder = None
    base = Path(tempfile.mkdtemp(prefix="vpccni-e2e-"))
    conf = base / "containers.conf"
    conf.write_text(built_image.containers_conf.read_text())
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        sync.start()
        server = subprocess.Popen(
            [
                *("ip", "netns", "exec", lab.vpc, sys.executable, *PROBE, "serve"),
                *(str(PORT), str(lab.vpc_host), str(lab.internet_host)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        port = int(node.server.endpoint.rsplit(":", 1)[1])
        forwarder = Forwarder(lab.node, port)
        endpoint = f"http://127.0.0.1:{forwarder.port}"
        yield Host(lab, holder, built_image, conf, endpoint), node
    finally:
        if holder.poll() is None:
            shared = Host(lab, holder, built_image, conf, "")
            shared.podman("pod", "rm", "--force", "--all", timeout=120)
            holder.kill()
        holder.wait()
        if forwarder is not None:
            forwarder.close()
        if server is not None:
            server.kill()
            server.wait()
        sync.stop()
        lab.destroy()
        shutil.rmtree(base, ignore_errors=True)


def render_pod(host: Host, node: Node, directory: Path) -> tuple[Path, dict[str, Any]]:
    """``vpccni manifests`` as a user runs it, then the DaemonSet's pod for this node."""
    endpoint, image = host.endpoint, host.image
    command = [
        *(sys.executable, "-m", "vpccni.cli.main", "manifests", "--image", image.ref),
        *("--cluster-name", "e2e", "--region", "us-west-2"),
        *("--set", f"AWS_ENDPOINT_URL_EC2={endpoint}"),
        *("--set", f"AWS_EC2_METADATA_SERVICE_ENDPOINT={endpoint}/imds/{node.instance_id}/"),
        *("--set", "WARM_IP_TARGET=2"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    [daemonset] = [d for d in yaml.safe_load_all(done.stdout) if d["kind"] == "DaemonSet"]
    pod = pod_from_daemonset(daemonset, NODE_NAME)
    path = directory / "pod.yaml"
    path.write_text(yaml.safe_dump(pod, sort_keys=False))
    return path, pod


def wait(
    condition: Callable[[], Any], what: str, on_timeout: Callable[[], str], seconds: float = 120
) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds:g} s waiting for {what}\n{on_timeout()}")


def container_state(host: Host, name: str) -> str:
    done = host.podman("inspect", "--format", "{{.State.Status}}", name)
    return done.stdout.strip() if done.returncode == 0 else f"missing ({done.stderr.strip()})"


def introspect(host: Host, path: str) -> Any:
    sock = connect_in(host.lab.node, *INTROSPECTION, timeout=10)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head
    return json.loads(body)


def send_from(pod_netns: str, lab: Lab) -> str:
    command = ["ip", "netns", "exec", pod_netns, sys.executable, *PROBE, "send"]
    answer = subprocess.run(
        [*command, str(lab.vpc_host), str(PORT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return answer.stdout.strip()


def logs_of(host: Host, name: str) -> Callable[[], str]:
    def logs() -> str:
        done = host.podman("logs", "--tail", "60", name)
        ipamd = host.path("/var/log/aws-routed-eni/ipamd.log")
        tail = "\n".join(ipamd.read_text().splitlines()[-60:]) if ipamd.exists() else "(none)"
        return f"--- podman logs {name}:\n{done.stdout}{done.stderr}\n--- ipamd.log:\n{tail}"

    return logs


def check_init(host: Host, logs: Callable[[], str]) -> None:
    """The init container installed the static plugin and set loose rp_filter on eth0."""
    plugin = host.path("/opt/cni/bin/vpccni-cni")
    wait(plugin.exists, "the init container to install the plugin", logs)
    assert plugin.read_bytes()[:4] == b"\x7fELF"
    key = "/proc/sys/net/ipv4/conf/eth0/rp_filter"
    command = ["nsenter", f"--net=/var/run/netns/{host.lab.node}", "cat", key]
    rp_filter = subprocess.run(command, capture_output=True, text=True, check=True)
    assert rp_filter.stdout.strip() == "2"  # loose, as upstream's init container sets it


def check_serving(host: Host, main: dict[str, Any], name: str, logs: Callable[[], str]) -> None:
    """Running with NET_ADMIN and NET_RAW only, both probes pass, the conflist is written."""
    wait(lambda: container_state(host, name) == "running", "the main container", logs)
    pid = host.podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    capabilities = int(status.split("CapEff:")[1].split()[0], 16)
    assert capabilities == NET_ADMIN_AND_NET_RAW, hex(capabilities)
    assert status.split("NoNewPrivs:")[1].split()[0] == "1"
    for kind in ("readinessProbe", "livenessProbe"):
        probe = main[kind]
        wait(lambda probe=probe: run_probe(probe, host.lab.node)[0], kind, logs)
    conflist = host.path("/etc/cni/net.d/10-vpccni.conflist")
    wait(conflist.exists, "the conflist (written only once ipamd answers)", logs)


def stop_with_sigterm(host: Host, name: str, logs: Callable[[], str], directory: Path) -> Any:
    """SIGTERM, as kubelet sends first; the checkpoint left behind, loaded from a copy."""
    killed = host.podman("kill", "--signal", "TERM", name)
    assert killed.returncode == 0, killed.stderr
    wait(lambda: container_state(host, name) == "exited", "exit on SIGTERM", logs)
    code = host.podman("inspect", "--format", "{{.State.ExitCode}}", name)
    assert code.stdout.strip() == "0", logs()
    copy = directory / "checkpoint"
    shutil.copytree(host.path("/var/lib/vpccni/ipam"), copy)
    return FileCheckpointStore(copy).load()


def check_host_veth_sysctls(
    host: Host, name: str, added: dict[str, Any], logs: Callable[[], str]
) -> None:
    """Upstream's IPv6 settings on the pod's host veth, read in the node's namespace, and no
    warning that /proc/sys was not writable: the daemon wrote them through its mount of the
    host's /proc/sys/net, although the runtime mounts its own /proc/sys read-only."""
    [veth] = [i["name"] for i in added["interfaces"] if not i.get("sandbox")]

    def read(link: str, key: str) -> str:
        path = f"/proc/sys/net/ipv6/conf/{link}/{key}"
        command = ["ip", "netns", "exec", host.lab.node, "cat", path]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    assert read("default", "accept_ra") == "1"  # the kernel default here: the 0 was written
    found = {key: read(veth, key) for key in HOST_VETH_SYSCTLS}
    assert found == HOST_VETH_SYSCTLS, f"{veth}: {found}\n{logs()}"
    write = f"echo 0 > /proc/sys/net/ipv6/conf/{veth}/accept_ra"
    own = host.podman("exec", name, "sh", "-c", write)
    assert own.returncode != 0, "the container's own /proc/sys is writable: nothing was shown"
    assert "Read-only file system" in own.stderr, own.stderr
    every = host.podman("logs", name)
    ipamd = host.path("/var/log/aws-routed-eni/ipamd.log").read_text()
    for text in (every.stdout, every.stderr, ipamd):
        assert SYSCTL_WARNING not in text, logs()


def add_as_kubelet(
    host: Host, netns: str, logs: Callable[[], str]
) -> subprocess.CompletedProcess[str]:
    """ADD, repeated as kubelet retries a failed sandbox (the pool may still be filling)."""
    deadline = time.monotonic() + 120
    while True:
        added = host.cnitool("add", "aws-cni", netns, pod="web-0")
        if added.returncode == 0:
            return added
        # cnitool prints the plugin's message but not its code: retry until the deadline.
        if time.monotonic() > deadline:
            pytest.fail(f"ADD failed: {added.stdout}{added.stderr}\n{logs()}")
        time.sleep(1)


def test_daemonset_pod_serves_pods_through_the_installed_plugin(
    host: tuple[Host, Node], tmp_path: Path
) -> None:
    node_host, node = host
    lab = node_host.lab
    pod_yaml, pod = render_pod(node_host, node, tmp_path)
    main = pod["spec"]["containers"][0]
    name = f"{pod['metadata']['name']}-{main['name']}"
    logs = logs_of(node_host, name)
    played = node_host.podman("kube", "play", str(pod_yaml))
    assert played.returncode == 0, played.stdout + played.stderr
    check_init(node_host, logs)
    check_serving(node_host, main, name, logs)

    pod_netns = f"{lab.prefix}-pod"
    ip("netns", "add", pod_netns)
    sleeper = subprocess.Popen(["nsenter", f"--net=/var/run/netns/{pod_netns}", "sleep", "3600"])
    try:
        netns_path = f"/proc/{sleeper.pid}/ns/net"
        added = add_as_kubelet(node_host, netns_path, logs)
        address = json.loads(added.stdout)["ips"][0]["address"].split("/")[0]
        check_host_veth_sysctls(node_host, name, json.loads(added.stdout), logs)
        assert address in ip("-n", pod_netns, "-4", "addr", "show", "dev", "eth0")
        assert send_from(pod_netns, lab).split()[:1] == [address]
        assert [p["address"] for p in introspect(node_host, "/v1/pods")] == [address]

        state = stop_with_sigterm(node_host, name, logs, tmp_path)
        assert [str(a.address) for a in state.assignments.values()] == [address]

        started = node_host.podman("start", name)
        assert started.returncode == 0, started.stderr
        ready = main["readinessProbe"]
        wait(lambda: run_probe(ready, lab.node)[0], "ready after the restart", logs)
        assert [p["address"] for p in introspect(node_host, "/v1/pods")] == [address]
        assert send_from(pod_netns, lab).split()[:1] == [address]
        deleted = node_host.cnitool("del", "aws-cni", netns_path, pod="web-0")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert introspect(node_host, "/v1/pods") == []
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        ip("netns", "del", pod_netns)
