"""The pool against its limits: free addresses in each subnet the node uses against what its
pool can still take from it, and kubelet's max pods against what the node can really serve.

What the pool can still take (:func:`pool_headroom`): the pod addresses it lacks to reach
``min(max pods, what its ENIs hold)``, in whole /28s in prefix mode, plus one primary address per
ENI it would still attach. A subnet with fewer free addresses than that cannot let this node
reach its max pods (fail); with fewer than twice that, one more node like it exhausts it (warn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    """What the pool can still take from its subnet to reach its max pods."""

    pod_addresses: int
    new_enis: int
    target: int

    @property
    def subnet_addresses(self) -> int:
        return self.pod_addresses + self.new_enis


def pool_headroom(explain: dict[str, Any], ipv4_per_eni: int) -> Headroom:
    """The addresses the pool can still take (``/v1/explain``'s mode, totals and ENIs)."""
    per_cidr = ADDRESSES_PER_PREFIX if explain["mode"] == "prefix" else 1
    slots = ipv4_per_eni - 1
    max_enis = int(explain["max_enis"])
    enis = explain.get("enis") or []
    target = min(int(explain["max_pods"]), max_enis * slots * per_cidr)
    cidrs = math.ceil(max(0, target - int(explain["total"])) / per_cidr)
    room = sum(max(0, slots - int(e["cidrs"])) for e in enis)
    beyond = max(0, cidrs - room)
    new_enis = min(math.ceil(beyond / slots) if slots else 0, max(0, max_enis - len(enis)))
    return Headroom(cidrs * per_cidr, new_enis, target)


def subnets(
    explain: dict[str, Any] | Missing,
    instance: InstanceFacts | Missing,
    ipv4_per_eni: int | Missing,
) -> list[Result]:
    """One result per subnet the node's ENIs are in."""
    title = "the subnet has room for the node's pool"
    for piece in (explain, instance, ipv4_per_eni):
        if isinstance(piece, Missing):
            return [skipped(SUBNET, title, piece.why)]
    assert isinstance(explain, dict)
    assert isinstance(instance, InstanceFacts)
    assert isinstance(ipv4_per_eni, int)
    if instance.subnets_error or not instance.subnets:
        return [skipped(SUBNET, title, instance.subnets_error or "EC2 listed no subnet")]
    need = pool_headroom(explain, ipv4_per_eni)
    wanted = (
        f"the pool can still take {need.subnet_addresses} ({need.pod_addresses} pod addresses "
        f"and {need.new_enis} ENI primar{'y' if need.new_enis == 1 else 'ies'} to reach "
        f"{need.target} pod addresses)"
    )
    results = []
    for subnet, (cidr, free) in sorted(instance.subnets.items()):
        check, what = f"{SUBNET}.{subnet}", f"{subnet} ({cidr}): {free} free; {wanted}"
        if free < need.subnet_addresses:
            results.append(
                failed(
                    check,
                    f"{subnet} has room for the node's pool",
                    f"{what}: the node cannot reach its max pods",
                    SUBNET_FIX,
                )
            )
        elif free < WARN_FACTOR * need.subnet_addresses:
            results.append(
                warned(
                    check,
                    f"{subnet} has room for the node's pool",
                    f"{what}: one more node like this one exhausts it",
                    SUBNET_FIX,
                )
            )
        else:
            results.append(passed(check, f"{subnet} has room for the node's pool", what))
    return results


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
    capacity = int(explain["max_enis"]) * (ipv4_per_eni - 1) * per_cidr
    serves = capacity + HOST_NETWORK_PODS
    evidence = (
        f"kubelet maxPods {kubelet.value} ({kubelet.source}); {explain['max_enis']} ENIs hold "
        f"{capacity} pod addresses in {explain['mode']} mode, + {HOST_NETWORK_PODS} "
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
