"""Every check of ``vpccni config check`` on one DaemonSet's CNI environment.

The environment is the one vpccni would give both its containers (the init container's values,
then the main container's). In order:

* **names**: a name neither upstream nor vpccni reads is unknown (with a did-you-mean); init
  and main containers that disagree are flagged
  (vpccni gives both one environment); ``valueFrom`` / ``envFrom`` that the file cannot resolve
  are flagged unchecked;
* **values**: everything goes through what ``vpccni manifests`` runs - the daemon's own strict
  parser, its start-up refusals, the node commands' parser and the pod's own rules - so a value
  vpccni would refuse is an error here in the same words, with what upstream would do with it
  instead (:mod:`vpccni.configcheck.upstream`: e.g. ``WARM_IP_TARGET=abc`` upstream treats as
  unset); every upstream variable is read there (:mod:`vpccni.settings_upstream`): one vpccni
  cannot honour is refused unless it keeps its default, and what the daemon would warn about at
  start (a deprecated variable, a policy mode that enforces nothing) is noted;
* **changed**: each value that differs, once parsed, from the shipped default (upstream's manifest,
  which is also vpccni's), and each unset variable whose upstream code default differs from
  the manifest;
* **combinations** (:mod:`vpccni.configcheck.combinations`): settings that cannot work or do
  nothing together (``WARM_PREFIX_TARGET`` without
  prefix delegation, ``WARM_ENI_TARGET`` beside a warm IP target or in prefix mode, SNAT
  exclusions with external SNAT) and, with ``--instance-type``, against the shipped instance
  table (prefix delegation on a non-Nitro type, targets beyond the node's capacity, ``MAX_ENI``
  above the type's limit);
* **managed fields** (upstream's DaemonSet only): :mod:`vpccni.configcheck.managed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from vpccni.configcheck.combinations import (
    combinations,
    instance_findings,
    node_agent_findings,
)
from vpccni.configcheck.findings import Finding, Severity
from vpccni.configcheck.managed import managed_field_findings
from vpccni.configcheck.source import DOWNWARD, DaemonSetFile
from vpccni.configcheck.upstream import CODE_DEFAULTS, upstream_reading
from vpccni.core.config import (
    ConfigError,
    IpamConfig,
    SettingsReader,
    parse_ipam_config,
)
from vpccni.core.limits import InstanceLimits
from vpccni.deploy.variables import (
    DAEMON_VARIABLES,
    FIXED_VARIABLES,
    KNOWN_VARIABLES,
    NODE_VARIABLES,
    READ_BY_VPCCNI,
    Assignment,
    default_environment,
    node_environment,
    unknown_name,
)
from vpccni.node.env import parse_node_settings
from vpccni.settings import parse_settings
from vpccni.settings_upstream import read_upstream_only


@dataclass(frozen=True)
class CheckOptions:
    """What the check may know beyond the file."""

    instance: InstanceLimits | None = None


def check(daemon_set: DaemonSetFile, options: CheckOptions | None = None) -> list[Finding]:
    """Every finding for ``daemon_set``."""
    options = options or CheckOptions()
    env = daemon_set.environment()
    findings = _names(daemon_set, env)
    findings += _values(env)
    findings += _changed(env)
    config = _config(env)
    if config is not None:
        findings += combinations(env, config)
        if options.instance is not None:
            findings += instance_findings(config, options.instance)
    if daemon_set.flavour == "upstream":
        findings += managed_field_findings(daemon_set)
        findings += node_agent_findings(daemon_set)
    return findings


def _config(env: Mapping[str, str]) -> IpamConfig | None:
    """The IPAM settings the file asks for, each refused value left at its default (the values
    check names it), so the combinations can still be judged."""
    base = default_environment()
    accepted = dict(base)
    for name, value in env.items():
        if name not in READ_BY_VPCCNI:
            continue
        try:
            parse_ipam_config({**base, name: value})
        except ConfigError:
            continue
        accepted[name] = value
    try:
        return parse_ipam_config(accepted)
    except ConfigError:
        return None


def _names(daemon_set: DaemonSetFile, env: Mapping[str, str]) -> list[Finding]:
    found: list[Finding] = []
    for container in daemon_set.cni:
        for item in container.env:
            where = f"{item.name} (container {container.name})"
            if item.value is None and item.name not in DOWNWARD:
                found.append(
                    Finding(
                        Severity.WARN,
                        "unresolved",
                        where,
                        f"its value comes from {item.source}, which this file does not "
                        "hold, so it was not checked",
                        fix="check the referenced value too, or set the value literally",
                    )
                )
        for reference in container.env_from:
            found.append(
                Finding(
                    Severity.WARN,
                    "unresolved",
                    f"envFrom (container {container.name})",
                    f"variables from {reference} are not in this file and were not checked",
                    fix="set the variables in env instead, or check them separately",
                )
            )
    found += _init_main_differences(daemon_set)
    for name in env:
        if name not in KNOWN_VARIABLES:
            found.append(
                Finding(
                    Severity.WARN,
                    "unknown",
                    name,
                    unknown_name(name),
                    upstream="ignores it: no part of upstream reads this name",
                    fix="correct the name or remove it",
                )
            )
    return found


def _init_main_differences(daemon_set: DaemonSetFile) -> list[Finding]:
    found = []
    inits = [c for c in daemon_set.cni if c.init]
    main = daemon_set.main
    if main is None:
        return []
    main_values = main.values()
    for init in inits:
        for name, value in init.values().items():
            if name in main_values and main_values[name] != value:
                found.append(
                    Finding(
                        Severity.WARN,
                        "containers",
                        name,
                        f"is {value!r} in {init.name} but {main_values[name]!r} in {main.name}; "
                        f"vpccni gives both containers one environment and takes {main.name}'s",
                        fix="give both containers the same value",
                    )
                )
    return found


def _values(env: Mapping[str, str]) -> list[Finding]:
    """What ``vpccni manifests`` would refuse, attributed to the variables named."""
    assignments = [
        Assignment(name, value, "file")
        for name, value in env.items()
        if name in KNOWN_VARIABLES and name not in FIXED_VARIABLES
    ]
    notes = [_noted(note) for note in read_upstream_only(SettingsReader(env)).notes]
    try:
        node_environment(assignments)
    except ConfigError as error:
        problems = error.problems
    else:
        return notes
    found = notes
    for problem in dict.fromkeys(problems):
        name = _named(problem)
        reading = upstream_reading(name, env[name], env) if name in env else None
        found.append(
            Finding(
                Severity.ERROR,
                "refused",
                name or "environment",
                f"vpccni refuses it: {problem}",
                upstream=reading.note if reading is not None else "",
                fix=_refusal_fix(name, reading),
            )
        )
    return found


def _noted(note: str) -> Finding:
    """A value vpccni accepts with a warning at start (deprecated, or enforcing nothing)."""
    return Finding(Severity.INFO, "noted", _named(note) or "environment", note)


def _named(problem: str) -> str:
    """The variable a problem is about (its text starts ``NAME=``), or ''."""
    head = problem.split("=", 1)[0].split(" ", 1)[0].strip()
    return head if head in KNOWN_VARIABLES else ""


def _refusal_fix(name: str, reading: object) -> str:
    if not name:
        return "change the settings named"
    effective = getattr(reading, "effective", "missing")
    if reading is not None and effective is None:
        return f"remove {name} (that is what upstream runs with) or give a valid value"
    if reading is not None and not getattr(reading, "refuses", False):
        return f"set {name}={effective} (what upstream runs with) or another valid value"
    return f"give {name} a valid value"


def _changed(env: Mapping[str, str]) -> list[Finding]:
    """Values that differ, once parsed, from the shipped defaults."""
    base = default_environment()
    found = []
    baseline_daemon = parse_settings(base)
    baseline_node = parse_node_settings(base, baseline_daemon.datapath.mtu)
    for name, value in sorted(env.items()):
        if name not in DAEMON_VARIABLES and name not in NODE_VARIABLES:
            continue
        trial = (
            {**base, name: value} if value != "" else {k: v for k, v in base.items() if k != name}
        )
        try:
            daemon = parse_settings(trial)
            node = parse_node_settings(trial, daemon.datapath.mtu)
        except ConfigError:
            continue  # refused: reported by the values check
        daemon = replace(daemon, upstream_only=baseline_daemon.upstream_only)  # "noted" instead
        if daemon != baseline_daemon or node != baseline_node:
            default = base.get(name)
            shipped = (
                f"the shipped default is {default!r}" if default is not None else "unset by default"
            )
            found.append(Finding(Severity.INFO, "changed", name, f"set to {value!r} ({shipped})"))
    for name, code_default in CODE_DEFAULTS.items():
        if name not in env:
            found.append(
                Finding(
                    Severity.INFO,
                    "changed",
                    name,
                    f"unset: upstream then runs with {code_default} (its code default), vpccni "
                    f"with {base.get(name)!r} (the shipped manifest's value)"
                    + (
                        ", and upstream's ipamd refuses to start with both ENABLE_IPv4 and "
                        "ENABLE_IPv6 false"
                        if name == "ENABLE_IPv4"
                        else " - it matters only with prefix delegation"
                    ),
                    fix=f"set {name} explicitly",
                )
            )
    return found
