"""What the daemon learns from the Kubernetes cluster, as plain values (no client, no I/O).

Upstream's ipamd reads two things from the API server: its own Node (labels and annotations that
name the node's ENIConfig for custom networking, and ``.status.capacity.pods``, the max pods
kubelet was given) and the cluster-scoped ENIConfig objects (``crd.k8s.amazonaws.com/v1alpha1``:
the pod subnet and security groups per availability zone or per node group). A
:class:`ClusterView` is one consistent snapshot of both; sources (the Kubernetes API, a
directory of ENIConfig YAML, nothing at all) produce views, and the pool engine only ever sees
views. ``generation`` grows whenever anything in the view changes, so a caller can notice a
change (a relabelled node, an edited ENIConfig) without comparing everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ENICONFIG_GROUP = "crd.k8s.amazonaws.com"
ENICONFIG_VERSION = "v1alpha1"
ENICONFIG_PLURAL = "eniconfigs"
EXTERNAL_ENICONFIG_LABEL = "vpc.amazonaws.com/externalEniConfig"
DEFAULT_ENICONFIG_LABEL = "k8s.amazonaws.com/eniConfig"
DEFAULT_ENICONFIG_NAME = "default"


@dataclass(frozen=True)
class EniConfig:
    """One ENIConfig object's spec: where new pod ENIs go and with which security groups.

    ``security_groups`` empty means "the primary ENI's groups", as upstream does.
    """

    name: str
    subnet: str
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeInfo:
    """The parts of this node's Node object the daemon uses."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    max_pods: int | None = None  # .status.capacity.pods, when set
    unschedulable: bool = False
    """Cordoned: ``spec.unschedulable``, or the taint ``node.kubernetes.io/unschedulable``
    with effect NoSchedule (what upstream checks)."""


@dataclass(frozen=True)
class ClusterView:
    """One snapshot of the cluster as this node sees it.

    ``node`` is None when the Node could not be read (no API access, or not yet); ``reachable``
    says whether the source is the live API and answered; ``problem`` says why not, for status.
    """

    node: NodeInfo | None = None
    eniconfigs: Mapping[str, EniConfig] = field(default_factory=dict)
    generation: int = 0
    reachable: bool = False
    problem: str = ""
