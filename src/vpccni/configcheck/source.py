"""The DaemonSet in a file, as ``config check`` and ``config convert`` read it.

Accepted: what ``kubectl get daemonset aws-node -o yaml`` (or ``-o json``) and ``kubectl apply
view-last-applied daemonset aws-node`` print, a multi-document stream such as upstream's
``aws-k8s-cni.yaml`` or ``vpccni manifests``' output, or a ``List`` of objects; exactly one
DaemonSet must be in it. Its containers are split into the CNI's (upstream's ``aws-node`` and
``aws-vpc-cni-init``, vpccni's ``vpccni-node`` and ``vpccni-init``, or any other container
that sets a variable of the CNI) and the rest (e.g. upstream's network-policy agent
``aws-eks-nodeagent``), which are named but not checked. Every environment entry keeps where
its value comes from: a literal ``value``, or a ``valueFrom`` reference that cannot be read
from the file. A file that is not YAML, holds no DaemonSet or several, or is malformed is
refused with one line saying where and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from vpccni.deploy.variables import KNOWN_VARIABLES
from vpccni.errors import InvalidInput

MAX_FILE_BYTES = 4 * 1024 * 1024
UPSTREAM_MAIN, UPSTREAM_INIT = "aws-node", "aws-vpc-cni-init"
VPCCNI_MAIN, VPCCNI_INIT = "vpccni-node", "vpccni-init"
CNI_CONTAINERS = (UPSTREAM_MAIN, UPSTREAM_INIT, VPCCNI_MAIN, VPCCNI_INIT)
DOWNWARD = ("MY_NODE_NAME", "MY_POD_NAME")


@dataclass(frozen=True)
class EnvVar:
    """One ``env`` entry: ``value`` None when it comes from ``valueFrom`` (``source`` says)."""

    name: str
    value: str | None
    source: str = "value"


@dataclass(frozen=True)
class Container:
    """A container of the DaemonSet's pod template."""

    name: str
    init: bool
    image: str
    env: tuple[EnvVar, ...]
    env_from: tuple[str, ...]
    spec: Mapping[str, Any]

    def values(self) -> dict[str, str]:
        """The literal values (``valueFrom`` entries left out), last one winning as Kubernetes."""
        return {item.name: item.value for item in self.env if item.value is not None}


@dataclass(frozen=True)
class DaemonSetFile:
    """The DaemonSet found in a file, and its containers split into the CNI's and others."""

    source: str
    document: Mapping[str, Any]
    cni: tuple[Container, ...]
    others: tuple[Container, ...]
    skipped_kinds: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(_mapping(self.document.get("metadata")).get("name", "?"))

    @property
    def namespace(self) -> str:
        return str(_mapping(self.document.get("metadata")).get("namespace", "default"))

    @property
    def flavour(self) -> str:
        """``vpccni`` for vpccni's DaemonSet, else ``upstream``."""
        names = {c.name for c in self.cni}
        return "vpccni" if names & {VPCCNI_MAIN, VPCCNI_INIT} else "upstream"

    @property
    def main(self) -> Container | None:
        """The daemon's container (the first non-init CNI container)."""
        return next((c for c in self.cni if not c.init), None)

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        template = _mapping(_mapping(self.document.get("spec")).get("template"))
        return _mapping(template.get("spec"))

    def environment(self) -> dict[str, str]:
        """One environment as vpccni gives both its containers: the init container's literal
        values, then the main container's (which win)."""
        merged: dict[str, str] = {}
        for container in sorted(self.cni, key=lambda c: not c.init):
            merged.update(container.values())
        return merged


def load(path: Path) -> DaemonSetFile:
    """Read ``path`` (``-`` is not accepted: give a file) and find its DaemonSet."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}; check the path") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; give the DaemonSet "
            "alone (kubectl -n kube-system get daemonset aws-node -o yaml > aws-node.yaml)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not UTF-8 text; give the YAML or JSON kubectl printed"
        ) from None
    return parse(text, str(path))


def parse(text: str, source: str) -> DaemonSetFile:
    """The one DaemonSet in ``text`` (YAML or JSON, one or more documents)."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InvalidInput(
            f"{source}{line} is not valid YAML ({reason}); give the DaemonSet as kubectl "
            "prints it (-o yaml or -o json)"
        ) from None
    objects: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            objects.extend(document.get("items") or [])
        else:
            objects.append(document)
    daemon_sets = [o for o in objects if isinstance(o, dict) and o.get("kind") == "DaemonSet"]
    others = [o.get("kind", "?") if isinstance(o, dict) else type(o).__name__ for o in objects]
    if not daemon_sets:
        found = ", ".join(str(k) for k in others) or "nothing"
        raise InvalidInput(
            f"{source} holds no DaemonSet (found: {found}); give aws-node's, e.g. kubectl "
            "-n kube-system get daemonset aws-node -o yaml > aws-node.yaml"
        )
    if len(daemon_sets) > 1:
        names = ", ".join(str(_mapping(d.get("metadata")).get("name", "?")) for d in daemon_sets)
        raise InvalidInput(
            f"{source} holds {len(daemon_sets)} DaemonSets ({names}); give a file with one"
        )
    document = daemon_sets[0]
    skipped = tuple(str(k) for k in others if k != "DaemonSet")
    cni, rest = _containers(document, source)
    if not cni:
        raise InvalidInput(
            f"{source}: DaemonSet {_mapping(document.get('metadata')).get('name', '?')} has no "
            f"CNI container (none named {', '.join(CNI_CONTAINERS)} and none setting a CNI "
            "variable); is it the aws-node DaemonSet?"
        )
    return DaemonSetFile(source, document, tuple(cni), tuple(rest), skipped)


def _containers(
    document: Mapping[str, Any], source: str
) -> tuple[list[Container], list[Container]]:
    spec = _mapping(_mapping(_mapping(document.get("spec")).get("template")).get("spec"))
    cni: list[Container] = []
    rest: list[Container] = []
    for field, init in (("initContainers", True), ("containers", False)):
        items = spec.get(field) or []
        if not isinstance(items, list):
            raise InvalidInput(f"{source}: spec.template.spec.{field} is not a list")
        for number, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput(f"{source}: spec.template.spec.{field}[{number}] is not a map")
            container = _container(item, init, f"{source}: {field}[{number}]")
            is_cni = container.name in CNI_CONTAINERS or any(
                v.name in KNOWN_VARIABLES and v.name not in DOWNWARD for v in container.env
            )
            (cni if is_cni else rest).append(container)
    return cni, rest


def _container(item: Mapping[str, Any], init: bool, where: str) -> Container:
    env: list[EnvVar] = []
    entries = item.get("env") or []
    if not isinstance(entries, list):
        raise InvalidInput(f"{where}: env is not a list")
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidInput(f"{where}: env[{number}] has no name")
        env.append(_env_var(entry))
    env_from = tuple(_reference(ref) for ref in item.get("envFrom") or [] if isinstance(ref, dict))
    return Container(
        str(item.get("name", "?")), init, str(item.get("image", "")), tuple(env), env_from, item
    )


def _env_var(entry: Mapping[str, Any]) -> EnvVar:
    name = str(entry["name"])
    if "valueFrom" in entry:
        return EnvVar(name, None, _reference(_mapping(entry.get("valueFrom"))))
    value = entry.get("value", "")
    if isinstance(value, bool):  # unquoted true/false in YAML: what kubectl would refuse
        value = "true" if value else "false"
    return EnvVar(name, "" if value is None else str(value))


def _reference(ref: Mapping[str, Any]) -> str:
    """A ``valueFrom`` or ``envFrom`` source in words."""
    for kind in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"):
        body = _mapping(ref.get(kind))
        if body:
            detail = (
                body.get("fieldPath")
                or body.get("resource")
                or (f"{body.get('name', '?')}/{body.get('key', '?')}")
            )
            return f"{kind} {detail}"
    for kind in ("configMapRef", "secretRef"):
        body = _mapping(ref.get(kind))
        if body:
            return f"{kind} {body.get('name', '?')}"
    return "an unknown reference"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
