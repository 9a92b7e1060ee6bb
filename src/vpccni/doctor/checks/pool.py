"""The pool against its limits: free addresses in each subnet the node uses against what its
pool can still take from it, and kubelet's max pods against what the node can really serve.

What the pool can still take (:func:`pool_headroom`): the pod addresses it lacks to reach
``min(max pods, what its ENIs hold)``, in whole /28s in prefix mode. The ENIs it has take theirs
from their own subnets, as far as their free slots go; the rest needs new ENIs, each with a
primary address too, in the subnet new ENIs go to (``/v1/explain``'s placement: the ENIConfig's
subnet with custom networking, the tagged subnet with the most free addresses with subnet
discovery, else the node's subnet). A subnet with fewer free addresses than what the pool can
still take from it cannot let this node reach its max pods (fail); with fewer than twice that,
one more node like it exhausts it (warn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vpccni.core.maxpods import ADDRESSES_PER_PREFIX, HOST_NETWORK_PODS
from vpccni.doctor.evidence import InstanceFacts, KubeletMaxPods, Missing
from vpccni.doctor.result import Result, failed, passed, skipped, warned

SUBNET = "pool.subnet"
MAX_PODS = ("pool.max-pods", "kubelet's max pods fits what the node can serve")
WARN_FACTOR = 2
SUBNET_FIX = (
    "give the node more addresses: a subnet in the same AZ tagged kubernetes.io/role/cni=1 "
    "(subnet discovery) or a secondary VPC CIDR with custom networking; or hold fewer idle "
    "addresses (WARM_IP_TARGET / MINIMUM_IP_TARGET instead of WARM_ENI_TARGET)"
)


@dataclass(frozen=True)
class Headroom:
    """What the pool can still take to reach its max pods: ``room`` from each subnet its ENIs
    are in, ``new_addresses`` pod addresses on ``new_enis`` ENIs still to attach."""

    target: int
    room: dict[str, int] = field(default_factory=dict)
    new_addresses: int = 0
    new_enis: int = 0

    @property
    def pod_addresses(self) -> int:
        return sum(self.room.values()) + self.new_addresses

    @property
    def subnet_addresses(self) -> int:
        return self.pod_addresses + self.new_enis

    def from_subnet(self, subnet: str, destination: str) -> int:
        """What the pool can still take from ``subnet`` when new ENIs go to ``destination``."""
        extra = self.new_addresses + self.new_enis if subnet == destination else 0
        return self.room.get(subnet, 0) + extra


def pool_headroom(explain: dict[str, Any], ipv4_per_eni: int, node_subnet: str = "") -> Headroom:
    """The addresses the pool can still take (``/v1/explain``'s mode, totals and ENIs; an ENI
    without a ``subnet`` is taken to be in ``node_subnet``)."""
    per_cidr = ADDRESSES_PER_PREFIX if explain["mode"] == "prefix" else 1
    slots = ipv4_per_eni - 1
    max_enis = int(explain["max_enis"])
    custom = bool((explain.get("placement") or {}).get("custom_networking"))
    enis = [
        e
        for e in explain.get("enis") or []
        if not e.get("excluded") and not (custom and e.get("primary"))  # custom: no pods there
    ]
    target = min(int(explain["max_pods"]), max_enis * slots * per_cidr)
    wanted = math.ceil(max(0, target - int(explain["total"])) / per_cidr)
    room: dict[str, int] = {}
    for eni in enis:
        take = min(wanted, max(0, slots - int(eni["cidrs"])))
        subnet = str(eni.get("subnet") or node_subnet)
        room[subnet] = room.get(subnet, 0) + take * per_cidr
        wanted -= take
    attached = len(explain.get("enis") or [])
    new_enis = min(math.ceil(wanted / slots) if slots else 0, max(0, max_enis - attached))
    new_cidrs = min(wanted, new_enis * slots)
    return Headroom(target, {s: n for s, n in room.items() if n}, new_cidrs * per_cidr, new_enis)


def destination(explain: dict[str, Any], instance: InstanceFacts) -> str:
    """The subnet the daemon puts its next ENI in (its placement report, else the node's)."""
    placement = explain.get("placement") or {}
    eniconfig = placement.get("eniconfig") or {}
    if placement.get("custom_networking") and eniconfig.get("subnet"):
        return str(eniconfig["subnet"])
    if placement.get("subnet_discovery"):
        usable = [s for s in placement.get("subnets") or [] if s.get("for_new_enis")]
        if usable:
            return str(max(usable, key=lambda s: _free(s["id"], s, instance))["id"])
    return instance.subnet_id or next(
        (str(s["id"]) for s in placement.get("subnets") or [] if s.get("node_subnet")), ""
    )


def _free(subnet: str, reported: dict[str, Any], instance: InstanceFacts) -> int:
    if subnet in instance.subnets:
        return instance.subnets[subnet][1]
    return int(reported.get("free") or 0)


def subnets(
    explain: dict[str, Any] | Missing,
    instance: InstanceFacts | Missing,
    ipv4_per_eni: int | Missing,
) -> list[Result]:
    """One result per subnet the node's ENIs are in, and the one new ENIs go to."""
    title = "the subnet has room for the node's pool"
    for piece in (explain, instance, ipv4_per_eni):
        if isinstance(piece, Missing):
            return [skipped(SUBNET, title, piece.why)]
    assert isinstance(explain, dict)
    assert isinstance(instance, InstanceFacts)
    assert isinstance(ipv4_per_eni, int)
    if instance.subnets_error or not instance.subnets:
        return [skipped(SUBNET, title, instance.subnets_error or "EC2 listed no subnet")]
    need = pool_headroom(explain, ipv4_per_eni, instance.subnet_id)
    target = destination(explain, instance)
    reported = (explain.get("placement") or {}).get("subnets") or []
    known = {
        str(s["id"]): (str(s.get("cidr")), int(s["free"]))
        for s in reported
        if s.get("free") is not None
    }
    known |= instance.subnets
    shown = sorted(set(instance.subnets) | ({target} & set(known)))
    return [_judge(subnet, *known[subnet], need, target) for subnet in shown]


def _judge(subnet: str, cidr: str, free: int, need: Headroom, target: str) -> Result:
    check, title = f"{SUBNET}.{subnet}", f"{subnet} has room for the node's pool"
    takes = need.from_subnet(subnet, target)
    parts = [f"{need.room[subnet]} on its ENIs there"] if need.room.get(subnet) else []
    if subnet == target and need.new_enis:
        parts.append(
            f"{need.new_addresses} on {need.new_enis} new ENI(s) + their primary address(es), "
            "as new ENIs go there"
        )
    what = (
        f"{subnet} ({cidr}): {free} free; the pool can still take {takes} from it "
        f"({'; '.join(parts) or 'nothing more'}) to reach {need.target} pod addresses"
    )
    if free < takes:
        return failed(check, title, f"{what}: the node cannot reach its max pods", SUBNET_FIX)
    if free < WARN_FACTOR * takes:
        return warned(check, title, f"{what}: one more node like this one exhausts it", SUBNET_FIX)
    return passed(check, title, what)


def max_pods(
    kubelet: KubeletMaxPods | Missing,
    explain: dict[str, Any] | Missing,
    ipv4_per_eni: int | Missing,
) -> Result:
    """kubelet must not schedule more pods than the ENIs hold addresses (+ host-network pods)."""
    for piece in (kubelet, explain, ipv4_per_eni):
        if isinstance(piece, Missing):
            return skipped(*MAX_PODS, piece.why)
    assert isinstance(kubelet, KubeletMaxPods)
    assert isinstance(explain, dict)
    assert isinstance(ipv4_per_eni, int)
    per_cidr = ADDRESSES_PER_PREFIX if explain["mode"] == "prefix" else 1
    custom = bool((explain.get("placement") or {}).get("custom_networking"))
    pod_enis = int(explain["max_enis"]) - (1 if custom else 0)  # custom: the primary holds none
    capacity = pod_enis * (ipv4_per_eni - 1) * per_cidr
    serves = capacity + HOST_NETWORK_PODS
    evidence = (
        f"kubelet maxPods {kubelet.value} ({kubelet.source}); {pod_enis} ENIs hold "
        f"{capacity} pod addresses in {explain['mode']} mode"
        f"{' with custom networking' if custom else ''}, + {HOST_NETWORK_PODS} "
        f"host-network pods = {serves}"
    )
    if kubelet.value > serves:
        return failed(
            *MAX_PODS,
            f"{evidence}: pods beyond {serves} are scheduled but get no address",
            f"set kubelet's maxPods to {serves} (`vpccni max-pods INSTANCE_TYPE`), or enable "
            "prefix delegation (ENABLE_PREFIX_DELEGATION=true, Nitro)",
        )
    return passed(*MAX_PODS, evidence)
