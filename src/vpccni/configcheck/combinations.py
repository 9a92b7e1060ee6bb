"""Settings that cannot work or do nothing together, judged once each value is valid.

Without an instance type: ``WARM_PREFIX_TARGET`` without prefix delegation (inert; upstream
ignores it too) or beside a warm IP target (overridden, as the guidance says),
``WARM_ENI_TARGET`` beside a warm IP target or in prefix mode, SNAT exclusions with external
SNAT, and network policies enforced by upstream's agent (vpccni's plugin does not call it).
With ``--instance-type``, against the shipped instance table: prefix delegation on a type that
is neither Nitro nor bare metal (vpccni refuses; upstream silently falls back to secondary
IPs), ``MAX_ENI`` above the type's limit, targets the node can never hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from vpccni.configcheck.findings import Finding, Severity
from vpccni.configcheck.managed import NODE_AGENT
from vpccni.configcheck.source import DaemonSetFile
from vpccni.core.config import ConfigError, IpamConfig, capacity_warnings
from vpccni.core.limits import InstanceLimits
from vpccni.core.pool_rules import NodeLimits
from vpccni.deploy.variables import READ_BY_VPCCNI, default_environment
from vpccni.settings import parse_settings


def combinations(env: Mapping[str, str], config: IpamConfig) -> list[Finding]:
    found = []
    shipped = IpamConfig()
    explicit = set(env)
    if (
        "WARM_PREFIX_TARGET" in explicit
        and not config.prefix_delegation
        and config.warm_prefix_target != shipped.warm_prefix_target
    ):
        found.append(
            _inert(
                "WARM_PREFIX_TARGET",
                f"WARM_PREFIX_TARGET={config.warm_prefix_target} has no effect: prefix "
                "delegation is off (ENABLE_PREFIX_DELEGATION=false); upstream ignores it too",
                "enable prefix delegation, or remove WARM_PREFIX_TARGET",
            )
        )
    if (
        config.prefix_delegation
        and config.warm_ip_targets_defined
        and (
            "WARM_PREFIX_TARGET" in explicit
            and config.warm_prefix_target != shipped.warm_prefix_target
        )
    ):
        found.append(
            _inert(
                "WARM_PREFIX_TARGET",
                "WARM_PREFIX_TARGET is overridden: WARM_IP_TARGET or MINIMUM_IP_TARGET is set "
                "(the guidance: either of them overrides WARM_PREFIX_TARGET)",
                "keep one way of sizing the pool",
            )
        )
    if "WARM_ENI_TARGET" in explicit and config.warm_eni_target != shipped.warm_eni_target:
        if config.prefix_delegation:
            found.append(
                _inert(
                    "WARM_ENI_TARGET",
                    "WARM_ENI_TARGET has no effect in prefix mode (WARM_PREFIX_TARGET sizes the "
                    "pool)",
                    "use WARM_PREFIX_TARGET or WARM_IP_TARGET",
                )
            )
        elif config.warm_ip_targets_defined:
            found.append(
                _inert(
                    "WARM_ENI_TARGET",
                    "WARM_ENI_TARGET has no effect while WARM_IP_TARGET or MINIMUM_IP_TARGET is "
                    "set",
                    "remove WARM_ENI_TARGET or the warm IP targets",
                )
            )
    found += _snat(env)
    return found


def _snat(env: Mapping[str, str]) -> list[Finding]:
    with contextlib.suppress(ConfigError):
        settings = parse_settings(
            {**default_environment(), **{k: v for k, v in env.items() if k in READ_BY_VPCCNI}}
        )
        datapath = settings.datapath
        if datapath.external_snat and datapath.exclude_snat_cidrs:
            return [
                _inert(
                    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
                    "has no effect with AWS_VPC_K8S_CNI_EXTERNALSNAT=true (nothing is SNATed "
                    "by the node)",
                    "remove one of the two",
                )
            ]
    return []


def _inert(subject: str, message: str, fix: str) -> Finding:
    return Finding(Severity.WARN, "inert", subject, message, fix=fix)


def instance_findings(config: IpamConfig, instance: InstanceLimits) -> list[Finding]:
    found = []
    name = instance.instance_type
    if config.prefix_delegation and not instance.prefixes_allowed:
        found.append(
            Finding(
                Severity.ERROR,
                "instance-type",
                "ENABLE_PREFIX_DELEGATION",
                f"prefix delegation cannot work on {name} (hypervisor "
                f"{instance.hypervisor_label}): EC2 assigns /28 prefixes only on Nitro and bare "
                "metal instances; vpccni refuses to start",
                upstream="silently falls back to secondary IPs (a warning in its log)",
                fix="use a Nitro instance type, or ENABLE_PREFIX_DELEGATION=false",
            )
        )
    if config.max_eni is not None and config.max_eni > instance.enis:
        found.append(
            Finding(
                Severity.INFO,
                "instance-type",
                "MAX_ENI",
                f"MAX_ENI={config.max_eni} is above {name}'s limit of {instance.enis} ENIs; "
                f"both vpccni and upstream use {instance.enis}",
            )
        )
    limits = NodeLimits(instance.enis, instance.ipv4_per_eni, 110, instance.trunking)
    mode = config.mode if instance.prefixes_allowed else IpamConfig().mode
    for warning in capacity_warnings(
        config, limits.eni_cap(config), limits.addresses_per_eni(mode)
    ):
        found.append(Finding(Severity.WARN, "instance-type", warning.split("=", 1)[0], warning))
    return found


def node_agent_findings(daemon_set: DaemonSetFile) -> list[Finding]:
    agent = next((c for c in daemon_set.others if c.name == NODE_AGENT), None)
    if agent is None:
        return []
    args = [str(a) for a in agent.spec.get("args") or []]
    if "--enable-network-policy=true" not in args:
        return []
    return [
        Finding(
            Severity.WARN,
            "not-read",
            f"container {NODE_AGENT}",
            "network policies are enforced (--enable-network-policy=true) through upstream's "
            "plugin, which calls this agent for every pod; vpccni's plugin does not, so with "
            "vpccni network policies are not enforced",
            fix="keep aws-node where network policies must be enforced",
        )
    ]
