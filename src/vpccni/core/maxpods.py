"""Max pods per node, with the semantics of the EKS max-pods calculator.

Secondary-IP mode: ``ENIs * (IPv4 per ENI - 1) + 2`` (the ENI's primary address is not for
pods; the two host-network pods, aws-node and kube-proxy, need no pod address). Prefix mode:
every non-primary address slot holds a /28, so ``ENIs * (IPv4 per ENI - 1) * 16 + 2``.

ENIs are the default network card's; ``max_eni`` clamps them first, custom networking then takes
the primary ENI away. Prefix delegation applies only when EC2 reports the hypervisor as exactly
"nitro" and the CNI version is at least 1.9 -- otherwise the calculator silently falls back to
secondary IPs, and we say so in ``note``. The uncapped figure is what nodes get by default from
``eni-max-pods.txt``; the recommended figure applies the calculator's vCPU cap (110 for at most
30 vCPUs, 250 above).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpccni.core.limits import InstanceLimits
from vpccni.errors import InvalidInput, MissingFact

ADDRESSES_PER_PREFIX = 16
HOST_NETWORK_PODS = 2
SMALL_NODE_VCPUS = 30
SMALL_NODE_CAP = 110
LARGE_NODE_CAP = 250
PREFIX_DELEGATION_MIN_CNI = (1, 9)

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class CniVersion:
    """A VPC CNI release number; only major and minor matter to max pods."""

    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def supports_prefix_delegation(self) -> bool:
        """Prefix delegation arrived in VPC CNI 1.9.0."""
        return (self.major, self.minor) >= PREFIX_DELEGATION_MIN_CNI


def parse_cni_version(text: str) -> CniVersion:
    """Parse ``X.Y`` or ``X.Y.Z`` (a leading ``v`` as in image tags is accepted)."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(
            f"invalid CNI version {text!r}: expected X.Y or X.Y.Z with digits, e.g. 1.9.0"
        )
    major, minor, patch = match.groups()
    return CniVersion(int(major), int(minor), int(patch or 0))


@dataclass(frozen=True)
class MaxPodsOptions:
    """The calculator's inputs besides the instance type. ``cni_version`` None means current."""

    prefix_delegation: bool = False
    custom_networking: bool = False
    max_eni: int | None = None
    cni_version: CniVersion | None = None

    def __post_init__(self) -> None:
        if self.max_eni is not None and self.max_eni < 1:
            raise InvalidInput(
                f"invalid max ENIs {self.max_eni}: a node always has its primary ENI, "
                "so give 1 or more"
            )


@dataclass(frozen=True)
class MaxPods:
    """The answer for one instance type and options, with the reasons behind it."""

    instance_type: str
    enis_for_pods: int
    pod_slots_per_eni: int
    addresses_per_slot: int
    uncapped: int
    vcpus: int | None
    recommended: int | None
    prefix_delegation_applied: bool
    notes: tuple[str, ...]

    @property
    def note(self) -> str:
        """The reasons on one line ('' when nothing was capped or fell back)."""
        return "; ".join(self.notes)

    def figure(self, *, recommended: bool) -> int:
        """The uncapped figure, or the vCPU-capped one (an error if vCPUs are unknown)."""
        if not recommended:
            return self.uncapped
        if self.recommended is None:
            raise MissingFact(
                f"cannot give a recommended max pods for {self.instance_type}: vpccni's instance "
                "table has no vCPU count for it, and the cap (110 or 250) depends on it; "
                "drop --recommended to get the uncapped figure"
            )
        return self.recommended


def default_max_pods(max_enis: int, ipv4_per_eni: int) -> int:
    """ipamd's max pods when none is given: every ENI's secondary addresses + 2 host pods."""
    return max_enis * (ipv4_per_eni - 1) + HOST_NETWORK_PODS


def vcpu_cap(vcpus: int) -> int:
    """The calculator's cap: 110 pods for 30 vCPUs or fewer, 250 for more."""
    return LARGE_NODE_CAP if vcpus > SMALL_NODE_VCPUS else SMALL_NODE_CAP


def compute_max_pods(limits: InstanceLimits, options: MaxPodsOptions) -> MaxPods:
    """Max pods for ``limits`` under ``options``, as the EKS calculator computes it."""
    notes: list[str] = []
    enis = limits.enis
    if options.max_eni is not None and options.max_eni < enis:
        notes.append(f"max ENIs {options.max_eni} < the instance's {enis}")
        enis = options.max_eni
    if options.custom_networking:
        notes.append("custom networking: the primary ENI carries no pods")
        enis -= 1

    prefix = options.prefix_delegation and _prefix_delegation_allowed(limits, options, notes)
    slots = limits.secondary_ipv4_per_eni
    per_slot = ADDRESSES_PER_PREFIX if prefix else 1
    uncapped = enis * slots * per_slot + HOST_NETWORK_PODS

    recommended: int | None = None
    if limits.vcpus is None:
        notes.append("no vCPU count known, so no recommended cap")
    else:
        cap = vcpu_cap(limits.vcpus)
        recommended = min(cap, uncapped)
        if uncapped > cap:
            size = "more than" if limits.vcpus > SMALL_NODE_VCPUS else "at most"
            notes.append(
                f"recommended is capped at {cap}: {limits.instance_type} has {limits.vcpus} "
                f"vCPUs ({size} {SMALL_NODE_VCPUS})"
            )
    return MaxPods(
        instance_type=limits.instance_type,
        enis_for_pods=enis,
        pod_slots_per_eni=slots,
        addresses_per_slot=per_slot,
        uncapped=uncapped,
        vcpus=limits.vcpus,
        recommended=recommended,
        prefix_delegation_applied=prefix,
        notes=tuple(notes),
    )


def _prefix_delegation_allowed(
    limits: InstanceLimits, options: MaxPodsOptions, notes: list[str]
) -> bool:
    """Whether the calculator uses prefixes; explains each fallback in ``notes``."""
    version = options.cni_version
    if version is not None and not version.supports_prefix_delegation:
        notes.append(
            f"prefix delegation needs VPC CNI 1.9.0 or later; {version} falls back to secondary IPs"
        )
        return False
    if limits.bare_metal and not limits.nitro:
        notes.append(
            f"prefix delegation falls back to secondary IPs: the calculator requires the Nitro "
            f"hypervisor and {limits.instance_type} is bare metal (ipamd itself does allow "
            "prefixes on bare metal)"
        )
        return False
    if not limits.nitro:
        notes.append(
            f"prefix delegation needs a Nitro instance; {limits.instance_type} is "
            f"{limits.hypervisor_label}"
        )
        return False
    return True
