"""IMDS and EC2 as the daemon sees them, and IMDS as a pod sees it.

The daemon's view comes from ``vpccni.adapters.node_cloud_probe`` run as a child process with
the daemon's AWS environment (its credentials, endpoints and region; nothing else of it) and,
when the daemon lives in another network namespace, inside that one (``nsenter``): so the
DryRun calls are authorized as the daemon's own calls would be. Without a running daemon the
child gets this process's environment, and the evidence says so.

A pod's view is one TCP connection from a socket made in the pod's namespace to
``169.254.169.254:80``: an IMDSv2 token request (PUT) and an IMDSv1 GET. Any HTTP answer means
the pod can read the node's credentials; a hop limit of 1 drops the answer on its way back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from vpccni.doctor.evidence import CloudView, DaemonProcess, DryRun, InstanceFacts, Missing, PodImds
from vpccni.doctor.probes.netns import in_netns

IMDS_ADDRESS = "169.254.169.254"
IMDS_PORT = 80
POD_TIMEOUT_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 90.0
PROBE_MODULE = "vpccni.adapters.node_cloud_probe"
PASSED_VARIABLES = ("PATH", "PYTHONPATH", "HOME", "LANG")
"""Besides every ``AWS_*`` variable, what the child needs to start Python."""
TOKEN_REQUEST = (
    b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n"
    b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
V1_REQUEST = (
    b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n"
)


def cloud_view(
    daemon: DaemonProcess | Missing,
    imds_endpoint: str,
    ec2_endpoint: str | None,
    region: str | None,
    cluster_name: str,
) -> CloudView:
    """Run the cloud probe as the daemon (or as this process when it is not running)."""
    as_daemon = not isinstance(daemon, Missing)
    source = daemon.environ if isinstance(daemon, DaemonProcess) else dict(os.environ)
    env = {k: v for k, v in source.items() if k.startswith("AWS_")}
    env |= {k: os.environ[k] for k in PASSED_VARIABLES if k in os.environ}
    argv = [sys.executable, "-m", PROBE_MODULE]
    if isinstance(daemon, DaemonProcess) and not daemon.same_netns:
        argv = ["nsenter", f"--net={daemon.netns}", *argv]
    request = {
        "imds_endpoint": imds_endpoint,
        "ec2_endpoint": ec2_endpoint,
        "region": region,
        "cluster_name": cluster_name,
    }
    shown = ec2_endpoint or "EC2 (AWS)"
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(request),
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        answer: dict[str, Any] = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        why = Missing(f"the cloud probe did not answer: {error}")
        return CloudView(imds_endpoint, why, why, why, shown, as_daemon)
    return _view(answer, imds_endpoint, shown, as_daemon)


def _view(answer: dict[str, Any], imds: str, ec2: str, as_daemon: bool) -> CloudView:
    if "identity" not in answer:
        why = Missing(str(answer.get("identity_error", "no answer")))
        later = Missing("IMDS gave no instance id to ask EC2 about")
        return CloudView(imds, why, later, later, ec2, as_daemon)
    identity = {str(k): str(v) for k, v in answer["identity"].items()}
    if "instance" not in answer:
        why = Missing(f"DescribeInstances failed: {answer.get('instance_error', 'no answer')}")
        return CloudView(imds, identity, why, why, ec2, as_daemon)
    raw = answer["instance"]
    subnets = {
        str(subnet): (str(cidr), int(free))
        for subnet, (cidr, free) in (raw.get("subnets") or {}).items()
    }
    instance = InstanceFacts(
        str(raw.get("instance_id", "")),
        str(raw.get("instance_type", "")),
        subnets,
        raw.get("metadata_options"),
        subnets_error=str(raw.get("subnets_error", "")),
        subnet_id=str(raw.get("subnet_id", "")),
    )
    dry_runs = {
        action: DryRun(action, str(found.get("code", "")), str(found.get("message", "")))
        for action, found in (answer.get("dry_runs") or {}).items()
    }
    return CloudView(imds, identity, instance, dry_runs, ec2, as_daemon)


def pod_imds(netns: str, address: str = IMDS_ADDRESS, port: int = IMDS_PORT) -> PodImds:
    """Ask IMDS from inside the pod namespace ``netns`` (a path): both requests' answers."""
    answers: list[str] = []
    why = ""
    for request in (TOKEN_REQUEST, V1_REQUEST):
        try:
            answers.append(_ask(netns, address, port, request))
        except OSError as error:
            answers.append("")
            why = why or (error.strerror or str(error) or type(error).__name__)
    return PodImds(netns, f"{address}:{port}", answers[0], answers[1], why)


def _ask(netns: str, address: str, port: int, request: bytes) -> str:
    """The status line IMDS answers ``request`` with ("" when the connection closes silently)."""
    made = in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    with made as connection:
        connection.settimeout(POD_TIMEOUT_SECONDS)
        connection.connect((address, port))
        connection.sendall(request)
        head = connection.recv(256)
    return head.split(b"\r\n", 1)[0].decode(errors="replace")
