"""The Kubernetes objects that run vpccni on every Linux node, built as plain dicts.

:func:`build` returns, in apply order, the ENIConfig CustomResourceDefinition
(:mod:`vpccni.deploy.crd`, upstream's), the ServiceAccount, the ClusterRole (rules from
:mod:`vpccni.deploy.rbac`), its ClusterRoleBinding and the DaemonSet. The DaemonSet follows
upstream's ``aws-node`` (facts from its shipped manifest: host network, ``system-node-critical``,
every taint tolerated, rolling update 10% at a time, 10 s grace, 25m CPU requested, Linux
amd64/arm64 nodes that are not Fargate, hybrid or Auto Mode, liveness after 60 s and readiness
after 1 s with 10 s timeouts) and differs where vpccni can do with less: the main container is
not privileged and holds only NET_ADMIN and NET_RAW on a read-only root filesystem; the probes
are HTTP GETs on the daemon's introspection listener; a service-account token is mounted because
the daemon reads its Node and the ENIConfigs from the API (none would be without API calls).
Only the init container is privileged: it writes the host's network sysctls. The main container
sets each pod's host veth's IPv6 parameters through a read-write mount of the host's
``/proc/sys/net`` (its own ``/proc/sys`` is read-only; ``vpccni.adapters.netlink_kit.write_sysctl``
falls back to the mount). Every path below agrees with the daemon's and the plugin's defaults (a
test checks it).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from vpccni import __version__
from vpccni.deploy.crd import eniconfig_crd
from vpccni.deploy.rbac import cluster_role_rules, needs_token
from vpccni.deploy.variables import (
    HOST_CNI_BIN_PATH,
    HOST_CNI_CONFDIR_PATH,
    LOG_MOUNT,
    Assignment,
    NodeEnvironment,
    node_environment,
)
from vpccni.errors import InvalidInput
from vpccni.settings import DaemonSettings

NAME = "vpccni"
DEFAULT_NAMESPACE = "kube-system"
DEFAULT_IMAGE = f"localhost/vpccni:{__version__}"
INIT_CONTAINER = "vpccni-init"
MAIN_CONTAINER = "vpccni-node"
INIT_COMMAND = ["vpccni", "node-init"]
MAIN_COMMAND = ["vpccni", "node-run"]
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
MAIN_CAPABILITIES = ("NET_ADMIN", "NET_RAW")
"""NET_ADMIN: links, addresses, routes, rules, iptables; NET_RAW: iptables' raw sockets."""

PROBE_TIMEOUT_SECONDS = 10
LIVENESS_INITIAL_DELAY_SECONDS = 60
READINESS_INITIAL_DELAY_SECONDS = 1
PROBE_PERIOD_SECONDS = 10
TERMINATION_GRACE_SECONDS = 10
MAX_UNAVAILABLE = "10%"
REQUESTS = {"cpu": "25m", "memory": "64Mi"}
TMP_SIZE = "64Mi"

_DEFAULTS = DaemonSettings()
RUN_DIR = posixpath.dirname(str(_DEFAULTS.socket_path))
"""The daemon's socket directory (``/run/vpccni``): the plugin on the host connects there."""
STATE_DIR = posixpath.commonpath([str(_DEFAULTS.checkpoint_dir), str(_DEFAULTS.spool_dir)])
"""The checkpoint and the plugin's DEL spool (``/var/lib/vpccni``): the same path both sides."""
UPSTREAM_RUN_DIR = posixpath.dirname(str(_DEFAULTS.upstream_checkpoint))
"""Upstream's ``/var/run/aws-node`` (its checkpoint ``ipam.json`` and ``ipamd.sock``), mounted
read-only: vpccni imports the checkpoint when it takes a node over and never writes there."""
SYSCTL_NET = "/proc/sys/net"
SYSCTL_NET_MOUNT = "/host/proc/sys/net"
"""The host's ``/proc/sys/net``, read-write in the main container: the daemon sets each pod's host
veth's ``net.ipv6.conf.<veth>.*`` there (``netlink_kit.HOST_PROC_SYS_NET``, a test ties them)."""

_IMAGE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_ROLE_ARN = re.compile(r"arn:aws[-a-z]*:iam::[0-9]{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class ManifestOptions:
    """What a user may choose; everything else is fixed by vpccni."""

    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    role_arn: str | None = None
    assignments: tuple[Assignment, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HostVolume:
    """A host directory (or file) and where the containers see it."""

    name: str
    host_path: str
    mount_path: str
    type: str
    init: bool
    read_only: bool = False


def check_options(options: ManifestOptions) -> None:
    """Refuse a malformed image reference, namespace or role ARN (one clear line each)."""
    if not _IMAGE.fullmatch(options.image):
        raise InvalidInput(
            f"--image {options.image!r} is not an image reference; give REGISTRY/NAME:TAG or "
            f"NAME@sha256:DIGEST, such as {DEFAULT_IMAGE}"
        )
    if not _DNS_LABEL.fullmatch(options.namespace):
        raise InvalidInput(
            f"--namespace {options.namespace!r} is not a namespace name (lowercase letters, "
            "digits and '-', at most 63, starting and ending with a letter or digit)"
        )
    if options.role_arn is not None and not _ROLE_ARN.fullmatch(options.role_arn):
        raise InvalidInput(
            f"--role-arn {options.role_arn!r} is not an IAM role ARN; give "
            "arn:aws:iam::ACCOUNT:role/NAME (ACCOUNT is 12 digits; NAME may have a path, such "
            "as role/cni/vpccni), e.g. arn:aws:iam::111122223333:role/vpccni"
        )


def build(options: ManifestOptions) -> list[dict[str, Any]]:
    """The objects in apply order; raises ``InvalidInput``/``ConfigError`` on a bad option."""
    check_options(options)
    environment = node_environment(list(options.assignments))
    return build_objects(options, environment)


def build_objects(options: ManifestOptions, environment: NodeEnvironment) -> list[dict[str, Any]]:
    """The objects for options already checked and an environment already validated."""
    return [
        eniconfig_crd(labels()),
        service_account(options),
        cluster_role(),
        cluster_role_binding(options.namespace),
        daemon_set(options, environment),
    ]


def labels() -> dict[str, str]:
    """The labels every object carries."""
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/version": __version__,
        "k8s-app": NAME,
    }


def _metadata(namespace: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"name": NAME}
    if namespace is not None:
        found["namespace"] = namespace
    found["labels"] = labels()
    return found


def service_account(options: ManifestOptions) -> dict[str, Any]:
    """The pods' identity; with a role ARN, IRSA's annotation (the pods assume that role)."""
    metadata = _metadata(options.namespace)
    if options.role_arn is not None:
        metadata["annotations"] = {ROLE_ARN_ANNOTATION: options.role_arn}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def cluster_role() -> dict[str, Any]:
    """Exactly the API calls the daemon makes (see :mod:`vpccni.deploy.rbac`)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _metadata(),
        "rules": cluster_role_rules(),
    }


def cluster_role_binding(namespace: str) -> dict[str, Any]:
    """The ClusterRole, granted to the ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }


def host_volumes(environment: NodeEnvironment) -> list[HostVolume]:
    """Every host path the pods use; the CNI directories follow ``HOST_CNI_*_PATH`` (refused
    with ``InvalidInput`` when one would contain, or lie in, the ``/proc/sys/net`` mount)."""
    values = environment.values
    for name, default in (
        ("HOST_CNI_BIN_PATH", HOST_CNI_BIN_PATH),
        ("HOST_CNI_CONFDIR_PATH", HOST_CNI_CONFDIR_PATH),
    ):
        path = posixpath.normpath(values.get(name, default))
        if posixpath.commonpath([path, SYSCTL_NET_MOUNT]) in (path, SYSCTL_NET_MOUNT):
            raise InvalidInput(
                f"{name}={path!r} overlaps {SYSCTL_NET_MOUNT}, where the host's {SYSCTL_NET} is "
                f"mounted for the daemon; choose a directory outside it, such as {default}"
            )
    return [
        HostVolume(
            "cni-bin-dir",
            "/opt/cni/bin",
            values.get("HOST_CNI_BIN_PATH", HOST_CNI_BIN_PATH),
            "DirectoryOrCreate",
            init=True,
        ),
        HostVolume(
            "cni-net-dir",
            "/etc/cni/net.d",
            values.get("HOST_CNI_CONFDIR_PATH", HOST_CNI_CONFDIR_PATH),
            "DirectoryOrCreate",
            init=False,
        ),
        HostVolume("run-dir", RUN_DIR, RUN_DIR, "DirectoryOrCreate", init=False),
        HostVolume("state-dir", STATE_DIR, STATE_DIR, "DirectoryOrCreate", init=False),
        HostVolume(
            "log-dir", "/var/log/aws-routed-eni", LOG_MOUNT, "DirectoryOrCreate", init=False
        ),
        HostVolume("xtables-lock", "/run/xtables.lock", "/run/xtables.lock", "FileOrCreate", False),
        HostVolume(
            "aws-node-dir",
            UPSTREAM_RUN_DIR,
            UPSTREAM_RUN_DIR,
            "DirectoryOrCreate",
            init=False,
            read_only=True,
        ),
        HostVolume("proc-sys-net", SYSCTL_NET, SYSCTL_NET_MOUNT, "Directory", init=False),
    ]


def _mount(volume: HostVolume) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path}
    if volume.read_only:
        mount["readOnly"] = True
    return mount


def _env(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def _probe(path: str, port: int, initial_delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"host": "127.0.0.1", "path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": PROBE_PERIOD_SECONDS,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def init_container(options: ManifestOptions, environment: NodeEnvironment) -> dict[str, Any]:
    """Host sysctls (rp_filter, ip_forward, tcp_early_demux) and the plugin binary."""
    mounts = [
        {"name": volume.name, "mountPath": volume.mount_path}
        for volume in host_volumes(environment)
        if volume.init
    ]
    return {
        "name": INIT_CONTAINER,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(INIT_COMMAND),
        "env": _env(environment.values),
        "resources": {"requests": dict(REQUESTS)},
        "securityContext": {
            "privileged": True,
            "runAsUser": 0,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }


def main_container(options: ManifestOptions, environment: NodeEnvironment) -> dict[str, Any]:
    """ipamd, the plugin and conflist installer, the probes' endpoints."""
    env = _env(environment.values)
    env.append(
        {
            "name": "MY_NODE_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
        }
    )
    container: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(MAIN_COMMAND),
        "env": env,
    }
    if environment.metrics_port is not None:
        container["ports"] = [
            {"name": "metrics", "containerPort": environment.metrics_port, "protocol": "TCP"}
        ]
    container.update(
        {
            "livenessProbe": _probe(
                "/healthz", environment.probe_port, LIVENESS_INITIAL_DELAY_SECONDS
            ),
            "readinessProbe": _probe(
                "/readyz", environment.probe_port, READINESS_INITIAL_DELAY_SECONDS
            ),
            "resources": {"requests": dict(REQUESTS)},
            "securityContext": {
                "runAsUser": 0,
                "privileged": False,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"], "add": list(MAIN_CAPABILITIES)},
            },
            "volumeMounts": [
                *(_mount(volume) for volume in host_volumes(environment)),
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
    )
    return container


def _affinity() -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                            {
                                "key": "kubernetes.io/arch",
                                "operator": "In",
                                "values": ["amd64", "arm64"],
                            },
                            {
                                "key": "eks.amazonaws.com/compute-type",
                                "operator": "NotIn",
                                "values": ["fargate", "hybrid", "auto"],
                            },
                        ]
                    }
                ]
            }
        }
    }


def daemon_set(options: ManifestOptions, environment: NodeEnvironment) -> dict[str, Any]:
    """One vpccni pod per Linux node, in the host's network namespace."""
    selector = {"k8s-app": NAME}
    volumes: list[dict[str, Any]] = [
        {"name": volume.name, "hostPath": {"path": volume.host_path, "type": volume.type}}
        for volume in host_volumes(environment)
    ]
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}})
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(options.namespace),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": MAX_UNAVAILABLE},
            },
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": NAME, **selector}},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": needs_token(),
                    "hostNetwork": True,
                    "dnsPolicy": "Default",
                    "priorityClassName": "system-node-critical",
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "tolerations": [{"operator": "Exists"}],
                    "affinity": _affinity(),
                    "initContainers": [init_container(options, environment)],
                    "containers": [main_container(options, environment)],
                    "volumes": volumes,
                },
            },
        },
    }
