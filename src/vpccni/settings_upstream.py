"""Every variable upstream's ``aws-node`` reads, and what vpccni does with each.

The rule (docs/variables.md): an upstream variable is **honoured** (it acts as upstream's), or
**refused** at start unless it keeps its default (the reason is named), or **accepted**
because it has no effect in the configurations vpccni runs - the same as in upstream's, e.g. an
IPv6-only variable in an IPv4 cluster - or **deprecated** (upstream no longer reads it either; a
warning says so). None is silently ignored.

:data:`CATALOGUE` is that table; ``docs/variables.md`` shows it (a test holds the two equal).
:func:`read_upstream_only` reads, through the daemon's one reader, the variables vpccni does
not act on: a value it cannot honour is left in the reader's problems; what is worth a word at
start comes back as notes. The honoured variables are read where they act (``vpccni.settings``,
``vpccni.settings_eni``, ``vpccni.core.config``, ``vpccni.node.env``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vpccni.core.config import SettingsReader, absolute_file, object_name

HONOURED = "honoured"
REFUSED = "refused unless default"
ACCEPTED = "accepted, no effect"
DEPRECATED = "deprecated"
HANDLINGS = (HONOURED, REFUSED, ACCEPTED, DEPRECATED)


@dataclass(frozen=True)
class UpstreamVariable:
    """One upstream variable: how vpccni handles it, which part reads it, and what it does."""

    name: str
    handling: str
    reader: str
    """``ipamd`` (``vpccni ipamd``, also run by ``node-run``), ``node`` (``node-init`` /
    ``node-run``: conflist, sysctls, install paths), ``entry`` (the DaemonSet, not a program)."""
    what: str


def _v(name: str, handling: str, reader: str, what: str) -> UpstreamVariable:
    return UpstreamVariable(name, handling, reader, what)


CATALOGUE: tuple[UpstreamVariable, ...] = (
    _v("ADDITIONAL_ENI_TAGS", HONOURED, "ipamd", "extra tags on every ENI vpccni creates"),
    _v("ANNOTATE_POD_IP", REFUSED, "ipamd", "true refused: vpccni does not patch pods"),
    _v("AWS_EC2_ENDPOINT", HONOURED, "ipamd", "EC2 endpoint (AWS_ENDPOINT_URL_EC2 wins)"),
    _v("AWS_EXTERNAL_SERVICE_CIDRS", HONOURED, "ipamd", "ip rule to CIDR lookup main, 1535"),
    _v(
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
        HONOURED,
        "ipamd",
        "false: no ENI change while the Node is unschedulable",
    ),
    _v("AWS_VPC_CNI_NODE_PORT_SUPPORT", HONOURED, "ipamd", "NodePort mangle and fwmark rules"),
    _v("AWS_VPC_ENI_MTU", HONOURED, "ipamd", "MTU of the ENIs; default pod MTU"),
    _v("AWS_VPC_K8S_CNI_BACKING_STORE", HONOURED, "ipamd", "upstream checkpoint, imported"),
    _v(
        "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER",
        DEPRECATED,
        "ipamd",
        "warned: upstream no longer reads it; node-init sets rp_filter",
    ),
    _v("AWS_VPC_K8S_CNI_CONNMARK", HONOURED, "ipamd", "connmark and fwmark value"),
    _v(
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        HONOURED,
        "ipamd",
        "pod ENIs in the ENIConfig's subnet",
    ),
    _v("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", HONOURED, "ipamd", "destinations not SNATed"),
    _v("AWS_VPC_K8S_CNI_EXTERNALSNAT", HONOURED, "ipamd", "no SNAT chain"),
    _v("AWS_VPC_K8S_CNI_LOGLEVEL", HONOURED, "ipamd", "daemon log level"),
    _v("AWS_VPC_K8S_CNI_LOG_FILE", HONOURED, "ipamd", "daemon log file"),
    _v("AWS_VPC_K8S_CNI_RANDOMIZESNAT", HONOURED, "ipamd", "SNAT port randomisation"),
    _v("AWS_VPC_K8S_CNI_VETHPREFIX", HONOURED, "ipamd", "host veth name prefix"),
    _v(
        "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE",
        ACCEPTED,
        "ipamd",
        "egress plugin's log: chained only for IPv6 pods, which vpccni does not run",
    ),
    _v(
        "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE",
        ACCEPTED,
        "ipamd",
        "egress plugin's log: chained only with ENABLE_V6_EGRESS, refused",
    ),
    _v("AWS_VPC_K8S_PLUGIN_LOG_FILE", HONOURED, "node", "plugin log file, in the conflist"),
    _v("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", HONOURED, "node", "plugin log level, in the conflist"),
    _v("CLUSTER_ENDPOINT", HONOURED, "ipamd", "API server address for the in-cluster client"),
    _v("CLUSTER_NAME", HONOURED, "ipamd", "cluster tags on ENIs; leaked-ENI filter"),
    _v("DISABLE_INTROSPECTION", HONOURED, "ipamd", "no introspection (probes still served)"),
    _v(
        "DISABLE_LEAKED_ENI_CLEANUP",
        HONOURED,
        "ipamd",
        "no hourly leaked-ENI sweep",
    ),
    _v("DISABLE_METRICS", HONOURED, "ipamd", "no /metrics listener"),
    _v(
        "DISABLE_NETWORK_RESOURCE_PROVISIONING",
        HONOURED,
        "ipamd",
        "no ENI or address created, assigned or freed; only reconcile",
    ),
    _v("DISABLE_POD_V6", REFUSED, "ipamd", "true refused: vpccni chains no tuning plugin"),
    _v("DISABLE_TCP_EARLY_DEMUX", HONOURED, "node", "net.ipv4.tcp_early_demux 0"),
    _v("ENABLE_BANDWIDTH_PLUGIN", HONOURED, "node", "bandwidth plugin chained in the conflist"),
    _v(
        "ENABLE_IMDS_ONLY_MODE",
        HONOURED,
        "ipamd",
        "provisioning off; ENIs read from IMDS only",
    ),
    _v("ENABLE_IPv4", REFUSED, "ipamd", "false refused: IPv4 is the only mode"),
    _v("ENABLE_IPv6", REFUSED, "ipamd", "true refused: IPv6 comes later"),
    _v("ENABLE_MULTI_NIC", REFUSED, "ipamd", "true refused: network card 0 only"),
    _v(
        "ENABLE_NFTABLES",
        DEPRECATED,
        "ipamd",
        "warned: upstream no longer reads it; the backend is detected",
    ),
    _v("ENABLE_POD_ENI", REFUSED, "ipamd", "true refused: security groups for pods"),
    _v("ENABLE_PREFIX_DELEGATION", HONOURED, "ipamd", "/28 prefixes instead of secondary IPs"),
    _v("ENABLE_SUBNET_DISCOVERY", HONOURED, "ipamd", "new ENIs in tagged subnets"),
    _v(
        "ENABLE_V4_EGRESS",
        ACCEPTED,
        "ipamd",
        "IPv4 egress for IPv6 pods: no effect in an IPv4 cluster, as upstream",
    ),
    _v("ENABLE_V6_EGRESS", REFUSED, "ipamd", "true refused: no IPv6 egress"),
    _v("ENI_CONFIG_ANNOTATION_DEF", HONOURED, "ipamd", "Node annotation naming the ENIConfig"),
    _v("ENI_CONFIG_LABEL_DEF", HONOURED, "ipamd", "Node label naming the ENIConfig"),
    _v("HOST_CNI_BIN_PATH", HONOURED, "node", "where the plugin is installed"),
    _v("HOST_CNI_CONFDIR_PATH", HONOURED, "node", "where the conflist is written"),
    _v("HTTP_TIMEOUT", HONOURED, "ipamd", "EC2 and IMDS HTTP timeout"),
    _v("INTROSPECTION_BIND_ADDRESS", HONOURED, "ipamd", "introspection listener"),
    _v("IP_COOLDOWN_PERIOD", HONOURED, "ipamd", "released address cooldown"),
    _v("MANAGE_UNTAGGED_ENI", HONOURED, "ipamd", "false: untagged ENIs are not managed"),
    _v("MAX_ENI", HONOURED, "ipamd", "cap on ENIs"),
    _v("MINIMUM_IP_TARGET", HONOURED, "ipamd", "floor on addresses"),
    _v("MY_NODE_NAME", HONOURED, "ipamd", "the Node read from the API"),
    _v(
        "MY_POD_NAME",
        HONOURED,
        "ipamd",
        "named in the start-up log (upstream: Kubernetes events, not recorded)",
    ),
    _v(
        "NETWORK_POLICY_ENFORCING_MODE",
        REFUSED,
        "ipamd",
        "strict refused; none and standard accepted: no policy is enforced",
    ),
    _v("POD_MTU", HONOURED, "node", "pod MTU, in the conflist"),
    _v(
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        ACCEPTED,
        "ipamd",
        "used only with ENABLE_POD_ENI, refused; validated",
    ),
    _v("VPC_CNI_VERSION", HONOURED, "ipamd", "in the EC2 user agent"),
    _v("WARM_ENI_TARGET", HONOURED, "ipamd", "free ENIs' worth of addresses"),
    _v("WARM_IP_TARGET", HONOURED, "ipamd", "free addresses"),
    _v("WARM_PREFIX_TARGET", HONOURED, "ipamd", "free /28 prefixes"),
)
"""Every variable upstream's entry point, ipamd, plugin or init container reads."""

BY_NAME = {variable.name: variable for variable in CATALOGUE}
UPSTREAM_ONLY = (
    "ANNOTATE_POD_IP",
    "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER",
    "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE",
    "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE",
    "DISABLE_POD_V6",
    "ENABLE_MULTI_NIC",
    "ENABLE_NFTABLES",
    "ENABLE_V4_EGRESS",
    "ENABLE_V6_EGRESS",
    "MY_POD_NAME",
    "NETWORK_POLICY_ENFORCING_MODE",
    "POD_SECURITY_GROUP_ENFORCING_MODE",
)
"""The variables :func:`read_upstream_only` reads (the others are read where they act)."""

_REFUSED_WHEN_TRUE = {
    "ANNOTATE_POD_IP": (
        "vpccni does not write the vpc.amazonaws.com/pod-ips annotation (it has no "
        "permission to patch pods); unset it or set false"
    ),
    "ENABLE_MULTI_NIC": (
        "vpccni manages ENIs on network card 0 only; multi-NIC is not supported yet; unset it "
        "or set false"
    ),
    "DISABLE_POD_V6": (
        "vpccni does not chain the tuning plugin that turns IPv6 off in pods; unset it or set false"
    ),
    "ENABLE_V6_EGRESS": (
        "vpccni gives pods no IPv6 egress (no egress plugin); unset it or set false"
    ),
}
_POLICY_MODES = ("none", "standard", "strict")
_SG_MODES = ("strict", "standard")


@dataclass(frozen=True)
class UpstreamOnly:
    """What the daemon keeps of the variables it does not act on."""

    pod_name: str = ""
    """``MY_POD_NAME``: named in the start-up log."""
    notes: tuple[str, ...] = ()
    """Warnings for the start-up log (deprecated variables, a policy mode with no effect)."""


def read_upstream_only(env: SettingsReader) -> UpstreamOnly:
    """Read :data:`UPSTREAM_ONLY` through ``env``: refusals go to its problems."""
    notes: list[str] = []
    for name, reason in _REFUSED_WHEN_TRUE.items():
        if env.flag(name, False):
            env.problems.append(f"{name}={env.raw(name)!r} cannot be honoured: {reason}")
    env.flag("ENABLE_V4_EGRESS", True)  # validated; IPv6 pods only, as upstream
    policy = env.value("NETWORK_POLICY_ENFORCING_MODE", _policy_mode, "", "none, standard, strict")
    if policy == "strict":
        env.problems.append(
            "NETWORK_POLICY_ENFORCING_MODE='strict' cannot be honoured: strict denies pod "
            "traffic until policies allow it, and vpccni enforces no network policy; use none "
            "or standard, or keep upstream's aws-node where you need policies"
        )
    elif policy == "standard":
        notes.append(
            "NETWORK_POLICY_ENFORCING_MODE=standard: vpccni enforces no NetworkPolicy, so pods "
            "are open as in standard mode before any policy applies"
        )
    env.value(
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        _sg_mode,
        "strict",
        "strict or standard (used only with ENABLE_POD_ENI, which vpccni refuses)",
    )
    for name in ("AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE", "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE"):
        env.value(name, absolute_file, "", "an absolute file path")
    for name in ("AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER", "ENABLE_NFTABLES"):
        raw = env.raw(name)
        if raw is not None:
            notes.append(
                f"{name}={raw!r} has no effect: it is deprecated and upstream no longer reads "
                "it either; remove it"
            )
    pod_name = env.value(
        "MY_POD_NAME",
        lambda raw: object_name(raw, "a pod name"),
        "",
        "a pod name (a DNS subdomain)",
    )
    return UpstreamOnly(pod_name=pod_name, notes=tuple(notes))


def _policy_mode(raw: str) -> str:
    if raw.lower() not in _POLICY_MODES:
        raise ValueError("is not a network-policy enforcing mode")
    return raw.lower()


def _sg_mode(raw: str) -> str:
    if raw not in _SG_MODES:
        raise ValueError("is not an enforcing mode")
    return raw
