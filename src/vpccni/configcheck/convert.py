"""``vpccni config convert``: an ``aws-node`` DaemonSet's settings as ``vpccni manifests`` values.

Every variable of the CNI containers (the init container's, then the main container's, as
vpccni gives both one environment) that vpccni honours is carried with its value. A value vpccni
refuses is carried as what upstream actually ran with when that is known (``WARM_IP_TARGET=abc``
is left out: upstream treated it as unset; ``EXCLUDE_SNAT_CIDRS`` keeps its valid CIDRs),
otherwise it is not carried and said so. Upstream's variables vpccni does not read, unknown
names and values from ``valueFrom`` are not carried, with a note each; so are the parts of the
DaemonSet that are not settings (images, resources, extra containers such as the
network-policy agent, custom volumes, scheduling, probes). The result is checked with exactly
what ``vpccni manifests`` runs; a value it would still refuse is dropped with its reason.

Each note has a severity: info (nothing is lost: upstream's default, or carried as upstream ran
it), warn (a setting is lost in vpccni), error (the result would not render).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from vpccni.configcheck.findings import Severity
from vpccni.configcheck.managed import NODE_AGENT, VOLUMES
from vpccni.configcheck.source import DOWNWARD, DaemonSetFile
from vpccni.configcheck.upstream import upstream_reading
from vpccni.core.config import ConfigError, parse_ipam_config
from vpccni.deploy.manifests import ManifestOptions, build
from vpccni.deploy.variables import (
    FIXED_VARIABLES,
    KNOWN_VARIABLES,
    READ_BY_VPCCNI,
    Assignment,
    default_environment,
    node_environment,
)
from vpccni.node.env import parse_node_settings
from vpccni.settings import parse_settings

ORIGIN = "converted"


@dataclass(frozen=True)
class Note:
    """Something the conversion did not carry as written, and why."""

    severity: Severity
    subject: str
    message: str


@dataclass(frozen=True)
class Conversion:
    """The variables for ``vpccni manifests`` and the notes on everything else."""

    assignments: tuple[Assignment, ...]
    notes: tuple[Note, ...]

    @property
    def worst(self) -> Severity:
        return max((n.severity for n in self.notes), default=Severity.INFO)

    def set_lines(self) -> str:
        """``--set NAME=VALUE`` per line, quoted for a POSIX shell."""
        return "\n".join(f"--set {shlex.quote(f'{a.name}={a.value}')}" for a in self.assignments)

    def env_file(self, source: str) -> str:
        """An ``--env-file`` for ``vpccni manifests``: values taken literally, one per line."""
        header = [
            f"# vpccni manifests --env-file: converted from {source} by 'vpccni config convert'",
            "# (values are literal: no quotes, no expansion)",
        ]
        return "\n".join([*header, *(f"{a.name}={a.value}" for a in self.assignments)]) + "\n"


def convert(daemon_set: DaemonSetFile) -> Conversion:
    """The conversion of ``daemon_set``'s CNI settings."""
    notes: list[Note] = []
    env = daemon_set.environment()
    carried: dict[str, str] = {}
    for container in daemon_set.cni:
        for item in container.env:
            if item.value is None and item.name not in DOWNWARD:
                notes.append(
                    Note(
                        Severity.WARN,
                        item.name,
                        f"not carried: its value comes from {item.source} (container "
                        f"{container.name}), which the file does not hold; --set it yourself",
                    )
                )
        for reference in container.env_from:
            notes.append(
                Note(
                    Severity.WARN,
                    "envFrom",
                    f"not carried: variables from {reference} (container {container.name}) "
                    "are not in the file; --set the ones vpccni reads yourself",
                )
            )
    for name, value in sorted(env.items()):
        note = _carry(name, value, env, carried)
        if note is not None:
            notes.append(note)
    notes += _init_differences(daemon_set)
    assignments, refused = _rendered(carried)
    notes += refused
    notes += _shape(daemon_set)
    return Conversion(tuple(assignments), tuple(notes))


def _carry(name: str, value: str, env: Mapping[str, str], carried: dict[str, str]) -> Note | None:
    """Carry ``name=value`` into ``carried`` if vpccni honours it; a note when not as written."""
    if name in ("MY_NODE_NAME",):
        return None  # vpccni's DaemonSet sets it from the downward API itself
    if name not in READ_BY_VPCCNI:
        return _not_carried(name, value)
    if value == "" or _valid(name, value):
        if value != "":
            carried[name] = value
        return None
    reading = upstream_reading(name, value, env)
    if reading is None or reading.refuses:
        also = f" (upstream's aws-node {reading.note})" if reading is not None else ""
        return Note(
            Severity.WARN,
            name,
            f"not carried: vpccni refuses it: {_problem(name, value)}{also}; choose a valid "
            "value and --set it",
        )
    if reading.effective is None:
        return Note(
            Severity.INFO,
            name,
            f"left out: upstream {reading.note}; unset, vpccni behaves the same",
        )
    carried[name] = reading.effective
    return Note(Severity.INFO, name, f"carried as {reading.effective!r}: upstream {reading.note}")


def _not_carried(name: str, value: str) -> Note:
    """Why a variable vpccni does not read is left behind, and whether that loses anything."""
    if name not in KNOWN_VARIABLES:
        return Note(
            Severity.INFO,
            name,
            "not carried: unknown to upstream and vpccni alike, so it had no effect",
        )
    return Note(Severity.WARN, name, f"not carried: {FIXED_VARIABLES[name]}")


def _valid(name: str, value: str) -> bool:
    """``name=value`` passes the daemon's and the node commands' parsers on its own."""
    return _problem(name, value) == ""


def _problem(name: str, value: str) -> str:
    """Why the parsers refuse ``name=value`` on its own ('' when they accept it)."""
    trial = {**default_environment(), name: value}
    try:
        settings = parse_settings(trial)
        parse_node_settings(trial, settings.datapath.mtu)
        parse_ipam_config(trial)
    except ConfigError as error:
        return "; ".join(error.problems)
    return ""


def _rendered(carried: dict[str, str]) -> tuple[list[Assignment], list[Note]]:
    """The assignments ``vpccni manifests`` accepts: a variable it refuses is dropped with its
    reason, until the rest renders (problems no single variable explains are errors)."""
    notes: list[Note] = []
    values = dict(carried)
    for _ in range(len(carried) + 1):
        assignments = [Assignment(n, v, ORIGIN) for n, v in sorted(values.items())]
        try:
            node_environment(assignments)
        except ConfigError as error:
            named = {p.split("=", 1)[0].split(" ", 1)[0]: p for p in error.problems}
            drop = [n for n in named if n in values]
            if not drop:
                notes += [
                    Note(Severity.ERROR, "environment", f"vpccni manifests would refuse: {p}")
                    for p in error.problems
                ]
                return assignments, notes
            for name in drop:
                notes.append(
                    Note(Severity.WARN, name, f"not carried: vpccni refuses it: {named[name]}")
                )
                del values[name]
            continue
        return assignments, notes
    return [], notes


def _init_differences(daemon_set: DaemonSetFile) -> list[Note]:
    main = daemon_set.main
    if main is None:
        return []
    found = []
    for init in (c for c in daemon_set.cni if c.init):
        for name, value in init.values().items():
            theirs = main.values().get(name)
            if theirs is not None and theirs != value:
                found.append(
                    Note(
                        Severity.WARN,
                        name,
                        f"{init.name} has {value!r}, {main.name} {theirs!r}: vpccni gives both "
                        f"containers one environment; {main.name}'s value is carried",
                    )
                )
    return found


def _shape(daemon_set: DaemonSetFile) -> list[Note]:
    """What the DaemonSet holds beyond its settings, which vpccni's manifests fix themselves."""
    notes = [
        Note(
            Severity.INFO,
            f"container {c.name}",
            f"image {c.image or '(none)'} and resources ({_resources(c.spec)}) not carried: "
            "vpccni runs its own image (vpccni manifests --image) with its own requests "
            "(cpu 25m, memory 64Mi), probes and security context",
        )
        for c in daemon_set.cni
    ]
    for container in daemon_set.others:
        args = [str(a) for a in container.spec.get("args") or []]
        if container.name == NODE_AGENT and "--enable-network-policy=true" not in args:
            notes.append(
                Note(
                    Severity.INFO,
                    f"container {container.name}",
                    "not carried: the network-policy agent, which enforces nothing here "
                    "(network policies are off): nothing is lost",
                )
            )
            continue
        what = (
            "the network-policy agent: vpccni's plugin does not call it, so network policies "
            "are not enforced"
            if container.name == NODE_AGENT
            else "an extra container vpccni's DaemonSet does not have"
        )
        notes.append(Note(Severity.WARN, f"container {container.name}", f"not carried: {what}"))
    volumes = daemon_set.pod_spec.get("volumes") or []
    for volume in volumes:
        name = str(volume.get("name", "?")).strip() if isinstance(volume, dict) else "?"
        if name not in VOLUMES and name not in _vpccni_volumes():
            notes.append(
                Note(
                    Severity.WARN,
                    f"volume {name}",
                    "not carried: a custom volume (vpccni mounts only its own host paths)",
                )
            )
    notes.append(
        Note(
            Severity.INFO,
            "scheduling",
            "tolerations, affinity, node selector, priority class, update strategy and labels "
            "are vpccni's own (every taint tolerated, Linux amd64/arm64 nodes that are not "
            "Fargate, hybrid or Auto Mode, system-node-critical, 10% at a time)",
        )
    )
    notes.append(
        Note(
            Severity.INFO,
            "serviceAccount",
            "the IAM role (IRSA) is an annotation of the ServiceAccount, not in the DaemonSet: "
            "give it to vpccni manifests --role-arn",
        )
    )
    return notes


def _resources(container: Mapping[str, object]) -> str:
    """``requests cpu=25m`` (or ``none``), as the container's resources read."""
    resources = container.get("resources")
    if not isinstance(resources, dict) or not resources:
        return "none"
    parts = []
    for kind, amounts in resources.items():
        if isinstance(amounts, dict):
            parts.append(f"{kind} " + " ".join(f"{k}={v}" for k, v in amounts.items()))
    return ", ".join(parts) or "none"


@cache
def _vpccni_volumes() -> frozenset[str]:
    """The volume names of vpccni's own DaemonSet (as ``vpccni manifests`` renders it)."""
    daemon_set = build(ManifestOptions())[-1]
    return frozenset(v["name"] for v in daemon_set["spec"]["template"]["spec"]["volumes"])
