"""The EC2 actions on network interfaces, as boto3 calls them and as boto3 expects answers.

Owns :data:`HANDLERS` for DescribeNetworkInterfaces (filters, ids, pages), Create / Attach /
Detach / Delete / ModifyNetworkInterfaceAttribute / DescribeNetworkInterfaceAttribute, and
Assign / UnassignPrivateIpAddresses (addresses and /28 prefixes). The rules are the model's.
"""

from __future__ import annotations

from vpccni.emulator.actions import (
    Handler,
    Params,
    Result,
    check_ids_with_pages,
    registrar,
    required,
    tags_for,
)
from vpccni.emulator.errors import invalid_parameter
from vpccni.emulator.filters import paginate, select
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.views import eni_fields, eni_view

HANDLERS: dict[str, Handler] = {}
action = registrar(HANDLERS)

ENI_FILTERS = (
    "network-interface-id",
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "status",
    "description",
    "group-id",
    "mac-address",
    "owner-id",
    "interface-type",
    "private-ip-address",
    "addresses.private-ip-address",
    "ipv4-prefix",
    "requester-managed",
    "source-dest-check",
    "attachment.instance-id",
    "attachment.attachment-id",
    "attachment.status",
    "attachment.device-index",
    "attachment.network-card-index",
    "attachment.delete-on-termination",
    "attachment.instance-owner-id",
)


@action("DescribeNetworkInterfaces")
def describe_network_interfaces(model: Ec2Model, p: Params, now: float) -> Result:
    store = model.store
    check_ids_with_pages(p, "NetworkInterfaceIds")
    ids = p.get("NetworkInterfaceIds") or []
    enis = [store.eni(eni_id) for eni_id in ids] if ids else list(store.enis.values())
    chosen = select(enis, p.get("Filters", []), eni_fields, lambda e: e.tags, ENI_FILTERS)
    page, token = paginate(chosen, lambda e: e.eni_id, p.get("MaxResults"), p.get("NextToken"))
    return {"NetworkInterfaces": [eni_view(store, e) for e in page], "NextToken": token}


def _address_request(p: Params) -> AddressRequest:
    return AddressRequest(
        addresses=tuple(p.get("PrivateIpAddresses") or ()),
        address_count=int(p.get("SecondaryPrivateIpAddressCount") or 0),
        prefixes=tuple(p.get("Ipv4Prefixes") or ()),
        prefix_count=int(p.get("Ipv4PrefixCount") or 0),
    )


@action("CreateNetworkInterface")
def create_network_interface(model: Ec2Model, p: Params, now: float) -> Result:
    specs = p.get("PrivateIpAddresses") or []
    primary = p.get("PrivateIpAddress")
    marked = [
        s["PrivateIpAddress"] for s in specs if s.get("Primary") and s.get("PrivateIpAddress")
    ]
    if primary and marked and marked[0] != primary:
        raise invalid_parameter("Only one primary private IP address can be given.")
    primary = primary or (marked[0] if marked else None)
    others = tuple(
        s["PrivateIpAddress"]
        for s in specs
        if s.get("PrivateIpAddress") and s["PrivateIpAddress"] != primary
    )
    request = AddressRequest(
        addresses=others,
        address_count=int(p.get("SecondaryPrivateIpAddressCount") or 0),
        prefixes=tuple(spec["Ipv4Prefix"] for spec in p.get("Ipv4Prefixes") or ()),
        prefix_count=int(p.get("Ipv4PrefixCount") or 0),
    )
    eni = model.create_eni(
        now,
        required(p, "SubnetId"),
        request,
        primary_ip=primary,
        description=p.get("Description") or "",
        group_ids=tuple(p.get("Groups") or ()),
        tags=tags_for(p, "network-interface"),
    )
    # EC2 answers CreateNetworkInterface with the new ENI still "pending" (its own example in
    # the API reference); how long until Describe shows "available" is undocumented: at once here.
    return {"NetworkInterface": {**eni_view(model.store, eni), "Status": "pending"}}


@action("AttachNetworkInterface")
def attach_network_interface(model: Ec2Model, p: Params, now: float) -> Result:
    attachment = model.attach_eni(
        now,
        required(p, "NetworkInterfaceId"),
        required(p, "InstanceId"),
        int(required(p, "DeviceIndex")),
        network_card_index=int(p.get("NetworkCardIndex") or 0),
    )
    return {
        "AttachmentId": attachment.attachment_id,
        "NetworkCardIndex": attachment.network_card_index,
    }


@action("DetachNetworkInterface")
def detach_network_interface(model: Ec2Model, p: Params, now: float) -> Result:
    model.detach_eni(now, required(p, "AttachmentId"), bool(p.get("Force")))
    return {}


@action("DeleteNetworkInterface")
def delete_network_interface(model: Ec2Model, p: Params, now: float) -> Result:
    model.delete_eni(now, required(p, "NetworkInterfaceId"))
    return {}


@action("ModifyNetworkInterfaceAttribute")
def modify_network_interface_attribute(model: Ec2Model, p: Params, now: float) -> Result:
    attachment = p.get("Attachment")
    delete_on_termination = None
    if attachment is not None:
        flag = attachment.get("DeleteOnTermination")
        delete_on_termination = (required(attachment, "AttachmentId"), bool(flag))
    description = p.get("Description")
    check = p.get("SourceDestCheck")
    model.modify_eni(
        now,
        required(p, "NetworkInterfaceId"),
        description=None if description is None else description.get("Value", ""),
        source_dest_check=None if check is None else bool(check.get("Value")),
        group_ids=p.get("Groups"),
        delete_on_termination=delete_on_termination,
    )
    return {}


@action("DescribeNetworkInterfaceAttribute")
def describe_network_interface_attribute(model: Ec2Model, p: Params, now: float) -> Result:
    eni_id = required(p, "NetworkInterfaceId")
    attribute = required(p, "Attribute")
    view = eni_view(model.store, model.store.eni(eni_id))
    members = {
        "description": ("Description", {"Value": view["Description"]}),
        "groupSet": ("Groups", view["Groups"]),
        "sourceDestCheck": ("SourceDestCheck", {"Value": view["SourceDestCheck"]}),
        "attachment": ("Attachment", view.get("Attachment")),
    }
    if attribute not in members:
        raise invalid_parameter(f"Value ({attribute}) for parameter attribute is invalid.")
    name, value = members[attribute]
    result: Result = {"NetworkInterfaceId": eni_id}
    if value is not None:
        result[name] = value
    return result


@action("AssignPrivateIpAddresses")
def assign_private_ip_addresses(model: Ec2Model, p: Params, now: float) -> Result:
    eni_id = required(p, "NetworkInterfaceId")
    addresses, prefixes = model.assign(
        now, eni_id, _address_request(p), bool(p.get("AllowReassignment"))
    )
    return {
        "NetworkInterfaceId": eni_id,
        "AssignedPrivateIpAddresses": [{"PrivateIpAddress": a} for a in addresses],
        "AssignedIpv4Prefixes": [{"Ipv4Prefix": prefix} for prefix in prefixes],
    }


@action("UnassignPrivateIpAddresses")
def unassign_private_ip_addresses(model: Ec2Model, p: Params, now: float) -> Result:
    model.unassign(
        now,
        required(p, "NetworkInterfaceId"),
        p.get("PrivateIpAddresses") or (),
        p.get("Ipv4Prefixes") or (),
    )
    return {}
