"""The EC2 port over botocore: real AWS in production, ``vpccni emulator`` or moto in tests.

Every call goes through ``_call``, which turns botocore's errors into ``vpccni.core.aws_types``
errors whose message names the operation, EC2's code and message, and what happens next.
Retries are botocore's (standard mode by default, adaptive on request): throttling that survives
them surfaces as :class:`Throttled`.

The client is botocore's own (boto3 adds nothing the daemon uses and costs ~3 MiB), and it loads
the pruned EC2 model of ``vpccni/data/botocore`` (the 11 operations the daemon calls, generated
by ``tools/prune_ec2_model.py``) instead of botocore's whole one: ~16 MiB less resident memory.
botocore is imported when a client is made, not with this module: ``vpccni.settings`` (and so
``vpccni config check`` or ``vpccni manifests``) needs only :class:`Ec2Endpoint`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpccni.core.aws_types import (
    CloudError,
    EniAttachment,
    EniDescription,
    InstanceDescription,
    NotFound,
    ec2_error,
)
from vpccni.core.subnets import Subnet

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

PRUNED_MODELS = Path(__file__).resolve().parent.parent / "data" / "botocore"
"""botocore data directory holding ``ec2/<API_VERSION>/service-2.json``, pruned to the daemon's
operations (``tools/prune_ec2_model.py``)."""
API_VERSION = "2016-11-15"


@dataclass(frozen=True)
class Ec2Endpoint:
    """How to reach EC2. ``endpoint_url`` None means AWS (or ``AWS_ENDPOINT_URL_EC2``)."""

    region: str
    endpoint_url: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 3
    timeout_seconds: float = 10.0
    cni_version: str = ""
    """``VPC_CNI_VERSION``: added to the user agent after vpccni's own name, as upstream does."""

    @property
    def user_agent_extra(self) -> str:
        """What follows botocore's own user agent: ``vpccni`` and the CNI version, if any."""
        return f"vpccni amazon-vpc-cni-k8s/{self.cni_version}" if self.cni_version else "vpccni"


def make_ec2_client(endpoint: Ec2Endpoint, **credentials: str) -> Any:
    """A botocore EC2 client over the pruned model; credentials come from the standard chain
    unless given (``aws_access_key_id``, ``aws_secret_access_key``)."""
    import botocore.session
    from botocore.config import Config

    config = Config(
        region_name=endpoint.region,
        retries={"mode": endpoint.retry_mode, "max_attempts": endpoint.max_attempts},
        connect_timeout=endpoint.timeout_seconds,
        read_timeout=endpoint.timeout_seconds,
        user_agent_extra=endpoint.user_agent_extra,
    )
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(PRUNED_MODELS))
    return session.create_client(
        "ec2",
        api_version=API_VERSION,
        endpoint_url=endpoint.endpoint_url,
        config=config,
        **credentials,
    )


def emulator_ec2(endpoint_url: str, region: str = "us-west-2") -> Boto3Ec2:
    """The EC2 port on a ``vpccni emulator`` (which ignores credentials: dummy ones are used)."""
    client = make_ec2_client(
        Ec2Endpoint(region, endpoint_url),
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )
    return Boto3Ec2(client)


class Boto3Ec2:
    """Implements ``vpccni.ports.Ec2`` with a botocore (or boto3) EC2 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def describe_instance(self, instance_id: str) -> InstanceDescription:
        reply = self._call(
            "DescribeInstances", self._client.describe_instances, InstanceIds=[instance_id]
        )
        instances = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
        if not instances:
            raise NotFound(f"EC2 DescribeInstances: instance {instance_id} not found")
        raw = instances[0]
        return InstanceDescription(
            instance_id=raw["InstanceId"],
            instance_type=raw.get("InstanceType", ""),
            subnet_id=raw.get("SubnetId", ""),
            vpc_id=raw.get("VpcId", ""),
            private_ip=IPv4Address(raw["PrivateIpAddress"]),
            security_groups=tuple(sorted(g["GroupId"] for g in raw.get("SecurityGroups", []))),
            enis=tuple(
                _attachment(eni["Attachment"])
                for eni in raw.get("NetworkInterfaces", [])
                if "Attachment" in eni
            ),
        )

    def describe_enis(
        self,
        eni_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[EniDescription]:
        params: dict[str, Any] = {}
        if eni_ids:
            params["NetworkInterfaceIds"] = list(eni_ids)
        if filters:
            params["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        paginator = self._client.get_paginator("describe_network_interfaces")

        def every_page(**kwargs: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for page in paginator.paginate(**kwargs):
                found.extend(page.get("NetworkInterfaces", []))
            return found

        return [_eni(raw) for raw in self._call("DescribeNetworkInterfaces", every_page, **params)]

    def create_eni(
        self,
        subnet_id: str,
        security_groups: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        *,
        secondary_ips: int = 0,
        prefixes: int = 0,
    ) -> EniDescription:
        params: dict[str, Any] = {
            "SubnetId": subnet_id,
            "Description": description,
            "TagSpecifications": [
                {
                    "ResourceType": "network-interface",
                    "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                }
            ],
        }
        if security_groups:
            params["Groups"] = list(security_groups)
        if secondary_ips > 0:
            params["SecondaryPrivateIpAddressCount"] = secondary_ips
        if prefixes > 0:
            params["Ipv4PrefixCount"] = prefixes
        reply = self._call(
            "CreateNetworkInterface", self._client.create_network_interface, **params
        )
        return _eni(reply["NetworkInterface"])

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        params: dict[str, Any] = {
            "NetworkInterfaceId": eni_id,
            "InstanceId": instance_id,
            "DeviceIndex": device_index,
        }
        if network_card:
            params["NetworkCardIndex"] = network_card
        reply = self._call(
            "AttachNetworkInterface", self._client.attach_network_interface, **params
        )
        return str(reply["AttachmentId"])

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        self._call(
            "ModifyNetworkInterfaceAttribute",
            self._client.modify_network_interface_attribute,
            NetworkInterfaceId=eni_id,
            Attachment={"AttachmentId": attachment_id, "DeleteOnTermination": True},
        )

    def detach_eni(self, attachment_id: str, force: bool = False) -> None:
        self._call(
            "DetachNetworkInterface",
            self._client.detach_network_interface,
            AttachmentId=attachment_id,
            Force=force,
        )

    def delete_eni(self, eni_id: str) -> None:
        self._call(
            "DeleteNetworkInterface",
            self._client.delete_network_interface,
            NetworkInterfaceId=eni_id,
        )

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        reply = self._call(
            "AssignPrivateIpAddresses",
            self._client.assign_private_ip_addresses,
            NetworkInterfaceId=eni_id,
            SecondaryPrivateIpAddressCount=count,
        )
        return [
            IPv4Address(a["PrivateIpAddress"]) for a in reply.get("AssignedPrivateIpAddresses", [])
        ]

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]:
        reply = self._call(
            "AssignPrivateIpAddresses",
            self._client.assign_private_ip_addresses,
            NetworkInterfaceId=eni_id,
            Ipv4PrefixCount=count,
        )
        return [IPv4Network(p["Ipv4Prefix"]) for p in reply.get("AssignedIpv4Prefixes", [])]

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        if addresses:
            self._call(
                "UnassignPrivateIpAddresses",
                self._client.unassign_private_ip_addresses,
                NetworkInterfaceId=eni_id,
                PrivateIpAddresses=[str(a) for a in addresses],
            )

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None:
        if prefixes:
            self._call(
                "UnassignPrivateIpAddresses",
                self._client.unassign_private_ip_addresses,
                NetworkInterfaceId=eni_id,
                Ipv4Prefixes=[str(p) for p in prefixes],
            )

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._call(
                "CreateTags",
                self._client.create_tags,
                Resources=[resource_id],
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            )

    def subnet_free_addresses(self, subnet_id: str) -> int:
        reply = self._call("DescribeSubnets", self._client.describe_subnets, SubnetIds=[subnet_id])
        subnets = reply.get("Subnets", [])
        if not subnets:
            raise NotFound(f"EC2 DescribeSubnets: subnet {subnet_id} not found")
        return int(subnets[0].get("AvailableIpAddressCount", 0))

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        params: dict[str, Any] = {}
        if subnet_ids:
            params["SubnetIds"] = list(subnet_ids)
        if filters:
            params["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        paginator = self._client.get_paginator("describe_subnets")

        def every_page(**kwargs: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for page in paginator.paginate(**kwargs):
                found.extend(page.get("Subnets", []))
            return found

        return [_subnet(raw) for raw in self._call("DescribeSubnets", every_page, **params)]

    @staticmethod
    def _call(operation: str, method: Callable[..., Any], **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(**params)
        except ClientError as error:
            raise translate(operation, error) from None
        except BotoCoreError as error:
            raise CloudError(
                f"EC2 {operation} failed before EC2 answered: {error}; check the endpoint "
                "(AWS_ENDPOINT_URL_EC2), network and credentials",
                operation=operation,
            ) from None


def translate(operation: str, error: ClientError) -> CloudError:
    """A botocore ClientError as a vpccni cloud error with a message a person can act on."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    return ec2_error(operation, code, str(details.get("Message", "")).strip())


def _subnet(raw: Mapping[str, Any]) -> Subnet:
    return Subnet(
        subnet_id=str(raw.get("SubnetId", "")),
        vpc_id=str(raw.get("VpcId", "")),
        availability_zone=str(raw.get("AvailabilityZone", "")),
        cidr=str(raw.get("CidrBlock", "")),
        free=int(raw.get("AvailableIpAddressCount", 0)),
        tags={str(t.get("Key", "")): str(t.get("Value", "")) for t in raw.get("Tags", [])},
    )


def _attachment(raw: Mapping[str, Any]) -> EniAttachment:
    return EniAttachment(
        attachment_id=str(raw.get("AttachmentId", "")),
        instance_id=str(raw.get("InstanceId", "")),
        device_index=int(raw.get("DeviceIndex", 0)),
        network_card=int(raw.get("NetworkCardIndex", 0)),
        status=str(raw.get("Status", "")),
        delete_on_termination=bool(raw.get("DeleteOnTermination", False)),
    )


def _eni(raw: Mapping[str, Any]) -> EniDescription:
    addresses = raw.get("PrivateIpAddresses", [])
    primary = raw.get("PrivateIpAddress") or next(
        (a["PrivateIpAddress"] for a in addresses if a.get("Primary")), "0.0.0.0"
    )
    return EniDescription(
        eni_id=raw["NetworkInterfaceId"],
        subnet_id=raw.get("SubnetId", ""),
        vpc_id=raw.get("VpcId", ""),
        status=raw.get("Status", ""),
        primary_ip=IPv4Address(primary),
        secondary_ips=tuple(
            IPv4Address(a["PrivateIpAddress"]) for a in addresses if not a.get("Primary")
        ),
        prefixes=tuple(IPv4Network(p["Ipv4Prefix"]) for p in raw.get("Ipv4Prefixes", [])),
        mac=raw.get("MacAddress", ""),
        description=raw.get("Description", ""),
        interface_type=raw.get("InterfaceType", "interface"),
        security_groups=tuple(sorted(g["GroupId"] for g in raw.get("Groups", []))),
        tags={t["Key"]: t["Value"] for t in raw.get("TagSet", [])},
        attachment=_attachment(raw["Attachment"]) if raw.get("Attachment") else None,
    )
