"""The IAM documents vpccni ships: two permission policies and the IRSA trust policy.

Built from :data:`vpccni.core.ec2_actions.EC2_ACTIONS` (the actions the daemon calls) and the
tags the daemon puts on its ENIs (``vpccni.core.aws_types``), so the policies grant exactly what
the daemon calls and nothing else:

* ``default`` (``vpccni-ipv4-policy.json``): every action on every resource, ``CreateTags`` on
  network interfaces only - AWS's ``AmazonEKS_CNI_Policy`` less the actions vpccni never calls;
* ``tag-scoped`` (``vpccni-ipv4-tag-scoped-policy.json``): every mutation scoped to this
  cluster's ENIs and nodes, as AWS's ``AmazonEKSNetworkingPolicy`` does: an ENI may be created
  only carrying the cluster tag (and only vpccni's tag keys), tagged at creation only by that
  call, changed only when it carries the cluster tag, attached to or detached from an instance
  only when the instance carries ``kubernetes.io/cluster/<name>=owned``. It needs
  ``CLUSTER_NAME`` on the DaemonSet;
* ``irsa-trust-policy.json``: lets the ServiceAccount ``<namespace>/vpccni`` assume the role
  through the cluster's OIDC provider.

Each document is JSON text with ``${NAME}`` placeholders; the files in ``deploy/iam/`` are that
text as is (``tools/render_iam_policies.py``), ``vpccni manifests --iam-policy`` /
``--irsa-trust`` print it with the user's values, validated first, in place of the
placeholders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.core.aws_types import (
    ENI_OWNER_VALUE,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_ENI_OWNER,
    TAG_INSTANCE_ID,
)
from vpccni.core.ec2_actions import EC2_ACTIONS, iam_name
from vpccni.errors import InvalidInput

CLUSTER = "${CLUSTER_NAME}"
ACCOUNT = "${ACCOUNT_ID}"
PROVIDER = "${OIDC_PROVIDER}"
NAMESPACE = "${NAMESPACE}"
SERVICE_ACCOUNT = "vpccni"
VERSION = "2012-10-17"
ENI_ARN = "arn:aws:ec2:*:*:network-interface/*"
INSTANCE_ARN = "arn:aws:ec2:*:*:instance/*"
SUBNET_ARN = "arn:aws:ec2:*:*:subnet/*"
GROUP_ARN = "arn:aws:ec2:*:*:security-group/*"
NODE_TAG = f"kubernetes.io/cluster/{CLUSTER}"
"""The tag EKS managed node groups, eksctl and Karpenter put on a cluster's instances."""
ENI_TAG_KEYS = (TAG_INSTANCE_ID, TAG_CREATED_AT, TAG_CLUSTER_NAME, TAG_ENI_OWNER)
"""Every tag key vpccni writes on an ENI (with CLUSTER_NAME set)."""

DESCRIBE = ("DescribeInstances", "DescribeNetworkInterfaces", "DescribeSubnets")
ENI_MUTATIONS = (
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "ModifyNetworkInterfaceAttribute",
    "DeleteNetworkInterface",
)
INSTANCE_MUTATIONS = ("AttachNetworkInterface", "DetachNetworkInterface")

POLICY_FILES = {
    "default": "vpccni-ipv4-policy.json",
    "tag-scoped": "vpccni-ipv4-tag-scoped-policy.json",
}
TRUST_FILE = "irsa-trust-policy.json"
PLACEHOLDERS = {
    "default": (),
    "tag-scoped": (CLUSTER,),
    "trust": (ACCOUNT, PROVIDER, NAMESPACE),
}

_ACCOUNT = re.compile(r"[0-9]{12}")
_CLUSTER = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PROVIDER = re.compile(rf"(?:{_HOST_LABEL}\.)+{_HOST_LABEL}(?:/[A-Za-z0-9._~-]+)*")
EXAMPLE_PROVIDER = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def _actions(names: tuple[str, ...] | list[str]) -> list[str]:
    return [iam_name(name) for name in names]


def default_policy() -> dict[str, Any]:
    """Every action the daemon calls; CreateTags on network interfaces only."""
    others = [name for name in EC2_ACTIONS if name != "CreateTags"]
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "VpcCniEc2",
                "Effect": "Allow",
                "Action": _actions(sorted(others)),
                "Resource": "*",
            },
            {
                "Sid": "VpcCniTagEnis",
                "Effect": "Allow",
                "Action": iam_name("CreateTags"),
                "Resource": ENI_ARN,
            },
        ],
    }


def tag_scoped_policy() -> dict[str, Any]:
    """Describes on everything; every change only on this cluster's ENIs and instances."""
    own_eni = {"StringEquals": {f"aws:ResourceTag/{TAG_CLUSTER_NAME}": CLUSTER}}
    our_keys = {"ForAllValues:StringEquals": {"aws:TagKeys": list(ENI_TAG_KEYS)}}
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": _actions(DESCRIBE),
                "Resource": "*",
            },
            {
                "Sid": "CreateClusterEni",
                "Effect": "Allow",
                "Action": iam_name("CreateNetworkInterface"),
                "Resource": ENI_ARN,
                "Condition": {
                    "StringEquals": {
                        f"aws:RequestTag/{TAG_CLUSTER_NAME}": CLUSTER,
                        f"aws:RequestTag/{TAG_ENI_OWNER}": ENI_OWNER_VALUE,
                    },
                    "StringLike": {f"aws:RequestTag/{TAG_INSTANCE_ID}": "i-*"},
                    **our_keys,
                },
            },
            {
                "Sid": "CreateEniInSubnet",
                "Effect": "Allow",
                "Action": iam_name("CreateNetworkInterface"),
                "Resource": [SUBNET_ARN, GROUP_ARN],
            },
            {
                "Sid": "TagEniAtCreation",
                "Effect": "Allow",
                "Action": iam_name("CreateTags"),
                "Resource": ENI_ARN,
                "Condition": {
                    "StringEquals": {
                        "ec2:CreateAction": "CreateNetworkInterface",
                        f"aws:RequestTag/{TAG_CLUSTER_NAME}": CLUSTER,
                    }
                },
            },
            {
                "Sid": "TagClusterEni",
                "Effect": "Allow",
                "Action": iam_name("CreateTags"),
                "Resource": ENI_ARN,
                "Condition": {**own_eni, **our_keys},
            },
            {
                "Sid": "ChangeClusterEni",
                "Effect": "Allow",
                "Action": _actions(ENI_MUTATIONS),
                "Resource": ENI_ARN,
                "Condition": own_eni,
            },
            {
                "Sid": "AttachToClusterNode",
                "Effect": "Allow",
                "Action": _actions(INSTANCE_MUTATIONS),
                "Resource": INSTANCE_ARN,
                "Condition": {"StringEquals": {f"aws:ResourceTag/{NODE_TAG}": "owned"}},
            },
        ],
    }


def trust_policy() -> dict[str, Any]:
    """IRSA: the cluster's OIDC provider may hand the ServiceAccount's token for this role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "VpcCniServiceAccount",
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{PROVIDER}:sub": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
                        f"{PROVIDER}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def to_json(document: Mapping[str, Any]) -> str:
    """The document as the shipped files hold it: 2-space indented JSON and a newline."""
    return json.dumps(document, indent=2) + "\n"


def templates() -> dict[str, str]:
    """File name (in ``deploy/iam/``) -> text with its placeholders."""
    return {
        POLICY_FILES["default"]: to_json(default_policy()),
        POLICY_FILES["tag-scoped"]: to_json(tag_scoped_policy()),
        TRUST_FILE: to_json(trust_policy()),
    }


@dataclass(frozen=True)
class IamValues:
    """What the user fills in (each already validated by :func:`check_values`)."""

    cluster_name: str | None = None
    account_id: str | None = None
    oidc_provider: str | None = None
    namespace: str = "kube-system"


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``${NAME}`` placeholder replaced; every one must be given."""
    text = template
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    left = sorted(set(re.findall(r"\$\{[A-Z_]+\}", text)))
    if left:
        raise InvalidInput(f"no value for {', '.join(left)}")
    return text


def check_cluster_name(name: str) -> str:
    if not _CLUSTER.fullmatch(name):
        raise InvalidInput(
            f"--cluster-name {name!r} is not an EKS cluster name (1-100 letters, digits, '-' "
            "and '_', starting with a letter or digit), which the tag-scoped policy puts in its "
            "conditions"
        )
    return name


def check_account_id(account: str) -> str:
    if not _ACCOUNT.fullmatch(account):
        raise InvalidInput(
            f"--account-id {account!r} is not an AWS account id; give its 12 digits, e.g. "
            "111122223333 (aws sts get-caller-identity --query Account)"
        )
    return account


def check_oidc_provider(url: str) -> str:
    """The provider as IAM names it (the issuer URL without ``https://``)."""
    host = url.removeprefix("https://").rstrip("/")
    if url.startswith("http://") or not _PROVIDER.fullmatch(host) or len(host) > 255:
        raise InvalidInput(
            f"--oidc-provider {url!r} is not an OIDC issuer URL; give the cluster's issuer, e.g. "
            f"{EXAMPLE_PROVIDER} (aws eks describe-cluster --name NAME --query "
            "cluster.identity.oidc.issuer)"
        )
    return host


def policy_text(kind: str, values: IamValues) -> str:
    """The permission policy ``kind`` (``default`` or ``tag-scoped``) with the values in."""
    template = templates()[POLICY_FILES[kind]]
    if kind == "default":
        return fill(template, {})
    if values.cluster_name is None:
        raise InvalidInput(
            "--iam-policy tag-scoped needs --cluster-name NAME: its conditions name the "
            "cluster, and the daemon must run with CLUSTER_NAME=NAME to tag its ENIs with it"
        )
    return fill(template, {CLUSTER: check_cluster_name(values.cluster_name)})


def trust_text(values: IamValues) -> str:
    """The IRSA trust policy with the account, OIDC provider and namespace in."""
    account, provider = values.account_id, values.oidc_provider
    if account is None or provider is None:
        missing = [
            flag
            for flag, value in (("--account-id", account), ("--oidc-provider", provider))
            if value is None
        ]
        raise InvalidInput(
            f"--irsa-trust needs {' and '.join(missing)}: the trust policy names the account's "
            f"OIDC provider, e.g. --account-id 111122223333 --oidc-provider {EXAMPLE_PROVIDER}"
        )
    return fill(
        templates()[TRUST_FILE],
        {
            ACCOUNT: check_account_id(account),
            PROVIDER: check_oidc_provider(provider),
            NAMESPACE: values.namespace,
        },
    )
