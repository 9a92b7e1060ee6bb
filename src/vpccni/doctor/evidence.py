"""What the probes saw, as plain values the checks judge: no I/O, nothing but data.

Every piece that could not be read is a :class:`Missing` naming why (the command failed, the
file is absent, the daemon is down), so a check can say "skip" or "fail" with that reason
instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Missing:
    """A piece of evidence that could not be gathered, and why."""

    why: str


@dataclass(frozen=True)
class ForwardChain:
    """``iptables -S FORWARD``: the policy and every rule line."""

    policy: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class RpFilter:
    """``rp_filter`` of the primary interface and of ``all`` (the kernel uses the larger)."""

    interface: str
    interface_value: int
    all_value: int


@dataclass(frozen=True)
class ConfFile:
    """One file of the CNI conf dir, in the order the runtime reads them."""

    name: str
    network: str = ""
    plugin_types: tuple[str, ...] = ()
    socket: str = ""
    plugin_log: str = ""
    """vpccni-cni's ``pluginLogFile`` (the plugin's log, when the conflist names one)."""
    error: str = ""


@dataclass(frozen=True)
class ConfDir:
    """The CNI conf dir's configuration files, sorted as libcni sorts them."""

    path: str
    files: tuple[ConfFile, ...]


@dataclass(frozen=True)
class InstalledPlugin:
    """The plugin binary in the CNI bin dir and what it was compared with.

    ``kind``: ``python`` (a shebang and cni.py), ``static`` (an ELF executable) or ``unknown``;
    ``same_as_shipped``: whether its bytes are those this vpccni installs (None: nothing to
    compare with, ``reference`` says why); ``version_answer``: its answer to CNI VERSION (empty
    when it did not answer, ``version_error`` then says why)."""

    path: str
    kind: str
    same_as_shipped: bool | None
    reference: str
    version_answer: str = ""
    version_error: str = ""
    digest: str = ""


@dataclass(frozen=True)
class DaemonProcess:
    """The running daemon, found as the holder of its socket's lock (``/proc/locks``)."""

    pid: int
    cmdline: tuple[str, ...]
    environ: dict[str, str] = field(repr=False)
    netns: str
    """``/proc/PID/ns/net``: where its sockets, IMDS and EC2 calls live."""
    same_netns: bool


@dataclass(frozen=True)
class HttpAnswer:
    """One GET to the daemon's introspection or metrics listener."""

    status: int
    body: bytes


@dataclass(frozen=True)
class CheckpointCopy:
    """The checkpoint, loaded from a private copy: its assigned addresses; ``corrupt`` says why
    it cannot be loaded; ``absent``: no checkpoint yet (a node that never held a pod)."""

    directory: str
    addresses: frozenset[str] = frozenset()
    cooling: int = 0
    corrupt: str = ""
    absent: bool = False


@dataclass(frozen=True)
class InstanceFacts:
    """What DescribeInstances (and DescribeSubnets) said about this node."""

    instance_id: str
    instance_type: str
    subnets: dict[str, tuple[str, int]]
    """subnet id -> (CIDR, free addresses), for every subnet one of its ENIs is in."""
    metadata_options: dict[str, Any] | None
    """``MetadataOptions`` (HttpTokens, HttpPutResponseHopLimit, ...); None: not reported."""
    subnets_error: str = ""
    """Why DescribeSubnets failed (``subnets`` is then empty)."""
    subnet_id: str = ""
    """The instance's own subnet (its primary ENI's)."""


@dataclass(frozen=True)
class DryRun:
    """One EC2 action tried with ``DryRun=True``: EC2's error code and message."""

    action: str
    code: str
    message: str

    @property
    def allowed(self) -> bool:
        return self.code == "DryRunOperation"

    @property
    def denied(self) -> bool:
        return self.code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException")


@dataclass(frozen=True)
class CloudView:
    """IMDS and EC2 as the daemon reaches them (its network namespace and credentials)."""

    imds_endpoint: str
    identity: dict[str, str] | Missing
    instance: InstanceFacts | Missing
    dry_runs: dict[str, DryRun] | Missing
    ec2_endpoint: str
    as_daemon: bool
    """True: asked with the daemon's environment and from its namespace."""


@dataclass(frozen=True)
class PodImds:
    """Whether a pod's network namespace gets an answer from IMDS."""

    netns: str
    address: str
    token_answer: str
    """What IMDSv2's token PUT got: empty when nothing answered, else the HTTP status line."""
    v1_answer: str
    """What IMDSv1's GET of ``latest/meta-data/`` got, likewise."""
    unreachable_why: str = ""


@dataclass(frozen=True)
class KubeletMaxPods:
    """kubelet's maxPods and where it was read."""

    value: int
    source: str


@dataclass(frozen=True)
class Metrics:
    """The samples of the daemon's ``/metrics`` the checks read."""

    build_version: str
    calls: dict[str, float]
    """``awscni_ec2api_req_count{fn}``: EC2 calls by action."""
    unauthorized: dict[str, float]
    """``vpccni_ec2_unauthorized_total{action}``: denied calls by action."""
