"""Credentials and permissions: which identity the daemon runs as, and each EC2 action it
calls, checked with ``DryRun=True`` as the daemon (``vpccni.core.ec2_actions``).

``AssignPrivateIpAddresses`` and ``UnassignPrivateIpAddresses`` have no DryRun in EC2's API, so
they are judged from the daemon's own calls: a denial shows in ``/v1/explain``'s
``missing_permissions`` (until the action succeeds again) and in the metric
``vpccni_ec2_unauthorized_total{action}``; ``awscni_ec2api_req_count{fn}`` says how often it
called them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vpccni.core.ec2_actions import EC2_ACTIONS, iam_name
from vpccni.doctor.evidence import CloudView, DaemonProcess, Metrics, Missing
from vpccni.doctor.result import Result, failed, passed, skipped, warned

CREDENTIALS = ("iam.credentials", "the daemon runs with its own IAM role")
NO_DRY_RUN = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")
OWN_ROLE = (
    "give vpccni its own role (IRSA): `vpccni manifests --irsa-trust ...` and "
    "`--iam-policy default`, then render with --role-arn ARN (README, Deploy step 3)"
)
GRANT = (
    "grant {permission} to the role the daemon runs as (`vpccni manifests --iam-policy default` "
    "prints a policy with every action it needs; deploy/iam/)"
)


def _aws(endpoint: str | None) -> bool:
    return endpoint is None or endpoint.endswith(".amazonaws.com") or "amazonaws.com/" in endpoint


def credentials(daemon: DaemonProcess | Missing, ec2_endpoint: str | None) -> Result:
    """IRSA or Pod Identity: pass; static keys against AWS or the node role: warn."""
    if isinstance(daemon, Missing):
        return skipped(*CREDENTIALS, f"cannot read the daemon's environment: {daemon.why}")
    env = daemon.environ
    if env.get("AWS_ACCESS_KEY_ID"):
        if not _aws(ec2_endpoint):
            return passed(
                *CREDENTIALS,
                f"static keys for the EC2 endpoint {ec2_endpoint}, which is not AWS (a local "
                "emulator): IAM roles do not apply; its policy is checked by the iam.* checks",
            )
        return warned(
            *CREDENTIALS,
            "AWS_ACCESS_KEY_ID is set in the daemon's environment: long-lived keys instead of a "
            "role",
            OWN_ROLE,
        )
    if env.get("AWS_ROLE_ARN") and env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return passed(*CREDENTIALS, f"IRSA: web identity for {env['AWS_ROLE_ARN']}")
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or env.get(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
    ):
        return passed(*CREDENTIALS, "EKS Pod Identity (container credentials endpoint)")
    return warned(
        *CREDENTIALS,
        "no credentials in the daemon's environment: it uses the instance profile, the node "
        "role, which every process on the node that reaches IMDS can use too",
        OWN_ROLE,
    )


def dry_runs(cloud: CloudView) -> list[Result]:
    """One result per dry-runnable action: DryRunOperation passes, UnauthorizedOperation fails."""
    who = "the daemon's credentials" if cloud.as_daemon else "this process's credentials"
    if isinstance(cloud.dry_runs, Missing):
        return [
            warned(
                "iam.dry-run",
                "EC2 actions checked with DryRun",
                f"not checked against {cloud.ec2_endpoint}: {cloud.dry_runs.why}",
                "check the daemon's EC2 endpoint, region and credentials (its log names the "
                "failure)",
            )
        ]
    results = []
    for action in EC2_ACTIONS:
        if action in NO_DRY_RUN:
            continue
        check, title = f"iam.{action}", f"{iam_name(action)} is allowed"
        found = cloud.dry_runs.get(action)
        if found is None:
            results.append(skipped(check, title, "not tried"))
        elif found.allowed:
            results.append(
                passed(check, title, f"DryRun with {who}: DryRunOperation (would succeed)")
            )
        elif found.denied:
            message = found.message.split(" Encoded authorization failure message")[0]
            results.append(
                failed(
                    check,
                    title,
                    f"DryRun with {who}: {found.code}: {message} (needed for: "
                    f"{EC2_ACTIONS[action]})",
                    GRANT.format(permission=iam_name(action)),
                )
            )
        else:
            results.append(
                warned(
                    check,
                    title,
                    f"DryRun with {who} answered {found.code}: {found.message}",
                    "not a permission answer: check the daemon's EC2 endpoint and region",
                )
            )
    return results


def without_dry_run(explain: dict[str, Any] | Missing, metrics: Metrics | Missing) -> list[Result]:
    """Assign/Unassign: from the daemon's denials and call counts."""
    denials: Mapping[str, dict[str, Any]] = {}
    if isinstance(explain, dict):
        denials = {
            str(d.get("call") or d.get("action", "")).removeprefix("ec2:"): d
            for d in explain.get("missing_permissions") or []
        }
    results = []
    for action in NO_DRY_RUN:
        check, title = f"iam.{action}", f"{iam_name(action)} is allowed"
        if isinstance(explain, Missing) and isinstance(metrics, Missing):
            results.append(skipped(check, title, f"EC2 has no DryRun for it and {explain.why}"))
            continue
        denial = denials.get(action)
        if denial is not None:
            results.append(
                failed(
                    check,
                    title,
                    f"EC2 denied the daemon's {action} {denial.get('denied_calls')} time(s) "
                    f"(/v1/explain missing_permissions): {denial.get('message', '')}".split(
                        " Encoded authorization failure message"
                    )[0],
                    GRANT.format(permission=iam_name(action)),
                )
            )
            continue
        calls = metrics.calls.get(action, 0) if isinstance(metrics, Metrics) else None
        denied = metrics.unauthorized.get(action, 0) if isinstance(metrics, Metrics) else 0
        basis = (
            "EC2 has no DryRun for it: judged from the daemon's own calls "
            "(/v1/explain missing_permissions, vpccni_ec2_unauthorized_total)"
        )
        if calls is None:
            seen = "calls unknown (no /metrics)"
        elif calls:
            seen = f"{calls:g} call(s) since the daemon started"
        else:
            seen = "not called since the daemon started (a denial would show when it is)"
        if denied:
            seen += f", {denied:g} denied earlier but allowed since"
        results.append(passed(check, title, f"no denial on record; {seen}; {basis}"))
    return results
