"""Resources rendered as EC2's response structures, and their Describe* filter fields.

Owns the ``*_view`` functions (a record -> the dict boto3 would return for it, member names as in
botocore's EC2 model, times as aware datetimes) and the ``*_fields`` functions (a record -> the
values each EC2 filter name sees). One ENI view serves both ``NetworkInterface`` and the
instance's ``InstanceNetworkInterface`` (the wire encoder keeps the members a shape has).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vpccni.core.limits import InstanceLimits
from vpccni.emulator.records import (
    ACCOUNT_ID,
    CidrAssociation,
    Eni,
    Instance,
    SecurityGroup,
    Subnet,
    Tags,
    Vpc,
)
from vpccni.emulator.store import Store

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


def timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def tag_list(tags: Tags) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags]


def dns_name(address: str, region: str) -> str:
    return f"ip-{address.replace('.', '-')}.{region}.compute.internal"


def group_list(store: Store, group_ids: tuple[str, ...]) -> list[dict[str, str]]:
    return [
        {"GroupId": gid, "GroupName": store.groups[gid].name if gid in store.groups else gid}
        for gid in group_ids
    ]


def eni_view(store: Store, eni: Eni) -> dict[str, Any]:
    region = store.region
    view: dict[str, Any] = {
        "NetworkInterfaceId": eni.eni_id,
        "SubnetId": eni.subnet_id,
        "VpcId": eni.vpc_id,
        "AvailabilityZone": eni.availability_zone,
        "Description": eni.description,
        "Groups": group_list(store, eni.group_ids),
        "InterfaceType": eni.interface_type,
        "MacAddress": eni.mac,
        "OwnerId": ACCOUNT_ID,
        "PrivateDnsName": dns_name(eni.primary_ip, region),
        "PrivateIpAddress": eni.primary_ip,
        "PrivateIpAddresses": [
            {"Primary": index == 0, "PrivateIpAddress": ip, "PrivateDnsName": dns_name(ip, region)}
            for index, ip in enumerate(eni.private_ips)
        ],
        "Ipv4Prefixes": [{"Ipv4Prefix": prefix} for prefix in eni.prefixes],
        "Ipv6Addresses": [],
        "RequesterManaged": eni.requester_managed,
        "SourceDestCheck": eni.source_dest_check,
        "Status": eni.status,
        "TagSet": tag_list(eni.tags),
    }
    if eni.attachment is not None:
        view["Attachment"] = {
            "AttachmentId": eni.attachment.attachment_id,
            "AttachTime": timestamp(eni.attachment.attach_time),
            "DeleteOnTermination": eni.attachment.delete_on_termination,
            "DeviceIndex": eni.attachment.device_index,
            "NetworkCardIndex": eni.attachment.network_card_index,
            "InstanceId": eni.attachment.instance_id,
            "InstanceOwnerId": ACCOUNT_ID,
            "Status": eni.attachment.status,
        }
    return view


def eni_fields(eni: Eni) -> dict[str, list[str]]:
    attachment = eni.attachment
    fields = {
        "network-interface-id": [eni.eni_id],
        "subnet-id": [eni.subnet_id],
        "vpc-id": [eni.vpc_id],
        "availability-zone": [eni.availability_zone],
        "status": [eni.status],
        "description": [eni.description],
        "group-id": list(eni.group_ids),
        "mac-address": [eni.mac],
        "owner-id": [ACCOUNT_ID],
        "interface-type": [eni.interface_type],
        "private-ip-address": list(eni.private_ips),
        "addresses.private-ip-address": list(eni.private_ips),
        "ipv4-prefix": list(eni.prefixes),
        "requester-managed": [str(eni.requester_managed).lower()],
        "source-dest-check": [str(eni.source_dest_check).lower()],
    }
    attachment_fields = {
        "attachment.instance-id": attachment.instance_id if attachment else None,
        "attachment.attachment-id": attachment.attachment_id if attachment else None,
        "attachment.status": attachment.status if attachment else None,
        "attachment.device-index": str(attachment.device_index) if attachment else None,
        "attachment.network-card-index": str(attachment.network_card_index) if attachment else None,
        "attachment.delete-on-termination": (
            str(attachment.delete_on_termination).lower() if attachment else None
        ),
        "attachment.instance-owner-id": ACCOUNT_ID if attachment else None,
    }
    fields.update({k: [v] if v is not None else [] for k, v in attachment_fields.items()})
    return fields


def instance_view(store: Store, instance: Instance, limits: InstanceLimits) -> dict[str, Any]:
    view: dict[str, Any] = {
        "InstanceId": instance.instance_id,
        "ImageId": instance.image_id,
        "InstanceType": instance.instance_type,
        "State": {"Code": STATE_CODES[instance.state], "Name": instance.state},
        "LaunchTime": timestamp(instance.launch_time),
        "Placement": {"AvailabilityZone": instance.availability_zone, "Tenancy": "default"},
        "Architecture": "x86_64",
        "VirtualizationType": "hvm",
        "RootDeviceType": "ebs",
        "AmiLaunchIndex": 0,
        "SecurityGroups": group_list(store, instance.group_ids),
        "Tags": tag_list(instance.tags),
        "NetworkInterfaces": [],
    }
    if limits.hypervisor:
        view["Hypervisor"] = limits.hypervisor
    enis = store.enis_of(instance.instance_id)
    if instance.running:
        view["SubnetId"] = instance.subnet_id
        view["VpcId"] = instance.vpc_id
        view["NetworkInterfaces"] = [eni_view(store, eni) for eni in enis]
        primary = store.enis.get(instance.primary_eni_id)
        if primary is not None:
            view["PrivateIpAddress"] = primary.primary_ip
            view["PrivateDnsName"] = dns_name(primary.primary_ip, store.region)
            view["SourceDestCheck"] = primary.source_dest_check
    return view


def instance_fields(store: Store, instance: Instance) -> dict[str, list[str]]:
    enis = store.enis_of(instance.instance_id)
    return {
        "instance-id": [instance.instance_id],
        "instance-type": [instance.instance_type],
        "instance-state-name": [instance.state],
        "instance-state-code": [str(STATE_CODES[instance.state])],
        "image-id": [instance.image_id],
        "reservation-id": [instance.reservation_id],
        "subnet-id": [instance.subnet_id],
        "vpc-id": [instance.vpc_id],
        "availability-zone": [instance.availability_zone],
        "private-ip-address": [eni.primary_ip for eni in enis[:1]],
        "network-interface.network-interface-id": [eni.eni_id for eni in enis],
        "network-interface.addresses.private-ip-address": [
            ip for eni in enis for ip in eni.private_ips
        ],
        "instance.group-id": list(instance.group_ids),
    }


def subnet_view(store: Store, subnet: Subnet, at: float = float("inf")) -> dict[str, Any]:
    """The subnet, its AvailableIpAddressCount as it was at ``at`` (when counts lag)."""
    return {
        "SubnetId": subnet.subnet_id,
        "VpcId": subnet.vpc_id,
        "CidrBlock": subnet.cidr,
        "AvailabilityZone": subnet.availability_zone,
        "AvailableIpAddressCount": store.available_at(subnet.subnet_id, at),
        "State": "available",
        "DefaultForAz": False,
        "MapPublicIpOnLaunch": False,
        "AssignIpv6AddressOnCreation": False,
        "Ipv6CidrBlockAssociationSet": [],
        "OwnerId": ACCOUNT_ID,
        "SubnetArn": f"arn:aws:ec2:{store.region}:{ACCOUNT_ID}:subnet/{subnet.subnet_id}",
        "Tags": tag_list(subnet.tags),
    }


def subnet_fields(store: Store, subnet: Subnet, at: float = float("inf")) -> dict[str, list[str]]:
    return {
        "subnet-id": [subnet.subnet_id],
        "vpc-id": [subnet.vpc_id],
        "cidr-block": [subnet.cidr],
        "cidr": [subnet.cidr],
        "cidrBlock": [subnet.cidr],
        "availability-zone": [subnet.availability_zone],
        "availabilityZone": [subnet.availability_zone],
        "available-ip-address-count": [str(store.available_at(subnet.subnet_id, at))],
        "state": ["available"],
        "default-for-az": ["false"],
        "owner-id": [ACCOUNT_ID],
    }


def vpc_view(vpc: Vpc) -> dict[str, Any]:
    return {
        "VpcId": vpc.vpc_id,
        "CidrBlock": vpc.cidr,
        "State": "available",
        "IsDefault": False,
        "OwnerId": ACCOUNT_ID,
        "InstanceTenancy": "default",
        "DhcpOptionsId": "dopt-00000000000000001",
        "CidrBlockAssociationSet": [
            cidr_association_view(association) for association in vpc.associations
        ],
        "Tags": tag_list(vpc.tags),
    }


def cidr_association_view(
    association: CidrAssociation, state: str = "associated"
) -> dict[str, Any]:
    return {
        "AssociationId": association.association_id,
        "CidrBlock": association.cidr,
        "CidrBlockState": {"State": state},
    }


def vpc_fields(vpc: Vpc) -> dict[str, list[str]]:
    return {
        "vpc-id": [vpc.vpc_id],
        "cidr": [vpc.cidr],
        "cidr-block-association.cidr-block": list(vpc.cidr_blocks),
        "cidr-block-association.association-id": [a.association_id for a in vpc.associations],
        "cidr-block-association.state": ["associated" for _ in vpc.associations],
        "state": ["available"],
        "is-default": ["false"],
        "owner-id": [ACCOUNT_ID],
    }


def group_view(group: SecurityGroup) -> dict[str, Any]:
    return {
        "GroupId": group.group_id,
        "GroupName": group.name,
        "Description": group.description,
        "VpcId": group.vpc_id,
        "OwnerId": ACCOUNT_ID,
        "IpPermissions": [],
        "IpPermissionsEgress": [],
        "Tags": tag_list(group.tags),
    }


def group_fields(group: SecurityGroup) -> dict[str, list[str]]:
    return {
        "group-id": [group.group_id],
        "group-name": [group.name],
        "vpc-id": [group.vpc_id],
        "description": [group.description],
        "owner-id": [ACCOUNT_ID],
    }


def instance_type_view(limits: InstanceLimits) -> dict[str, Any]:
    view: dict[str, Any] = {
        "InstanceType": limits.instance_type,
        "CurrentGeneration": True,
        "BareMetal": limits.bare_metal,
        "SupportedUsageClasses": ["on-demand"],
        "NetworkInfo": {
            "MaximumNetworkInterfaces": limits.enis_all_cards,
            "MaximumNetworkCards": len(limits.network_cards),
            "DefaultNetworkCardIndex": limits.default_network_card_index,
            "NetworkCards": [
                {"NetworkCardIndex": card.index, "MaximumNetworkInterfaces": card.max_interfaces}
                for card in limits.network_cards
            ],
            "Ipv4AddressesPerInterface": limits.ipv4_per_eni,
            "Ipv6AddressesPerInterface": limits.ipv4_per_eni,
            "Ipv6Supported": True,
        },
    }
    if limits.hypervisor:
        view["Hypervisor"] = limits.hypervisor
    if limits.vcpus is not None:
        view["VCpuInfo"] = {"DefaultVCpus": limits.vcpus}
    return view


def instance_type_fields(limits: InstanceLimits) -> dict[str, list[str]]:
    return {
        "instance-type": [limits.instance_type],
        "hypervisor": [limits.hypervisor] if limits.hypervisor else [],
        "bare-metal": [str(limits.bare_metal).lower()],
        "network-info.maximum-network-interfaces": [str(limits.enis_all_cards)],
        "network-info.ipv4-addresses-per-interface": [str(limits.ipv4_per_eni)],
        "vcpu-info.default-vcpus": [str(limits.vcpus)] if limits.vcpus is not None else [],
    }
