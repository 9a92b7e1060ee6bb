"""IMDS: the daemon reaches IMDSv2; pods do not reach IMDS at all.

The guidance: block pods from the instance metadata service, so that a pod cannot read the node
role's credentials. The proof is a pod namespace that asks and gets no answer (``--pod-netns``);
the instance's ``MetadataOptions`` from DescribeInstances are reported with it (hop limit 1 and
IMDSv2 required drop the answer to a pod, one hop further than the host).
"""

from __future__ import annotations

from typing import Any

from vpccni.doctor.evidence import CloudView, InstanceFacts, Missing, PodImds
from vpccni.doctor.result import Result, failed, passed, skipped, warned

DAEMON = ("imds.daemon", "the daemon reaches IMDSv2")
PODS = ("imds.pods", "pods cannot reach IMDS")
BLOCK = (
    "require IMDSv2 with a hop limit of 1: aws ec2 modify-instance-metadata-options "
    "--instance-id {instance} --http-tokens required --http-put-response-hop-limit 1 (or "
    "block 169.254.169.254 from pods with a NetworkPolicy)"
)


def daemon_imds(cloud: CloudView) -> Result:
    """IMDSv2 answers the daemon (token, then the instance's identity)."""
    where = "" if cloud.as_daemon else " (asked from this process: the daemon is not running)"
    if isinstance(cloud.identity, Missing):
        return failed(
            *DAEMON,
            f"{cloud.imds_endpoint}{where}: {cloud.identity.why}",
            "on EC2 enable the instance's metadata endpoint (HttpEndpoint enabled); elsewhere "
            "check AWS_EC2_METADATA_SERVICE_ENDPOINT in the daemon's environment",
        )
    identity = cloud.identity
    return passed(
        *DAEMON,
        f"IMDSv2 at {cloud.imds_endpoint}{where}: {identity.get('instance_id')} "
        f"({identity.get('instance_type')}, {identity.get('region')})",
    )


def _options(instance: InstanceFacts | Missing) -> tuple[str, dict[str, Any] | None]:
    if isinstance(instance, Missing):
        return f"MetadataOptions unknown ({instance.why})", None
    options = instance.metadata_options
    if not options:
        return "EC2 reported no MetadataOptions", None
    return (
        f"MetadataOptions: HttpTokens {options.get('HttpTokens')}, hop limit "
        f"{options.get('HttpPutResponseHopLimit')}",
        options,
    )


def pod_imds(found: PodImds | Missing, instance: InstanceFacts | Missing) -> Result:
    """A pod namespace gets no answer from IMDS; else the hop limit decides what can be said."""
    shown, options = _options(instance)
    instance_id = instance.instance_id if isinstance(instance, InstanceFacts) else "INSTANCE_ID"
    fix = BLOCK.format(instance=instance_id)
    if isinstance(found, PodImds):
        asked = (("IMDSv2 token PUT", found.token_answer), ("IMDSv1 GET", found.v1_answer))
        answers = [f"{what} got {answer!r}" for what, answer in asked if answer]
        if answers:
            return failed(
                *PODS,
                f"from pod namespace {found.netns}, {found.address}: {'; '.join(answers)}: a pod "
                f"can read the node role's credentials; {shown}",
                fix,
            )
        return passed(
            *PODS,
            f"from pod namespace {found.netns}, {found.address} gave no answer "
            f"({found.unreachable_why or 'connection closed'}); {shown}",
        )
    if options is None:
        return skipped(*PODS, f"no pod namespace to test from ({found.why}); {shown}")
    hops = options.get("HttpPutResponseHopLimit")
    required = options.get("HttpTokens") == "required"
    if isinstance(hops, int) and hops <= 1 and required:
        return passed(*PODS, f"{shown}: the answer to a pod (one hop more) is dropped")
    return warned(
        *PODS,
        f"{shown}: pods may get IMDS answers (not tested: {found.why})",
        fix,
    )
