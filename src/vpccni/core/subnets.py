"""Where a node's new ENIs go: custom networking, subnet discovery and exclusion, as pure rules.

Upstream ipamd puts a new ENI in one of three places (behaviour reference sections 8.2, 8.6, 10):

* **custom networking** (``AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true``): the subnet and security
  groups of the node's ENIConfig, whose name comes from the label
  ``vpc.amazonaws.com/externalEniConfig``, else the annotation ``ENI_CONFIG_ANNOTATION_DEF``,
  else the label ``ENI_CONFIG_LABEL_DEF`` (both ``k8s.amazonaws.com/eniConfig`` by default), else
  ``default`` (:func:`eniconfig_choice`); empty groups mean the primary ENI's. The primary ENI
  then carries no pod address.
* **subnet discovery** (``ENABLE_SUBNET_DISCOVERY``, on by default): the subnets of the node's
  VPC and availability zone, most free addresses first, that may hold pod ENIs
  (:func:`discovery_candidates`): tag ``kubernetes.io/role/cni`` = ``0`` never; no such tag only
  the node's own subnet; any other value yes, unless the subnet carries
  ``cni.networking.k8s.aws/cluster/<name>`` tags and none names this cluster (``CLUSTER_NAME``;
  none set: no cluster check). The first subnet whose ``CreateNetworkInterface`` succeeds wins.
* otherwise the node's subnet, unless it is tagged ``kubernetes.io/role/cni=0``.

An ENI in an *excluded* subnet (:func:`subnet_excluded`: tagged ``0``, or tagged for other
clusters only) gets no new pod address and gives its unused addresses back
(:func:`excluded_releases`); so does the primary ENI under custom networking.

Problems come back as :class:`PlacementProblem` - a short reason, the sentence with the names
involved, and what to do - never as an exception: the engine shows them in ``vpccni status``,
``/v1/explain`` and the no-address reason, creates no ENI, and tries again when the cluster view
changes. The facts about subnets come from EC2's ``DescribeSubnets`` (:class:`Subnet`); unknown
security groups only show as ``CreateNetworkInterface``'s error (:func:`groups_problem`), so no
EC2 permission beyond what the daemon already has is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vpccni.core.cluster import (
    DEFAULT_ENICONFIG_LABEL,
    DEFAULT_ENICONFIG_NAME,
    EXTERNAL_ENICONFIG_LABEL,
    ClusterView,
    NodeInfo,
)
from vpccni.core.pool_rules import EniView
from vpccni.core.scaling import Action, ActionKind

ROLE_TAG = "kubernetes.io/role/cni"
"""A subnet's tag for subnet discovery: ``0`` never for pods, any other value for pods."""
CLUSTER_TAG_PREFIX = "cni.networking.k8s.aws/cluster/"
"""``<prefix><cluster name>``: the clusters a discovered subnet is meant for."""
GROUP_ERROR_CODES = frozenset(
    {"InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidSecurityGroupID.NotFound"}
)
"""``CreateNetworkInterface`` error codes that say a security group is unknown."""


@dataclass(frozen=True)
class Subnet:
    """A subnet as ``DescribeSubnets`` describes it."""

    subnet_id: str
    vpc_id: str
    availability_zone: str
    cidr: str
    free: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """Where one new ENI may go: a subnet, its security groups and why this one."""

    subnet_id: str
    security_groups: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class PlacementProblem:
    """Why no new ENI can be placed: ``reason`` is ``eniconfig`` or ``pod_subnet``."""

    reason: str
    message: str
    action: str


# -- the node's ENIConfig --------------------------------------------------------------------


def eniconfig_choice(
    node: NodeInfo | None,
    label_key: str = DEFAULT_ENICONFIG_LABEL,
    annotation_key: str = DEFAULT_ENICONFIG_LABEL,
) -> tuple[str, str]:
    """The node's ENIConfig name and what named it, in upstream's order.

    The label ``vpc.amazonaws.com/externalEniConfig``, then the annotation ``annotation_key``,
    then the label ``label_key``, else ``default``. A key that is present names the ENIConfig
    even when its value is empty (as upstream's map lookups do).
    """
    labels = node.labels if node is not None else {}
    annotations = node.annotations if node is not None else {}
    if EXTERNAL_ENICONFIG_LABEL in labels:
        return labels[EXTERNAL_ENICONFIG_LABEL], f"label {EXTERNAL_ENICONFIG_LABEL}"
    if annotation_key in annotations:
        return annotations[annotation_key], f"annotation {annotation_key}"
    if label_key in labels:
        return labels[label_key], f"label {label_key}"
    return DEFAULT_ENICONFIG_NAME, (
        f"no label {EXTERNAL_ENICONFIG_LABEL} or {label_key} and no annotation {annotation_key}: "
        "the default name"
    )


def eniconfig_name(
    node: NodeInfo | None,
    label_key: str = DEFAULT_ENICONFIG_LABEL,
    annotation_key: str = DEFAULT_ENICONFIG_LABEL,
) -> str:
    """The node's ENIConfig name (upstream's ``/v1/eni-configs`` answer)."""
    return eniconfig_choice(node, label_key, annotation_key)[0]


@dataclass(frozen=True)
class EniConfigChoice:
    """The ENIConfig the node names and the subnet it wants (before EC2 was asked about it)."""

    name: str
    named_by: str
    subnet_id: str
    security_groups: tuple[str, ...]


def node_eniconfig(
    view: ClusterView | None, label_key: str, annotation_key: str
) -> EniConfigChoice | PlacementProblem:
    """The node's ENIConfig from the cluster view, or why there is none to use."""
    if view is None or view.node is None:
        why = view.problem if view is not None and view.problem else "no cluster source"
        return PlacementProblem(
            "eniconfig",
            f"custom networking is on but this node's Node object cannot be read ({why}), so "
            "its ENIConfig is unknown: no ENI is created",
            "give the daemon access to the Node and ENIConfigs (RBAC nodes list/watch, "
            "eniconfigs list/watch: vpccni manifests ships them) or an ENIConfig directory and "
            "node labels",
        )
    name, named_by = eniconfig_choice(view.node, label_key, annotation_key)
    found = view.eniconfigs.get(name)
    if found is None:
        known = ", ".join(sorted(view.eniconfigs)) or "none"
        return PlacementProblem(
            "eniconfig",
            f"ENIConfig {name!r} ({named_by}) does not exist (ENIConfigs: {known}): no ENI is "
            "created",
            f"create the ENIConfig {name!r} or label the node with an existing one",
        )
    if not found.subnet:
        return PlacementProblem(
            "eniconfig",
            f"ENIConfig {name!r} ({named_by}) names no subnet (spec.subnet is empty): no ENI "
            "is created",
            f"set spec.subnet of ENIConfig {name!r} to a subnet of the node's availability zone",
        )
    return EniConfigChoice(name, named_by, found.subnet, tuple(found.security_groups))


def check_eniconfig_subnet(
    choice: EniConfigChoice,
    subnet: Subnet | None,
    vpc_id: str,
    availability_zone: str,
    primary_groups: Sequence[str],
) -> Target | PlacementProblem:
    """The ENIConfig's subnet checked against EC2's description of it (None: EC2 does not know
    it); a usable one becomes the target, with the primary ENI's groups when none are named."""
    where = f"ENIConfig {choice.name!r} ({choice.named_by})"
    if subnet is None:
        return PlacementProblem(
            "eniconfig",
            f"{where} names subnet {choice.subnet_id}, which EC2 does not know: no ENI is created",
            f"set spec.subnet of ENIConfig {choice.name!r} to an existing subnet of "
            f"{availability_zone or 'the node availability zone'}",
        )
    if vpc_id and subnet.vpc_id != vpc_id:
        return PlacementProblem(
            "eniconfig",
            f"{where} names subnet {subnet.subnet_id} of {subnet.vpc_id}, but the node is in "
            f"{vpc_id}: no ENI is created",
            f"use a subnet of {vpc_id} (a secondary VPC CIDR's subnet, for example)",
        )
    if availability_zone and subnet.availability_zone != availability_zone:
        return PlacementProblem(
            "eniconfig",
            f"{where} names subnet {subnet.subnet_id} in {subnet.availability_zone}, but the "
            f"node is in {availability_zone}: an ENI cannot attach across zones, no ENI is "
            "created",
            f"label the node with the ENIConfig of {availability_zone} (one ENIConfig per zone, "
            "often named after it)",
        )
    groups = choice.security_groups or tuple(sorted(primary_groups))
    source = "its security groups" if choice.security_groups else "the primary ENI's groups"
    why = f"ENIConfig {choice.name!r} ({choice.named_by}): subnet {subnet.subnet_id}, {source}"
    return Target(subnet.subnet_id, groups, why)


def groups_problem(
    choice_name: str, groups: Sequence[str], code: str, message: str
) -> PlacementProblem | None:
    """A ``CreateNetworkInterface`` error about the ENIConfig's security groups, in words
    (None when the error is about something else)."""
    about_groups = code in GROUP_ERROR_CODES or (
        code.startswith("InvalidParameter") and "security group" in message.lower()
    )
    if not about_groups:
        return None
    return PlacementProblem(
        "eniconfig",
        f"ENIConfig {choice_name!r} names security groups {', '.join(groups) or '(none)'} that "
        f"EC2 refuses ({code}: {message}): no ENI is created",
        f"set spec.securityGroups of ENIConfig {choice_name!r} to groups of the node's VPC, or "
        "leave it empty for the primary ENI's groups",
    )


# -- subnet discovery and exclusion ----------------------------------------------------------


def _cluster_tags(subnet: Subnet) -> list[str]:
    return [
        key[len(CLUSTER_TAG_PREFIX) :] for key in subnet.tags if key.startswith(CLUSTER_TAG_PREFIX)
    ]


def _other_clusters(subnet: Subnet, cluster_name: str) -> bool:
    """The subnet is tagged for clusters and none of them is this one (needs CLUSTER_NAME)."""
    clusters = _cluster_tags(subnet)
    return bool(cluster_name) and bool(clusters) and cluster_name not in clusters


def subnet_excluded(subnet: Subnet | None, cluster_name: str) -> bool:
    """Upstream's ``IsSubnetExcluded``: tagged ``kubernetes.io/role/cni=0``, or tagged for pods
    of other clusters only. An unknown subnet is not excluded."""
    if subnet is None or ROLE_TAG not in subnet.tags:
        return False
    return subnet.tags[ROLE_TAG] == "0" or _other_clusters(subnet, cluster_name)


def subnet_verdict(subnet: Subnet, node_subnet_id: str, cluster_name: str) -> tuple[bool, str]:
    """Whether subnet discovery may put a new ENI in ``subnet``, and why (or why not)."""
    role = subnet.tags.get(ROLE_TAG)
    free = f"{subnet.free} free"
    if role == "0":
        return False, f"{subnet.subnet_id}: tagged {ROLE_TAG}=0 (never for pods)"
    if role is None:
        if subnet.subnet_id == node_subnet_id:
            return True, f"{subnet.subnet_id}: the node's subnet ({free})"
        return False, f"{subnet.subnet_id}: no {ROLE_TAG} tag (only the node's subnet is used)"
    if _other_clusters(subnet, cluster_name):
        clusters = ", ".join(sorted(_cluster_tags(subnet)))
        return False, f"{subnet.subnet_id}: tagged for other clusters ({clusters})"
    mine = " (the node's subnet)" if subnet.subnet_id == node_subnet_id else ""
    return True, f"{subnet.subnet_id}: tagged {ROLE_TAG}={role}{mine} ({free})"


def discovery_candidates(
    subnets: Iterable[Subnet], node_subnet_id: str, cluster_name: str
) -> list[Subnet]:
    """The subnets a new ENI may go to, most free addresses first (ties keep EC2's order)."""
    ordered = sorted(subnets, key=lambda s: -s.free)
    return [s for s in ordered if subnet_verdict(s, node_subnet_id, cluster_name)[0]]


def discovery_targets(
    subnets: Sequence[Subnet],
    node_subnet_id: str,
    cluster_name: str,
    primary_groups: Sequence[str],
) -> list[Target] | PlacementProblem:
    """Subnet discovery's targets in order (the primary ENI's groups), or why there is none."""
    candidates = discovery_candidates(subnets, node_subnet_id, cluster_name)
    groups = tuple(sorted(primary_groups))
    if candidates:
        return [
            Target(
                s.subnet_id,
                groups,
                "subnet discovery: " + subnet_verdict(s, node_subnet_id, cluster_name)[1],
            )
            for s in candidates
        ]
    refused = (
        "; ".join(subnet_verdict(s, node_subnet_id, cluster_name)[1] for s in subnets)
        or "DescribeSubnets listed none"
    )
    return PlacementProblem(
        "pod_subnet",
        f"subnet discovery found no subnet for pods in the node's zone ({refused}): no ENI is "
        "created",
        f"tag a subnet of the node's zone {ROLE_TAG}=1 (and "
        f"{CLUSTER_TAG_PREFIX}<cluster> if it is meant for some clusters only)",
    )


def node_subnet_target(
    subnet: Subnet | None, node_subnet_id: str, primary_groups: Sequence[str]
) -> Target | PlacementProblem:
    """Without discovery or custom networking: the node's subnet, unless tagged ``=0``."""
    if subnet is not None and subnet.tags.get(ROLE_TAG) == "0":
        return PlacementProblem(
            "pod_subnet",
            f"the node's subnet {node_subnet_id} is tagged {ROLE_TAG}=0 (never for pods) and "
            "subnet discovery is off: no ENI is created",
            "remove the tag, enable subnet discovery (ENABLE_SUBNET_DISCOVERY=true) with a "
            f"subnet tagged {ROLE_TAG}=1, or use custom networking",
        )
    return Target(node_subnet_id, tuple(sorted(primary_groups)), "the node's subnet")


def excluded_releases(enis: Sequence[EniView]) -> list[Action]:
    """Give back the unused CIDRs of excluded ENIs (upstream releases them once their last pod
    left); a CIDR with an address still cooling waits for its cooldown."""
    actions: list[Action] = []
    for eni in enis:
        if not eni.info.excluded:
            continue
        for prefix in (False, True):
            chosen = tuple(
                sorted(
                    c.cidr
                    for c in eni.cidrs
                    if c.prefix == prefix and c.assigned == 0 and c.cooling == 0
                )
            )
            if not chosen:
                continue
            kind: ActionKind = "release-prefixes" if prefix else "release-ips"
            unit = "prefixes" if prefix else "IPs"
            reason = (
                f"{eni.eni_id} is excluded from pod addresses: release {len(chosen)} unused {unit}"
            )
            actions.append(Action(kind, eni.eni_id, len(chosen), reason, chosen))
    return actions
