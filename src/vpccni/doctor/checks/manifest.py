"""The DaemonSet (``--manifest FILE``): the policy every vpccni DaemonSet follows
(``vpccni.deploy.policy``: probe timeouts of at least 10 s, NET_ADMIN and NET_RAW only, ...)
and its settings, judged as ``vpccni config check`` judges them (``vpccni.configcheck``: the
daemon's own strict parser, values upstream would replace, unknown variables, combinations that
cannot work on this node's instance type).
"""

from __future__ import annotations

from vpccni.configcheck.check import CheckOptions, check
from vpccni.configcheck.findings import Severity, ordered
from vpccni.configcheck.source import DaemonSetFile
from vpccni.core.limits import InstanceLimits
from vpccni.deploy.policy import daemon_set_problems
from vpccni.doctor.evidence import Missing
from vpccni.doctor.result import Result, failed, passed, skipped, warned

GROUPS = (
    ("manifest.probes", "the probes give a busy daemon time to answer", ("probes",)),
    ("manifest.capabilities", "the daemon holds only NET_ADMIN and NET_RAW", ("capabilities",)),
    (
        "manifest.policy",
        "security, resources and scheduling follow vpccni's policy",
        ("security", "scheduling", "resources", "layout"),
    ),
)
SETTINGS = ("manifest.settings", "the settings work as written (vpccni config check)")


def policy(daemon_set: DaemonSetFile | Missing) -> list[Result]:
    """One result per group of rules."""
    if isinstance(daemon_set, Missing):
        return [skipped(check, title, daemon_set.why) for check, title, _ in GROUPS]
    problems = daemon_set_problems(daemon_set.document)
    results = []
    for name, title, rules in GROUPS:
        broken = [p for p in problems if p.rule in rules]
        source = daemon_set.source
        if broken:
            results.append(
                failed(
                    name,
                    title,
                    f"{source}: " + "; ".join(p.problem for p in broken),
                    "; ".join(dict.fromkeys(p.fix for p in broken)),
                )
            )
        else:
            results.append(passed(name, title, f"{source}: no rule of {', '.join(rules)} broken"))
    return results


def settings(daemon_set: DaemonSetFile | Missing, instance: InstanceLimits | None) -> Result:
    """``config check``'s findings: an error fails, a warning warns, notes pass."""
    if isinstance(daemon_set, Missing):
        return skipped(*SETTINGS, daemon_set.why)
    findings = ordered(check(daemon_set, CheckOptions(instance)))
    serious = [f for f in findings if f.severity >= Severity.WARN]
    notes = len(findings) - len(serious)
    on = f" on {instance.instance_type}" if instance is not None else ""
    if not serious:
        return passed(
            *SETTINGS,
            f"{daemon_set.source}: every variable accepted{on} ({notes} note(s); "
            "`vpccni config check` lists them)",
        )
    evidence = f"{daemon_set.source}{on}: " + "; ".join(
        f"{f.severity.label} {f.subject}: {f.message}" for f in serious
    )
    fix = "; ".join(dict.fromkeys(f.fix for f in serious if f.fix)) or (
        "run `vpccni config check FILE` and change what it names"
    )
    if serious[0].severity == Severity.ERROR:
        return failed(*SETTINGS, evidence, fix)
    return warned(*SETTINGS, evidence, fix)
