"""Kubernetes objects (JSON or YAML, as the API server or ``kubectl -o yaml`` gives them) to the
daemon's plain values: one place, so the API source and the file source decide alike.

* :func:`eniconfig_from` - an ``ENIConfig`` (``crd.k8s.amazonaws.com/v1alpha1``): its name,
  ``spec.subnet`` (required, as upstream's CRD says) and ``spec.securityGroups`` (optional).
* :func:`node_from` - a ``Node``: name, labels, annotations and ``status.capacity.pods`` (a
  resource quantity: ``"110"``, or with a suffix such as ``"1k"``; a number in a hand-written
  file).
* :func:`eniconfig_objects` - the ENIConfigs in a YAML/JSON document: a ``List`` (what
  ``kubectl get eniconfigs -o yaml`` prints), an ``ENIConfigList`` (the API's list) or one
  ``ENIConfig``.

A malformed object raises :class:`ObjectError` with what is wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vpccni.core.cluster import (
    ENICONFIG_GROUP,
    ENICONFIG_VERSION,
    EniConfig,
    NodeInfo,
)

ENICONFIG_API_VERSION = f"{ENICONFIG_GROUP}/{ENICONFIG_VERSION}"
ENICONFIG_KIND = "ENIConfig"
_QUANTITY = re.compile(r"([0-9]+)(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_MULTIPLIERS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


class ObjectError(ValueError):
    """An object is not what its kind says it must be."""


def _name(obj: Mapping[str, Any], what: str) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise ObjectError(f"{what} has no metadata.name")
    return name


def _strings(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ObjectError(f"{where} must map strings to strings (quote values such as 'true')")
    return dict(value)


def eniconfig_from(obj: Mapping[str, Any]) -> EniConfig:
    """The ENIConfig ``obj`` as the daemon uses it."""
    name = _name(obj, "an ENIConfig")
    what = f"ENIConfig {name!r}"
    kind, version = obj.get("kind"), obj.get("apiVersion")
    if kind is not None and kind != ENICONFIG_KIND:
        raise ObjectError(f"{what} has kind {kind!r}; only ENIConfig objects belong here")
    if version is not None and version != ENICONFIG_API_VERSION:
        raise ObjectError(
            f"{what} has apiVersion {version!r}; ENIConfig's is {ENICONFIG_API_VERSION}"
        )
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise ObjectError(f"{what} has no spec; give spec.subnet, the subnet id its pod ENIs go to")
    subnet = spec.get("subnet")
    if not isinstance(subnet, str) or not subnet:
        raise ObjectError(f"{what} has no spec.subnet (the subnet id its pod ENIs go to)")
    groups = spec.get("securityGroups")
    if groups is None:
        groups = []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ObjectError(f"{what}: spec.securityGroups must be a list of security group ids")
    return EniConfig(name=name, subnet=subnet, security_groups=tuple(groups))


def pods_quantity(value: object) -> int:
    """``status.capacity.pods``: a whole-number quantity (``"110"``, ``"1k"``) or an int."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _QUANTITY.fullmatch(value.strip())
        if match:
            return int(match.group(1)) * _MULTIPLIERS[match.group(2)]
    raise ObjectError(f"status.capacity.pods {value!r} is not a whole number of pods")


def node_from(obj: Mapping[str, Any]) -> NodeInfo:
    """The Node ``obj`` as the daemon uses it."""
    name = _name(obj, "a Node")
    metadata = obj["metadata"]
    status = obj.get("status")
    capacity = status.get("capacity") if isinstance(status, dict) else None
    pods = capacity.get("pods") if isinstance(capacity, dict) else None
    return NodeInfo(
        name=name,
        labels=_strings(metadata.get("labels"), f"Node {name!r}: metadata.labels"),
        annotations=_strings(metadata.get("annotations"), f"Node {name!r}: metadata.annotations"),
        max_pods=None if pods is None else pods_quantity(pods),
        unschedulable=_unschedulable(obj.get("spec")),
    )


UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def _unschedulable(spec: object) -> bool:
    """``spec.unschedulable`` true, or the cordon taint with effect NoSchedule."""
    if not isinstance(spec, dict):
        return False
    if spec.get("unschedulable") is True:
        return True
    taints = spec.get("taints")
    return isinstance(taints, list) and any(
        isinstance(taint, dict)
        and taint.get("key") == UNSCHEDULABLE_TAINT
        and taint.get("effect") == "NoSchedule"
        for taint in taints
    )


def eniconfig_objects(document: object) -> list[dict[str, Any]]:
    """The ENIConfig objects one YAML or JSON document holds (none for an empty document)."""
    if document is None:
        return []
    if not isinstance(document, dict):
        raise ObjectError("is not a Kubernetes object (a mapping with kind and metadata)")
    kind = document.get("kind")
    if kind in ("List", "ENIConfigList"):
        items = document.get("items")
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ObjectError(f"{kind}'s items is not a list of objects")
        for item in items:
            if item.get("kind", ENICONFIG_KIND) != ENICONFIG_KIND:
                raise ObjectError(
                    f"{kind} holds a {item.get('kind')}; only ENIConfig objects belong here"
                )
        return list(items)
    if kind != ENICONFIG_KIND:
        raise ObjectError(
            f"holds a {kind or 'document without kind'}; only ENIConfig objects (or a List of "
            "them, as 'kubectl get eniconfigs -o yaml' prints) belong here"
        )
    return [document]
