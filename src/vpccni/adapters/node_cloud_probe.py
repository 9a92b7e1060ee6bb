"""IMDS and EC2 as the node daemon reaches them, for ``vpccni doctor``: read-only.

Run as ``python -m vpccni.adapters.node_cloud_probe`` with the daemon's environment (its
credentials: IRSA, Pod Identity, static keys or the instance profile) and inside its network
namespace, so what it finds is what the daemon gets. Reads one JSON request on stdin
(``imds_endpoint``, ``ec2_endpoint``, ``region``, ``cluster_name``) and prints one JSON answer:

* ``identity``: IMDSv2 (a session token, then the instance's id, type, region, MAC), or
  ``identity_error``;
* ``instance``: DescribeInstances (type, ``MetadataOptions``, the subnets of its ENIs with
  DescribeSubnets' free addresses), or ``instance_error``;
* ``dry_runs``: every EC2 action the daemon calls (``vpccni.core.ec2_actions``) that has
  ``DryRun`` in EC2's API, called with ``DryRun=True`` on this node's own resources and EC2's
  answer code: ``DryRunOperation`` (allowed), ``UnauthorizedOperation`` (denied) or another
  error. ``AssignPrivateIpAddresses`` and ``UnassignPrivateIpAddresses`` have no DryRun, so they
  are never called here (the doctor judges them from the daemon's own calls).

Nothing is created, changed or deleted: the only calls without ``DryRun`` are DescribeInstances
and DescribeSubnets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from vpccni.adapters.ec2_boto3 import Ec2Endpoint, make_ec2_client
from vpccni.adapters.imds_http import ImdsV2
from vpccni.core.aws_types import (
    ENI_OWNER_VALUE,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_ENI_OWNER,
    TAG_INSTANCE_ID,
    CloudError,
)
from vpccni.core.ec2_actions import EC2_ACTIONS

NO_DRY_RUN = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")
"""EC2 actions whose API has no ``DryRun`` parameter (botocore's service model)."""
DRY_RUN_ACTIONS = tuple(action for action in EC2_ACTIONS if action not in NO_DRY_RUN)
PROBE_CREATED_AT = "1970-01-01T00:00:00Z"


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """The whole answer for one request (never raises for a cloud failure)."""
    answer: dict[str, Any] = {}
    imds = ImdsV2(request.get("imds_endpoint") or "http://169.254.169.254/", timeout_seconds=3)
    try:
        identity = imds.identity()
        answer["identity"] = {
            "instance_id": identity.instance_id,
            "instance_type": identity.instance_type,
            "region": identity.region,
            "primary_mac": identity.primary_mac,
        }
    except CloudError as error:
        answer["identity_error"] = str(error)
        return answer
    region = request.get("region") or identity.region
    client = make_ec2_client(
        Ec2Endpoint(region, request.get("ec2_endpoint"), max_attempts=2, timeout_seconds=10)
    )
    try:
        raw = _instance(client, identity.instance_id)
    except (ClientError, BotoCoreError, CloudError) as error:
        answer["instance_error"] = _why(error)
        return answer
    answer["instance"] = _facts(client, raw)
    answer["dry_runs"] = dry_runs(client, raw, request.get("cluster_name") or "")
    return answer


def _instance(client: Any, instance_id: str) -> dict[str, Any]:
    reply = client.describe_instances(InstanceIds=[instance_id])
    found = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
    if not found:
        raise CloudError(f"EC2 DescribeInstances does not know {instance_id}")
    instance: dict[str, Any] = found[0]
    return instance


def _facts(client: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The instance's type, metadata options, and its ENIs' subnets with their free addresses
    (``subnets_error`` instead when DescribeSubnets fails)."""
    facts: dict[str, Any] = {
        "instance_id": raw.get("InstanceId", ""),
        "instance_type": raw.get("InstanceType", ""),
        "subnet_id": raw.get("SubnetId", ""),
        "metadata_options": raw.get("MetadataOptions"),
    }
    interfaces = raw.get("NetworkInterfaces", [])
    subnet_ids = sorted({raw.get("SubnetId", "")} | {e.get("SubnetId", "") for e in interfaces})
    try:
        found = client.describe_subnets(SubnetIds=[s for s in subnet_ids if s]).get("Subnets", [])
    except (ClientError, BotoCoreError) as error:
        facts["subnets_error"] = _why(error)
        return facts
    facts["subnets"] = {
        s["SubnetId"]: [s.get("CidrBlock", ""), int(s.get("AvailableIpAddressCount", 0))]
        for s in found
    }
    return facts


def dry_runs(client: Any, raw: dict[str, Any], cluster_name: str) -> dict[str, Any]:
    """Every dry-runnable action on this node's resources: action -> {code, message}."""
    instance_id = raw["InstanceId"]
    enis = sorted(
        raw.get("NetworkInterfaces", []),
        key=lambda e: e.get("Attachment", {}).get("DeviceIndex", 0),
    )
    target = enis[-1] if enis else {}  # a secondary ENI when there is one: what the daemon manages
    eni_id = target.get("NetworkInterfaceId", "eni-00000000000000000")
    attachment_id = target.get("Attachment", {}).get("AttachmentId", "eni-attach-00000000000000000")
    used = {e.get("Attachment", {}).get("DeviceIndex", 0) for e in enis}
    free_index = min(set(range(1, len(used) + 2)) - used)
    groups = sorted({g["GroupId"] for g in raw.get("SecurityGroups", []) if "GroupId" in g})
    tags = {TAG_INSTANCE_ID: instance_id, TAG_CREATED_AT: PROBE_CREATED_AT}
    if cluster_name:
        tags |= {TAG_CLUSTER_NAME: cluster_name, TAG_ENI_OWNER: ENI_OWNER_VALUE}
    tag_list = [{"Key": key, "Value": value} for key, value in sorted(tags.items())]
    calls: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
        "DescribeInstances": (client.describe_instances, {"InstanceIds": [instance_id]}),
        "DescribeNetworkInterfaces": (
            client.describe_network_interfaces,
            {"Filters": [{"Name": "attachment.instance-id", "Values": [instance_id]}]},
        ),
        "DescribeSubnets": (client.describe_subnets, {"SubnetIds": [raw.get("SubnetId", "")]}),
        "CreateNetworkInterface": (
            client.create_network_interface,
            {
                "SubnetId": raw.get("SubnetId", ""),
                "Groups": groups,
                "Description": f"aws-K8S-{instance_id}",
                "TagSpecifications": [{"ResourceType": "network-interface", "Tags": tag_list}],
            },
        ),
        "AttachNetworkInterface": (
            client.attach_network_interface,
            {"NetworkInterfaceId": eni_id, "InstanceId": instance_id, "DeviceIndex": free_index},
        ),
        "ModifyNetworkInterfaceAttribute": (
            client.modify_network_interface_attribute,
            {
                "NetworkInterfaceId": eni_id,
                "Attachment": {"AttachmentId": attachment_id, "DeleteOnTermination": True},
            },
        ),
        "DetachNetworkInterface": (
            client.detach_network_interface,
            {"AttachmentId": attachment_id},
        ),
        "DeleteNetworkInterface": (client.delete_network_interface, {"NetworkInterfaceId": eni_id}),
        "CreateTags": (
            client.create_tags,
            {"Resources": [eni_id], "Tags": [{"Key": TAG_INSTANCE_ID, "Value": instance_id}]},
        ),
    }
    answers: dict[str, Any] = {}
    for action in DRY_RUN_ACTIONS:
        method, params = calls[action]
        answers[action] = _dry_run(method, params)
    return answers


def _dry_run(method: Callable[..., Any], params: dict[str, Any]) -> dict[str, str]:
    try:
        method(DryRun=True, **params)
    except ClientError as error:
        details = error.response.get("Error", {})
        return {"code": str(details.get("Code", "")), "message": str(details.get("Message", ""))}
    except BotoCoreError as error:
        return {"code": "NoAnswer", "message": str(error)}
    return {"code": "NoError", "message": "EC2 answered the dry run as a real call"}


def _why(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}".strip()
    return str(error)


def main() -> int:
    """Read the request from stdin, print the answer as one JSON line."""
    try:
        request = json.loads(sys.stdin.read() or "{}")
        answer = probe(request if isinstance(request, dict) else {})
    except (CloudError, ClientError, BotoCoreError, ValueError) as error:
        answer = {"identity_error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
