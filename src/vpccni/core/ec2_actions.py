"""The EC2 actions vpccni's daemon calls: one declared list, read by the daemon's permission gate
(``vpccni.cloud.permissions``) and by the IAM policies ``vpccni manifests`` prints
(``vpccni.deploy.iam``), so the policies grant exactly what the daemon calls.
"""

from __future__ import annotations

from collections.abc import Mapping

EC2_ACTIONS: Mapping[str, str] = {
    "DescribeInstances": "start-up: the instance's type, subnet, VPC and security groups; "
    "before each attach: the device indexes in use",
    "DescribeNetworkInterfaces": "reconcile (start-up, then when IMDS differs from the pool), "
    "waiting for an attach or detach, the leaked-ENI sweep",
    "DescribeSubnets": "the subnet's free addresses (start-up, exhaustion, after growth)",
    "CreateNetworkInterface": "grow by an ENI (tagged at creation with the instance, cluster "
    "and creation time)",
    "AttachNetworkInterface": "grow by an ENI: attach it at the lowest free device index",
    "ModifyNetworkInterfaceAttribute": "grow by an ENI: DeleteOnTermination on its attachment",
    "AssignPrivateIpAddresses": "grow by secondary addresses or /28 prefixes",
    "UnassignPrivateIpAddresses": "shrink: give surplus addresses or prefixes back",
    "DetachNetworkInterface": "free a spare ENI",
    "DeleteNetworkInterface": "free a spare ENI; delete leaked ENIs; roll back a failed attach",
    "CreateTags": "tag adopted ENIs (instance id, cluster) and leaked ENIs without a creation time",
}
"""Every EC2 action ``vpccni ipamd`` may call, with what for (IAM names them ``ec2:<action>``).
Upstream's policy also grants DescribeTags, DescribeInstanceTypes and DescribeSecurityGroups;
vpccni never calls them (instance limits come from the shipped table)."""


def iam_name(action: str) -> str:
    """``ec2:<action>``, as an IAM policy names it."""
    return f"ec2:{action}"
