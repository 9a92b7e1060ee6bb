"""The DaemonSet's environment: which variables exist, their shipped defaults, and validation.

Facts from upstream's shipped manifest (``config/master/aws-k8s-cni.yaml``): the variables it
sets and their values. vpccni's DaemonSet sets those vpccni reads, with the same values, and
nothing it does not read. A user's variables (``vpccni manifests --set`` / ``--env-file``) are
checked here before anything is rendered:

* the name must be upstream's or vpccni's (else refused, with a did-you-mean);
* every value goes through the daemon's own parser, :func:`vpccni.settings.parse_settings`, its
  start-up refusals (:func:`vpccni.core.config.refusals`) and the node commands' parser
  (:func:`vpccni.node.env.parse_node_settings`), so a value vpccni would refuse at start is
  refused here with the same words;
* what the pod itself needs is checked here: the CNI directories are mounted under ``/host/``
  and must not overlap, the daemon's log file must be on a writable mount (the root filesystem
  is read-only), and the probes must reach ``/healthz`` and ``/readyz`` on 127.0.0.1.

Both containers get the same environment (one list, so they cannot disagree). Every upstream
variable is read by the daemon's parser (:mod:`vpccni.settings_upstream` says how): one vpccni
cannot honour is refused unless it keeps its default; a deprecated one, or a policy mode that
enforces nothing, is kept with a warning.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vpccni.core.config import ConfigError, parse_ipam_config, refusals
from vpccni.node.env import parse_node_settings
from vpccni.settings import DatapathSettings, Settings, parse_settings
from vpccni.settings_upstream import CATALOGUE, UPSTREAM_ONLY

# Where the host's directories appear inside the containers (the hostPath volumes' mount paths).
HOST_CNI_BIN_PATH = "/host/opt/cni/bin"
HOST_CNI_CONFDIR_PATH = "/host/etc/cni/net.d"
LOG_MOUNT = "/host/var/log/aws-routed-eni"
HOST_MOUNT_PREFIX = "/host/"
UPSTREAM_RUN_MOUNT = "/var/run/aws-node"

DAEMON_VARIABLES: tuple[str, ...] = (
    # vpccni.core.config.read_ipam_config
    "WARM_ENI_TARGET",
    "WARM_IP_TARGET",
    "MINIMUM_IP_TARGET",
    "WARM_PREFIX_TARGET",
    "ENABLE_PREFIX_DELEGATION",
    "MAX_ENI",
    "IP_COOLDOWN_PERIOD",
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
    "ENABLE_POD_ENI",
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
    "ENABLE_IPv4",
    "ENABLE_IPv6",
    "ENABLE_SUBNET_DISCOVERY",
    "ENI_CONFIG_LABEL_DEF",
    "ENI_CONFIG_ANNOTATION_DEF",
    # vpccni.settings: cloud
    "AWS_ENDPOINT_URL_EC2",
    "AWS_EC2_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "HTTP_TIMEOUT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    # vpccni.settings: datapath
    "AWS_VPC_K8S_CNI_CONNMARK",
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT",
    "AWS_EXTERNAL_SERVICE_CIDRS",
    "AWS_VPC_ENI_MTU",
    "AWS_VPC_K8S_CNI_VETHPREFIX",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
    # vpccni.settings: daemon
    "INTROSPECTION_BIND_ADDRESS",
    "DISABLE_INTROSPECTION",
    "DISABLE_METRICS",
    "CLUSTER_NAME",
    "VPCCNI_CLOCK",
    "AWS_VPC_K8S_CNI_LOGLEVEL",
    "VPCCNI_SDK_LOGLEVEL",
    "AWS_VPC_K8S_CNI_LOG_FILE",
    "VPCCNI_POD_SWEEP_GRACE_SECONDS",
    "AWS_VPC_K8S_CNI_BACKING_STORE",
    # vpccni.settings_eni: provisioning
    "DISABLE_NETWORK_RESOURCE_PROVISIONING",
    "ENABLE_IMDS_ONLY_MODE",
    "MANAGE_UNTAGGED_ENI",
    "DISABLE_LEAKED_ENI_CLEANUP",
    "ADDITIONAL_ENI_TAGS",
    "VPC_CNI_VERSION",
    # vpccni.settings_upstream: refused unless default, accepted with no effect, deprecated
    *UPSTREAM_ONLY,
    # vpccni.settings: cluster (docs/kubernetes.md)
    "MY_NODE_NAME",
    "CLUSTER_ENDPOINT",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
)
"""Every variable :func:`vpccni.settings.parse_settings` reads (a test ties the two)."""

NODE_VARIABLES: tuple[str, ...] = (
    "HOST_CNI_BIN_PATH",
    "HOST_CNI_CONFDIR_PATH",
    "DISABLE_TCP_EARLY_DEMUX",
    "POD_MTU",
    "ENABLE_BANDWIDTH_PLUGIN",
    "AWS_VPC_K8S_PLUGIN_LOG_FILE",
    "AWS_VPC_K8S_PLUGIN_LOG_LEVEL",
)
"""Every variable :func:`vpccni.node.env.parse_node_settings` reads (node-init, node-run)."""

ENTRY_VARIABLES: tuple[str, ...] = ("VPCCNI_DEBUG",)
"""Read by ``vpccni``'s entry point in every container (a traceback on an internal error)."""

_KUBELET_SETS = (
    "kubelet sets it in every pod (the cluster's kubernetes Service); to reach the API server "
    "at another address set CLUSTER_ENDPOINT"
)
FIXED_VARIABLES: dict[str, str] = {
    "MY_NODE_NAME": "it is set from the downward API (the pod's spec.nodeName)",
    "KUBERNETES_SERVICE_HOST": _KUBELET_SETS,
    "KUBERNETES_SERVICE_PORT": _KUBELET_SETS,
    "VPCCNI_SOCKET": "the plugin reads it from the container runtime's environment, not this "
    "pod's; the daemon's socket is /run/vpccni/ipamd.sock on both sides",
    "VPCCNI_SPOOL_DIR": "the plugin reads it from the container runtime's environment, not this "
    "pod's; the DEL spool is /var/lib/vpccni/del-spool on both sides",
}
"""vpccni's names a user may not set in the DaemonSet, and why."""

UPSTREAM_VARIABLES = frozenset(variable.name for variable in CATALOGUE)
"""Every variable upstream's entry point, ipamd, plugin or init container reads."""

UPSTREAM_MANIFEST_ENV: dict[str, str] = {
    "ADDITIONAL_ENI_TAGS": "{}",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": "true",
    "AWS_VPC_ENI_MTU": "9001",
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "false",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": "false",
    "AWS_VPC_K8S_CNI_LOGLEVEL": "DEBUG",
    "AWS_VPC_K8S_CNI_LOG_FILE": LOG_MOUNT + "/ipamd.log",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": "prng",
    "AWS_VPC_K8S_CNI_VETHPREFIX": "eni",
    "AWS_VPC_K8S_PLUGIN_LOG_FILE": "/var/log/aws-routed-eni/plugin.log",
    "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "DEBUG",
    "DISABLE_INTROSPECTION": "false",
    "DISABLE_METRICS": "false",
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": "false",
    "ENABLE_IPv4": "true",
    "ENABLE_IPv6": "false",
    "ENABLE_POD_ENI": "false",
    "ENABLE_PREFIX_DELEGATION": "false",
    "ENABLE_SUBNET_DISCOVERY": "true",
    "WARM_ENI_TARGET": "1",
    "WARM_PREFIX_TARGET": "1",
}
"""The literal environment of upstream's main container in its shipped manifest."""

UPSTREAM_INIT_ENV: dict[str, str] = {"DISABLE_TCP_EARLY_DEMUX": "false", "ENABLE_IPv6": "false"}
"""The environment of upstream's init container in its shipped manifest."""

READ_BY_VPCCNI = frozenset(DAEMON_VARIABLES + NODE_VARIABLES + ENTRY_VARIABLES)
KNOWN_VARIABLES = READ_BY_VPCCNI | UPSTREAM_VARIABLES | frozenset(FIXED_VARIABLES)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def default_environment() -> dict[str, str]:
    """The shipped defaults: upstream's manifest values for what vpccni reads, plus the paths."""
    found = {
        name: value
        for name, value in {**UPSTREAM_MANIFEST_ENV, **UPSTREAM_INIT_ENV}.items()
        if name in READ_BY_VPCCNI
    }
    found["HOST_CNI_BIN_PATH"] = HOST_CNI_BIN_PATH
    found["HOST_CNI_CONFDIR_PATH"] = HOST_CNI_CONFDIR_PATH
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Assignment:
    """``NAME=VALUE`` as the user gave it, and where (``--set``, ``FILE line N``)."""

    name: str
    value: str
    origin: str


def parse_assignment(text: str, origin: str) -> Assignment:
    """``NAME=VALUE``; the name must be a variable name (the value may be anything, or empty)."""
    name, equals, value = text.partition("=")
    if not equals or not _NAME.fullmatch(name):
        raise ConfigError(
            [f"{origin}: {text!r} is not NAME=VALUE (a variable name, '=', then the value)"]
        )
    return Assignment(name, value, origin)


def check_names(assignments: list[Assignment]) -> None:
    """Refuse unknown names (with a did-you-mean), fixed names, and a name given twice."""
    problems: list[str] = []
    seen: dict[str, Assignment] = {}
    for item in assignments:
        if item.name not in KNOWN_VARIABLES:
            problems.append(f"{item.origin}: {unknown_name(item.name)}")
        elif item.name in FIXED_VARIABLES:
            problems.append(
                f"{item.origin}: {item.name} cannot be set here: {FIXED_VARIABLES[item.name]}"
            )
        elif item.name in seen:
            problems.append(
                f"{item.origin}: {item.name} is already set by {seen[item.name].origin}; "
                "give each variable once"
            )
        seen.setdefault(item.name, item)
    if problems:
        raise ConfigError(problems)


def unknown_name(name: str) -> str:
    """Why ``name`` is refused, with the closest known names."""
    by_upper = {known.upper(): known for known in KNOWN_VARIABLES}
    if name.upper() in by_upper:
        return (
            f"unknown variable {name!r} (did you mean {by_upper[name.upper()]}? names are "
            "case-sensitive): nothing would read it as written"
        )
    close = difflib.get_close_matches(name.upper(), by_upper, n=3, cutoff=0.6)
    names = [by_upper[match] for match in close]
    choices = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""
    hint = f" (did you mean {choices}?)" if names else ""
    return (
        f"unknown variable {name!r}{hint}: neither upstream's nor vpccni's, so nothing would "
        "read it; docs/deploy.md lists the names"
    )


@dataclass(frozen=True)
class NodeEnvironment:
    """A validated environment and what the DaemonSet derives from it."""

    values: dict[str, str]
    settings: Settings
    probe_port: int
    warnings: tuple[str, ...]

    @property
    def metrics_port(self) -> int | None:
        """The port of ``/metrics`` (None with ``DISABLE_METRICS``)."""
        bind = self.settings.daemon.metrics_bind
        return None if bind is None else bind[1]


def node_environment(assignments: list[Assignment]) -> NodeEnvironment:
    """The defaults with ``assignments`` applied (an empty value removes the variable), checked.

    Raises ``ConfigError`` listing every problem: the daemon's own (exact words), its start-up
    refusals, the node commands' and the pod's.
    """
    check_names(assignments)
    values = default_environment()
    for item in assignments:
        if item.value == "":
            values.pop(item.name, None)  # empty is unset for the daemon: leave it out
        else:
            values[item.name] = item.value
    values = dict(sorted(values.items()))
    problems: list[str] = []
    try:
        settings = parse_settings(values)
    except ConfigError as error:
        problems.extend(error.problems)
        settings = None
    eni_mtu = settings.datapath.mtu if settings is not None else DatapathSettings().mtu
    problems.extend(_node_settings_problems(values, eni_mtu))
    with contextlib.suppress(ConfigError):  # else parse_settings has named the same problems
        problems.extend(refusals(parse_ipam_config(values)))
    port = 0
    if settings is not None:
        port, probe_problem = _probe_port(settings)
        problems.extend(probe_problem)
    problems.extend(_pod_problems(values))
    if problems or settings is None:
        raise ConfigError(problems)
    return NodeEnvironment(values, settings, port, settings.upstream_only.notes)


def _node_settings_problems(values: Mapping[str, str], eni_mtu: int) -> list[str]:
    """The node commands' own parser's refusals."""
    try:
        parse_node_settings(values, eni_mtu)
    except ConfigError as error:
        return list(error.problems)
    return []


def _pod_problems(values: Mapping[str, str]) -> list[str]:
    """What this pod needs beyond the parsers: its mounts and its writable paths."""
    problems: list[str] = []
    for name in ("HOST_CNI_BIN_PATH", "HOST_CNI_CONFDIR_PATH"):
        raw = values.get(name)
        if raw is not None and not _under(raw, HOST_MOUNT_PREFIX):
            problems.append(
                f"{name}={raw!r} is not a directory under {HOST_MOUNT_PREFIX}; accepted: an "
                f"absolute path such as {HOST_CNI_BIN_PATH} (the host's directories appear "
                f"under {HOST_MOUNT_PREFIX} in the container; the volume is mounted there)"
            )
    mounts = {
        "HOST_CNI_BIN_PATH": values.get("HOST_CNI_BIN_PATH", HOST_CNI_BIN_PATH),
        "HOST_CNI_CONFDIR_PATH": values.get("HOST_CNI_CONFDIR_PATH", HOST_CNI_CONFDIR_PATH),
        "the log directory": LOG_MOUNT,
    }
    for first, second in itertools.combinations(mounts, 2):
        a, b = sorted((mounts[first], mounts[second]), key=len)
        if not problems and (a == b or b.startswith(a + "/")):
            problems.append(
                f"{first} ({mounts[first]}) and {second} ({mounts[second]}) overlap: each is a "
                "separate host directory mounted at its own path; choose paths that do not "
                "contain one another"
            )
    store = values.get("AWS_VPC_K8S_CNI_BACKING_STORE")
    if store is not None and not _under(store, UPSTREAM_RUN_MOUNT + "/"):
        problems.append(
            f"AWS_VPC_K8S_CNI_BACKING_STORE={store!r} is not on the read-only mount of "
            f"upstream's {UPSTREAM_RUN_MOUNT}, so a node aws-node ran could not be taken over; "
            f"accepted: a file under {UPSTREAM_RUN_MOUNT}/ (default {UPSTREAM_RUN_MOUNT}/ipam.json)"
        )
    log_file = values.get("AWS_VPC_K8S_CNI_LOG_FILE")
    if log_file not in (None, "stdout", "stderr") and not _under(log_file or "", LOG_MOUNT + "/"):
        problems.append(
            f"AWS_VPC_K8S_CNI_LOG_FILE={log_file!r} is not on a writable mount: the container's "
            f"root filesystem is read-only; accepted: stdout, stderr, or a file under {LOG_MOUNT}/ "
            "(the host's /var/log/aws-routed-eni)"
        )
    return problems


def _probe_port(settings: Settings) -> tuple[int, list[str]]:
    """The port of ``/healthz`` and ``/readyz``, or why the probes could not reach them.

    They are served on the introspection address even with ``DISABLE_INTROSPECTION``.
    """
    bind = settings.daemon.health_bind
    host, _, port = bind.rpartition(":")
    if bind.startswith("unix:") or host not in ("127.0.0.1", "localhost", "", "0.0.0.0"):
        return 0, [
            f"INTROSPECTION_BIND_ADDRESS={bind!r} cannot be reached by the probes, which are HTTP "
            "GETs on 127.0.0.1; accepted here: 127.0.0.1:PORT (or an address that includes "
            "127.0.0.1, such as 0.0.0.0:PORT)"
        ]
    return int(port), []


def _under(path: str, prefix: str) -> bool:
    return _absolute_file(path) and posixpath.normpath(path) == path and path.startswith(prefix)


def _absolute_file(path: str) -> bool:
    return path.startswith("/") and not path.endswith("/") and path == path.strip()
