"""The fields of ``aws-node`` the EKS managed add-on writes back, and whether a file changed them.

Facts from the EKS best-practices guide: the managed VPC CNI add-on re-applies the fields it
manages every 15 minutes and on every add-on update: the service account, the images, the
liveness and readiness probes, labels, volumes and volume mounts. The warm-pool settings
(``WARM_ENI_TARGET``, ``WARM_IP_TARGET``, ``MINIMUM_IP_TARGET``) and the mode settings are
preserved. A change to a managed field made with ``kubectl edit`` therefore lasts at most 15
minutes on a managed add-on. The shipped values below are upstream's manifest's (the labels,
the ECR repositories of the images, the exec probes with their delays and 10 s timeouts, the
host paths and mount paths of its volumes).

A DaemonSet whose ``metadata.managedFields`` name the manager ``eks`` is the managed add-on;
otherwise the file cannot say (``view-last-applied`` output carries no managed fields), and the
findings say "if".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vpccni.configcheck.findings import Finding, Severity
from vpccni.configcheck.source import UPSTREAM_INIT, UPSTREAM_MAIN, DaemonSetFile

SERVICE_ACCOUNT = "aws-node"
LABELS = {
    "k8s-app": "aws-node",
    "app.kubernetes.io/name": "aws-node",
    "app.kubernetes.io/instance": "aws-vpc-cni",
}
NODE_AGENT = "aws-eks-nodeagent"
_ECR = r"[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
IMAGES = {
    UPSTREAM_MAIN: re.compile(_ECR + r"amazon-k8s-cni:v[\w.-]+"),
    UPSTREAM_INIT: re.compile(_ECR + r"amazon-k8s-cni-init:v[\w.-]+"),
    NODE_AGENT: re.compile(_ECR + r"amazon/aws-network-policy-agent:v[\w.-]+"),
}
PROBES = {"livenessProbe": 60, "readinessProbe": 1}
"""The shipped probes' initial delays; both have a 10 s timeout."""
PROBE_TIMEOUT = 10
VOLUMES = {
    "cni-bin-dir": "/opt/cni/bin",
    "cni-net-dir": "/etc/cni/net.d",
    "log-dir": "/var/log/aws-routed-eni",
    "run-dir": "/var/run/aws-node",
    "xtables-lock": "/run/xtables.lock",
    "bpf-pin-path": "/sys/fs/bpf",
}
MOUNTS = {
    UPSTREAM_MAIN: {
        ("cni-bin-dir", "/host/opt/cni/bin"),
        ("cni-net-dir", "/host/etc/cni/net.d"),
        ("log-dir", "/host/var/log/aws-routed-eni"),
        ("run-dir", "/var/run/aws-node"),
        ("xtables-lock", "/run/xtables.lock"),
    },
    UPSTREAM_INIT: {("cni-bin-dir", "/host/opt/cni/bin")},
    NODE_AGENT: {
        ("cni-bin-dir", "/host/opt/cni/bin"),
        ("bpf-pin-path", "/sys/fs/bpf"),
        ("log-dir", "/var/log/aws-routed-eni"),
        ("run-dir", "/var/run/aws-node"),
    },
}


def is_managed_addon(daemon_set: DaemonSetFile) -> bool:
    """True when the DaemonSet's managed fields name the EKS add-on manager ``eks``."""
    metadata = daemon_set.document.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, dict) else None
    return isinstance(entries, list) and any(
        isinstance(e, dict) and e.get("manager") == "eks" for e in entries
    )


def managed_field_findings(daemon_set: DaemonSetFile) -> list[Finding]:
    """A warning per managed field that differs from upstream's shipped manifest."""
    changes: list[tuple[str, str]] = []
    spec = daemon_set.pod_spec
    account = spec.get("serviceAccountName", spec.get("serviceAccount"))
    if account != SERVICE_ACCOUNT:
        changes.append(
            (
                "spec.template.spec.serviceAccountName",
                f"is {account!r}, shipped {SERVICE_ACCOUNT!r}",
            )
        )
    changes += _labels(daemon_set)
    containers = [*daemon_set.cni, *daemon_set.others]
    for container in containers:
        pattern = IMAGES.get(container.name)
        if pattern is not None and not pattern.fullmatch(container.image):
            changes.append(
                (
                    f"container {container.name} image",
                    f"is {container.image!r}, not upstream's image from Amazon ECR",
                )
            )
        if container.name == UPSTREAM_MAIN:
            changes += _probes(container.spec)
        changes += _mounts(container.name, container.spec)
    changes += _volumes(spec)
    managed = is_managed_addon(daemon_set)
    lead = (
        "this DaemonSet is the EKS managed add-on (its managedFields name the manager 'eks'), which"
        if managed
        else "if this DaemonSet is the EKS managed add-on, the add-on"
    )
    return [
        Finding(
            Severity.WARN,
            "managed-field",
            subject,
            f"{what}; {lead} re-applies this field every 15 minutes and on every add-on update, "
            "so the change does not last",
            fix="make the change through the add-on (or run aws-node self-managed), or move to "
            "vpccni (vpccni config convert)",
        )
        for subject, what in changes
    ]


def _labels(daemon_set: DaemonSetFile) -> list[tuple[str, str]]:
    found = []
    template = daemon_set.document.get("spec", {}).get("template", {})
    for where, metadata in (
        ("metadata.labels", daemon_set.document.get("metadata")),
        (
            "spec.template.metadata.labels",
            template.get("metadata") if isinstance(template, dict) else None,
        ),
    ):
        labels = metadata.get("labels") if isinstance(metadata, dict) else None
        labels = labels if isinstance(labels, dict) else {}
        for key, value in LABELS.items():
            if where == "metadata.labels" and not labels:
                break  # view-last-applied of a trimmed object: nothing to compare
            if labels.get(key) != value:
                found.append((f"{where} {key}", f"is {labels.get(key)!r}, shipped {value!r}"))
    return found


def _probes(container: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    for name, delay in PROBES.items():
        probe = container.get(name)
        if not isinstance(probe, dict):
            found.append((f"container {UPSTREAM_MAIN} {name}", "is missing"))
            continue
        command = (
            probe.get("exec", {}).get("command") if isinstance(probe.get("exec"), dict) else None
        )
        if not command or "grpc-health-probe" not in str(command[0]):
            found.append(
                (f"container {UPSTREAM_MAIN} {name}", "is not upstream's grpc-health-probe")
            )
        if probe.get("timeoutSeconds", 1) != PROBE_TIMEOUT:
            found.append(
                (
                    f"container {UPSTREAM_MAIN} {name}.timeoutSeconds",
                    f"is {probe.get('timeoutSeconds', 1)}, shipped {PROBE_TIMEOUT}",
                )
            )
        if probe.get("initialDelaySeconds", 0) != delay:
            found.append(
                (
                    f"container {UPSTREAM_MAIN} {name}.initialDelaySeconds",
                    f"is {probe.get('initialDelaySeconds', 0)}, shipped {delay}",
                )
            )
    return found


def _mounts(name: str, container: Mapping[str, Any]) -> list[tuple[str, str]]:
    shipped = MOUNTS.get(name)
    if shipped is None:
        return []
    found = []
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, dict):
            continue
        pair = (str(mount.get("name")), str(mount.get("mountPath")))
        if pair not in shipped:
            found.append(
                (f"container {name} volumeMount {pair[0]}", f"at {pair[1]} is not upstream's")
            )
    return found


def _volumes(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        name = str(volume.get("name", "?")).strip()
        host = volume.get("hostPath")
        path = host.get("path") if isinstance(host, dict) else None
        if name not in VOLUMES:
            found.append((f"volume {name}", "is not one of upstream's volumes"))
        elif path != VOLUMES[name]:
            found.append(
                (f"volume {name}", f"is {path or 'not a hostPath'}, shipped {VOLUMES[name]}")
            )
    return found
