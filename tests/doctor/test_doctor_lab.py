"""`vpccni doctor` on a lab node: a healthy node passes; each fault of the issue's list,
injected alone, is reported as a fail with the right fix. Root and real namespaces (the lab's
node namespace for host faults; the root namespace is never touched)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon.conftest import Node
from tests.doctor.conftest import PORTMAP, DoctorLab, statuses
from tests.netns.conftest import install_plugin
from vpccni.deploy.iam import default_policy
from vpccni.lab.topology import Lab, ip

pytestmark = pytest.mark.netns


def failures(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: check for name, check in checks.items() if check["status"] == "fail"}


def test_a_healthy_lab_node_passes(doctor_lab: DoctorLab) -> None:
    code, checks, report = doctor_lab.doctor()
    assert code == 0, {k: v for k, v in checks.items() if v["status"] != "pass"}
    assert set(statuses(checks).values()) == {"pass"}, statuses(checks)
    assert report["summary"]["pass"] == len(checks) >= 28
    for name in ("imds.pods", "pool.max-pods", "manifest.probes", "iam.CreateTags"):
        assert name in checks  # every group ran with real evidence, none skipped
    assert "no answer" in checks["imds.pods"]["evidence"]
    assert "DryRunOperation" in checks["iam.CreateNetworkInterface"]["evidence"]


def test_forward_policy_drop(doctor_lab: DoctorLab) -> None:
    node_ns = doctor_lab.lab.node  # the lab's node namespace only
    subprocess.run(
        ["ip", "netns", "exec", node_ns, "iptables", "-P", "FORWARD", "DROP"], check=True
    )
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["host.forward-policy"]
    found = checks["host.forward-policy"]
    assert "policy DROP" in found["evidence"]
    assert "iptables -P FORWARD ACCEPT" in found["fix"]
    # Explicit accept rules for the pod interfaces make DROP acceptable.
    for side in ("-i", "-o"):
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                node_ns,
                "iptables",
                "-I",
                "FORWARD",
                side,
                "eni+",
                "-j",
                "ACCEPT",
            ],
            check=True,
        )
    code, checks, _ = doctor_lab.doctor()
    assert checks["host.forward-policy"]["status"] == "pass", checks["host.forward-policy"]


def test_conflist_missing(doctor_lab: DoctorLab) -> None:
    (doctor_lab.conf_dir / "10-vpccni.conflist").unlink()
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert "cni.conflist" in failures(checks)
    found = checks["cni.conflist"]
    assert "no network configuration" in found["evidence"]
    assert "10-vpccni.conflist" in found["fix"]


def test_conflist_not_first(doctor_lab: DoctorLab) -> None:
    other = {"cniVersion": "1.0.0", "name": "leftover", "plugins": [{"type": "bridge"}]}
    (doctor_lab.conf_dir / "05-bridge.conflist").write_text(json.dumps(other))
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["cni.conflist"]
    found = checks["cni.conflist"]
    assert "05-bridge.conflist (bridge) sorts before 10-vpccni.conflist" in found["evidence"]
    assert found["fix"].startswith(f"move {doctor_lab.conf_dir}/05-bridge.conflist out")


def test_plugin_version_mismatch(doctor_lab: DoctorLab) -> None:
    """An older plugin: it still runs and answers VERSION, but it is not this vpccni's (the
    Python plugin's code is vpccni-cni.d/cni.py beside its launcher; a stale bytecode cache is
    not used)."""
    plugin = doctor_lab.bin_dir / "vpccni-cni.d" / "cni.py"
    older = plugin.read_text().replace(
        'DEFAULT_SOCKET = "', '# vpccni 0.0.9\nDEFAULT_SOCKET = "', 1
    )
    assert older != plugin.read_text()
    plugin.write_text(older)
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["cni.plugin-version"]
    found = checks["cni.plugin-version"]
    assert "not the plugin vpccni 0.1.0 ships" in found["evidence"]
    assert "reinstall it" in found["fix"]
    assert "install-cni --bin-dir" in found["fix"]


def test_daemon_down(doctor_lab: DoctorLab) -> None:
    doctor_lab.node.stop()
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert "daemon.socket" in failures(checks)
    assert "start the daemon" in checks["daemon.socket"]["fix"]
    assert checks["daemon.health"]["status"] == "skip"
    assert checks["pool.max-pods"]["status"] == "skip"
    # The checkpoint it left is still checked (from a copy) and loads.
    assert checks["daemon.checkpoint"]["status"] == "pass"
    assert "1 assigned" in checks["daemon.checkpoint"]["evidence"]


def test_subnet_nearly_exhausted(doctor_lab: DoctorLab) -> None:
    backend = doctor_lab.node.backend
    subnet = backend.client.describe_subnets()["Subnets"][0]
    free = int(subnet["AvailableIpAddressCount"])
    while free > 4:  # other users of the subnet take all but 4 addresses
        count = min(free - 5, 40)
        backend.client.create_network_interface(
            SubnetId=subnet["SubnetId"], SecondaryPrivateIpAddressCount=count
        )
        free -= count + 1
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    name = f"pool.subnet.{subnet['SubnetId']}"
    assert list(failures(checks)) == [name]
    assert f"{free} free" in checks[name]["evidence"]
    assert "cannot reach its max pods" in checks[name]["evidence"]
    assert "kubernetes.io/role/cni" in checks[name]["fix"]


FAKE_IMDS = """
import http.server
class Imds(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"token")
    do_PUT = do_GET = answer
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("169.254.169.254", 80), Imds)
print("ready", flush=True)
server.serve_forever()
"""


@contextmanager
def imds_in_the_vpc(lab_vpc: str) -> Iterator[None]:
    """An IMDS stand-in at 169.254.169.254:80 in the lab's VPC namespace, which pods reach
    through the node as on an instance with a hop limit of 2."""
    ip("-n", lab_vpc, "addr", "add", "169.254.169.254/32", "dev", "lo")
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab_vpc, sys.executable, "-c", FAKE_IMDS],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.kill()
        server.wait()


def test_imds_reachable_from_a_pod(doctor_lab: DoctorLab) -> None:
    with imds_in_the_vpc(doctor_lab.lab.vpc):
        code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["imds.pods"]
    found = checks["imds.pods"]
    assert "IMDSv2 token PUT got 'HTTP/1.0 200 OK'" in found["evidence"]
    assert "node role's credentials" in found["evidence"]
    assert "--http-put-response-hop-limit 1" in found["fix"]


def _set_policy(doctor_lab: DoctorLab, document: Any) -> None:
    request = urllib.request.Request(
        f"{doctor_lab.node.server.endpoint}/admin/iam-policy",
        data=json.dumps(document).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"enforcing": document is not None}


def test_iam_policy_missing_an_action(doctor_lab: DoctorLab) -> None:
    policy = default_policy()
    actions = policy["Statement"][0]["Action"]
    actions.remove("ec2:CreateNetworkInterface")
    _set_policy(doctor_lab, policy)
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["iam.CreateNetworkInterface"]
    found = checks["iam.CreateNetworkInterface"]
    assert "UnauthorizedOperation" in found["evidence"]
    assert "ec2:CreateNetworkInterface" in found["evidence"]
    assert found["fix"].startswith("grant ec2:CreateNetworkInterface to the role")
    assert checks["iam.AttachNetworkInterface"]["status"] == "pass"


def test_manifest_with_a_one_second_probe_timeout(doctor_lab: DoctorLab) -> None:
    daemon_set = yaml.safe_load(doctor_lab.manifest.read_text())
    daemon_set["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["timeoutSeconds"] = 1
    broken = Path(doctor_lab.manifest.with_name("timeout-1.yaml"))
    broken.write_text(yaml.safe_dump(daemon_set))
    doctor_lab.manifest = broken
    code, checks, _ = doctor_lab.doctor()
    assert code == 2
    assert list(failures(checks)) == ["manifest.probes"]
    found = checks["manifest.probes"]
    assert "livenessProbe.timeoutSeconds is 1" in found["evidence"]
    assert found["fix"] == "set vpccni-node's livenessProbe.timeoutSeconds: 10"


def test_a_daemon_inside_the_node_namespace_is_reached_there(
    lab_node_net_caps_only: tuple[Node, Lab], tmp_path: Path
) -> None:
    """As on a real node: the daemon in the host's namespace with NET_ADMIN and NET_RAW only,
    its metrics on 127.0.0.1 there and EC2/IMDS through a relay there. The doctor finds it by
    its lock, reads /metrics and asks IMDS and EC2 from its namespace, with its environment."""
    node, lab = lab_node_net_caps_only
    bin_dir, conf_dir = install_plugin(node, tmp_path)
    shutil.copy2(PORTMAP, bin_dir / "portmap")
    code, checks, _ = DoctorLab(node, lab, bin_dir, conf_dir).doctor()
    assert code == 0, {k: v for k, v in checks.items() if v["status"] not in ("pass", "skip")}
    assert "the daemon is vpccni 0.1.0" in checks["cni.plugin-version"]["evidence"]
    assert checks["imds.daemon"]["evidence"].startswith("IMDSv2 at http://127.0.0.1:")
    assert "(asked from this process" not in checks["imds.daemon"]["evidence"]
    assert checks["iam.CreateNetworkInterface"]["status"] == "pass"
    assert "with the daemon's credentials" in checks["iam.CreateNetworkInterface"]["evidence"]
    assert checks["iam.AssignPrivateIpAddresses"]["status"] == "pass"
    skipped = {k for k, v in checks.items() if v["status"] == "skip"}
    assert skipped == {
        "imds.pods",
        "pool.max-pods",
        "manifest.probes",
        "manifest.capabilities",
        "manifest.policy",
        "manifest.settings",
    }
