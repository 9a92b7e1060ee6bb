"""ENI operations with EC2's rules: create, attach, detach, delete, assign, unassign, modify.

Functions over a :class:`~vpccni.emulator.store.Store`; each validates everything first and
changes nothing when it raises. The rules enforced (see docs/emulator.md for the list):

* per ENI, every IPv4 address (the primary included) and every /28 prefix takes one of the
  instance type's ``ipv4_per_eni`` slots -> ``PrivateIpAddressLimitExceeded``;
* per network card, at most the card's interface count -> ``AttachmentLimitExceeded``, checked
  before the device index (a taken index -> ``InvalidParameterValue``), as EC2 does;
* prefixes only on Nitro or bare-metal types. EC2's exact code for this refusal is not
  documented; ``InvalidParameterValue`` is used;
* an ENI's security groups follow ``security_groups`` (at most five, all of its VPC);
* an attached ENI cannot be deleted (``InvalidNetworkInterface.InUse``), device index 0 cannot be
  detached (``OperationNotPermitted``);
* attach and detach take ``store.delays`` seconds of emulator time (attaching / detaching
  meanwhile); ``Force`` detaches at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import AddressValueError, IPv4Address, IPv4Network

from vpccni.emulator.addressing import SubnetPool
from vpccni.emulator.errors import Ec2Error, invalid_parameter, missing_parameter
from vpccni.emulator.records import Attachment, Eni, Tags
from vpccni.emulator.security_groups import check_interface_groups
from vpccni.emulator.store import Store, prefix_text


@dataclass(frozen=True)
class AddressRequest:
    """What to put on an ENI: explicit addresses/prefixes and/or counts to choose."""

    addresses: tuple[str, ...] = ()
    address_count: int = 0
    prefixes: tuple[str, ...] = ()
    prefix_count: int = 0

    @property
    def slots(self) -> int:
        return len(self.addresses) + self.address_count + len(self.prefixes) + self.prefix_count

    @property
    def wants_prefixes(self) -> bool:
        return bool(self.prefixes) or self.prefix_count > 0


def combination(message: str) -> Ec2Error:
    return Ec2Error("InvalidParameterCombination", message)


def limit_exceeded() -> Ec2Error:
    return Ec2Error(
        "PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit."
    )


def parse_address(text: str) -> int:
    try:
        return int(IPv4Address(text))
    except (AddressValueError, ValueError) as error:
        raise invalid_parameter(f"Invalid IPv4 address: {text!r}") from error


def parse_prefix(text: str) -> IPv4Network:
    try:
        return IPv4Network(text)
    except ValueError as error:
        raise invalid_parameter(f"Invalid IPv4 prefix: {text!r}") from error


def create_eni(
    store: Store,
    now: float,
    subnet_id: str,
    request: AddressRequest,
    *,
    primary_ip: str | None = None,
    description: str = "",
    group_ids: Sequence[str] = (),
    tags: Tags = (),
) -> Eni:
    """A new, unattached ENI in ``subnet_id`` with a primary address plus ``request``."""
    subnet = store.subnet(subnet_id)
    vpc = store.vpc(subnet.vpc_id)
    groups = check_interface_groups(store, group_ids, vpc.vpc_id, f"subnet {subnet_id}")
    groups = groups or (vpc.default_group_id,)
    _check_counts(request)
    if 1 + request.slots > store.max_unattached_slots():
        raise limit_exceeded()
    explicit = ((primary_ip,) if primary_ip else ()) + request.addresses
    count = request.address_count + (0 if explicit else 1)
    full = replace(request, addresses=explicit, address_count=count)
    addresses, prefixes = _take(store, store.pool(subnet_id), full)
    eni = Eni(
        eni_id=store.mint("eni"),
        subnet_id=subnet_id,
        vpc_id=subnet.vpc_id,
        availability_zone=subnet.availability_zone,
        mac=store.mint_mac(),
        description=description,
        group_ids=groups,
        private_ips=tuple(str(IPv4Address(a)) for a in addresses),
        prefixes=tuple(prefix_text(base) for base in prefixes),
        created_at=now,
        tags=tags,
    )
    store.put_eni(eni, now)
    return eni


def attach_eni(
    store: Store,
    now: float,
    eni_id: str,
    instance_id: str,
    device_index: int,
    *,
    network_card_index: int = 0,
) -> Attachment:
    """Attach ``eni_id``; the attachment is ``attaching`` until ``store.delays.attach`` passes."""
    eni = store.eni(eni_id)
    instance = store.instance(instance_id)
    if not instance.running:
        raise Ec2Error(
            "IncorrectInstanceState",
            f"The instance '{instance_id}' is not in a valid state for this operation.",
        )
    if eni.attachment is not None:
        raise invalid_parameter(f"Interface: [{eni_id}] in use.")
    if eni.vpc_id != instance.vpc_id or eni.availability_zone != instance.availability_zone:
        raise combination(
            "You may not attach a network interface to an instance if they are not in the same "
            "availability zone"
        )
    limits = store.instance_limits(instance.instance_type)
    cards = {card.index: card.max_interfaces for card in limits.network_cards}
    if network_card_index not in cards:
        raise invalid_parameter(
            f"Network card index {network_card_index} is not valid for {instance.instance_type}."
        )
    on_card = [
        other
        for other in store.enis_of(instance_id)
        if other.attachment and other.attachment.network_card_index == network_card_index
    ]
    if len(on_card) >= cards[network_card_index]:
        raise Ec2Error(
            "AttachmentLimitExceeded",
            f"Interface count {len(on_card) + 1} exceeds the limit for {instance.instance_type}",
        )
    if device_index < 0 or any(
        other.attachment and other.attachment.device_index == device_index for other in on_card
    ):
        raise invalid_parameter(
            f"Instance '{instance_id}' already has an interface attached at device index "
            f"'{device_index}'."
            if device_index >= 0
            else f"Invalid value '{device_index}' for deviceIndex."
        )
    if eni.slots_used > limits.ipv4_per_eni:
        raise limit_exceeded()
    if eni.prefixes and not limits.prefixes_allowed:
        raise _prefixes_unsupported(instance.instance_type)
    delay = store.delays.attach
    attachment = Attachment(
        attachment_id=store.mint("attachment"),
        instance_id=instance_id,
        device_index=device_index,
        network_card_index=network_card_index,
        delete_on_termination=False,
        attach_time=now,
        status="attaching" if delay > 0 else "attached",
    )
    store.put_eni(replace(eni, attachment=attachment), now)
    if delay > 0:
        store.schedule(now + delay, "attached", eni_id, attachment.attachment_id)
    return attachment


def detach_eni(store: Store, now: float, attachment_id: str, force: bool = False) -> None:
    """Start detaching; ``detaching`` until ``store.delays.detach`` passes (``force``: at once)."""
    eni = store.eni_by_attachment(attachment_id)
    attachment = eni.attachment
    assert attachment is not None
    instance = store.instances.get(attachment.instance_id)
    if instance is not None and instance.primary_eni_id == eni.eni_id:
        raise Ec2Error(
            "OperationNotPermitted",
            f"The network interface at device index {attachment.device_index} cannot be detached.",
        )
    delay = 0.0 if force else store.delays.detach
    if delay <= 0:
        store.put_eni(replace(eni, attachment=None), now)
    elif attachment.status != "detaching":
        store.put_eni(replace(eni, attachment=replace(attachment, status="detaching")), now)
        store.schedule(now + delay, "detached", eni.eni_id, attachment_id)


def delete_eni(store: Store, now: float, eni_id: str) -> None:
    """Delete an unattached ENI and free its addresses and prefixes."""
    eni = store.eni(eni_id)
    if eni.attachment is not None:
        raise Ec2Error(
            "InvalidNetworkInterface.InUse",
            f"The network interface '{eni_id}' is currently in use.",
        )
    store.drop_eni(eni_id, now)


def assign(
    store: Store,
    now: float,
    eni_id: str,
    request: AddressRequest,
    allow_reassignment: bool = False,
) -> tuple[list[str], list[str]]:
    """Add secondary addresses or /28 prefixes; returns (addresses, prefixes) added."""
    eni = store.eni(eni_id)
    if request.slots == 0:
        raise missing_parameter(
            "SecondaryPrivateIpAddressCount, PrivateIpAddress, Ipv4PrefixCount or Ipv4Prefix"
        )
    _check_counts(request)
    limit, prefixes_ok, type_name = _eni_limits(store, eni)
    if request.wants_prefixes and not prefixes_ok:
        raise _prefixes_unsupported(type_name)
    if eni.slots_used + request.slots > limit:
        raise limit_exceeded()
    pool = store.pool(eni.subnet_id)
    if allow_reassignment:
        _reassign_from_others(store, now, eni, pool, request.addresses)
    addresses, prefixes = _take(store, pool, request)
    added_ips = [str(IPv4Address(a)) for a in addresses]
    added_prefixes = [prefix_text(base) for base in prefixes]
    updated = replace(
        eni,
        private_ips=eni.private_ips + tuple(added_ips),
        prefixes=eni.prefixes + tuple(added_prefixes),
    )
    store.put_eni(updated, now)
    return added_ips, added_prefixes


def unassign(
    store: Store, now: float, eni_id: str, addresses: Sequence[str], prefixes: Sequence[str]
) -> None:
    """Remove secondary addresses and/or prefixes from an ENI; all must be on it."""
    eni = store.eni(eni_id)
    if not addresses and not prefixes:
        raise missing_parameter("PrivateIpAddress or Ipv4Prefix")
    drop_ips = {str(IPv4Address(parse_address(a))) for a in addresses}
    drop_prefixes = {str(parse_prefix(p)) for p in prefixes}
    if eni.primary_ip in drop_ips:
        raise invalid_parameter("The primary IP address of an interface cannot be unassigned.")
    if not drop_ips <= set(eni.secondary_ips) or not drop_prefixes <= set(eni.prefixes):
        raise invalid_parameter(
            f"Some of the specified addresses are not assigned to interface {eni_id}"
        )
    pool = store.pool(eni.subnet_id)
    for address in drop_ips:
        pool.release_address(parse_address(address))
    for prefix in drop_prefixes:
        pool.release_prefix(int(IPv4Network(prefix).network_address))
    updated = replace(
        eni,
        private_ips=tuple(a for a in eni.private_ips if a not in drop_ips),
        prefixes=tuple(p for p in eni.prefixes if p not in drop_prefixes),
    )
    store.put_eni(updated, now)


def modify_eni(
    store: Store,
    now: float,
    eni_id: str,
    *,
    description: str | None = None,
    source_dest_check: bool | None = None,
    group_ids: Sequence[str] | None = None,
    delete_on_termination: tuple[str, bool] | None = None,
) -> Eni:
    """Change one attribute of an ENI (EC2 allows one per call)."""
    eni = store.eni(eni_id)
    given = [
        x is not None for x in (description, source_dest_check, group_ids, delete_on_termination)
    ]
    if sum(given) != 1:
        raise combination("Exactly one attribute must be modified per request.")
    if description is not None:
        updated = replace(eni, description=description)
    elif source_dest_check is not None:
        updated = replace(eni, source_dest_check=source_dest_check)
    elif group_ids is not None:
        if not group_ids:
            raise missing_parameter("Groups (an ENI has at least one security group)")
        groups = check_interface_groups(store, group_ids, eni.vpc_id, f"network interface {eni_id}")
        updated = replace(eni, group_ids=groups)
        instance = store.instances.get(eni.attachment.instance_id) if eni.attachment else None
        if instance is not None and instance.primary_eni_id == eni_id:
            # An instance's security groups are its primary ENI's (DescribeInstances, IMDS).
            store.put_instance(replace(instance, group_ids=groups), now)
    else:
        assert delete_on_termination is not None
        attachment_id, flag = delete_on_termination
        if eni.attachment is None or eni.attachment.attachment_id != attachment_id:
            store.eni_by_attachment(attachment_id)
            raise invalid_parameter(f"Attachment {attachment_id} does not belong to {eni_id}.")
        updated = replace(eni, attachment=replace(eni.attachment, delete_on_termination=flag))
    store.put_eni(updated, now)
    return updated


# -- helpers ----------------------------------------------------------------------------------


def _check_counts(request: AddressRequest) -> None:
    """The address part of a Create or Assign request is one of the combinations EC2 allows."""
    if request.address_count < 0 or request.prefix_count < 0:
        raise invalid_parameter("Counts must not be negative.")
    if (request.addresses or request.address_count) and request.wants_prefixes:
        raise combination(
            "Secondary private IPv4 addresses (a count or a list) and IPv4 prefixes (a count or "
            "a list) cannot be given in the same request; ask for one kind per request."
        )
    if request.address_count and request.addresses:
        raise combination("Specify either a count or a list of addresses, not both.")
    if request.prefix_count and request.prefixes:
        raise combination("Specify either Ipv4PrefixCount or Ipv4Prefixes, not both.")


def _prefixes_unsupported(instance_type: str) -> Ec2Error:
    return invalid_parameter(
        f"Prefix delegation is not supported for instance type {instance_type}: "
        "it needs a Nitro-based or bare-metal instance."
    )


def _eni_limits(store: Store, eni: Eni) -> tuple[int, bool, str]:
    """(slot limit, prefixes allowed, type name) for an ENI, from its instance if attached."""
    if eni.attachment is None:
        return store.max_unattached_slots(), True, "(unattached)"
    instance = store.instance(eni.attachment.instance_id)
    limits = store.instance_limits(instance.instance_type)
    return limits.ipv4_per_eni, limits.prefixes_allowed, instance.instance_type


def _reassign_from_others(
    store: Store, now: float, eni: Eni, pool: SubnetPool, addresses: Sequence[str]
) -> None:
    """AllowReassignment: move explicit addresses that are secondaries of other ENIs.

    Every address that will not be moved is checked first, so a refusal changes nothing.
    """
    wanted = {str(IPv4Address(parse_address(a))) for a in addresses}
    owners = {
        address: other.eni_id
        for other in store.enis.values()
        if other.eni_id != eni.eni_id and other.subnet_id == eni.subnet_id
        for address in other.secondary_ips
        if address in wanted
    }
    for address in wanted - set(owners):
        pool.check_address(parse_address(address))
    for owner in sorted(set(owners.values())):
        moving = sorted(a for a, o in owners.items() if o == owner)
        unassign(store, now, owner, moving, ())


def _take(store: Store, pool: SubnetPool, request: AddressRequest) -> tuple[list[int], list[int]]:
    """Take explicit then chosen prefixes and addresses from ``pool``, all or nothing."""
    explicit = [parse_address(a) for a in request.addresses]
    explicit_prefixes = [parse_prefix(p) for p in request.prefixes]
    if len(set(explicit)) != len(explicit) or len(set(explicit_prefixes)) != len(explicit_prefixes):
        raise invalid_parameter("The request lists the same address or prefix twice.")
    taken: list[int] = []
    taken_prefixes: list[int] = []
    try:
        for address in explicit:
            pool.take_address(address)
            taken.append(address)
        for prefix in explicit_prefixes:
            pool.take_prefix(int(prefix.network_address))
            taken_prefixes.append(int(prefix.network_address))
        for base in pool.choose_prefixes(request.prefix_count, store.rng):
            pool.take_prefix(base)
            taken_prefixes.append(base)
        for address in pool.choose_addresses(request.address_count, store.rng):
            pool.take_address(address)
            taken.append(address)
    except Ec2Error:
        for address in taken:
            pool.release_address(address)
        for base in taken_prefixes:
            pool.release_prefix(base)
        raise
    return taken, taken_prefixes
