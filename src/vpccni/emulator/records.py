"""The emulator's resources as immutable values: VPC, subnet, security group, instance, ENI.

Each change to a resource replaces its record (``dataclasses.replace``), so a record handed out
never changes under its reader and old versions can be kept for the IMDS lag. Times are float
seconds on the emulator clock. Tags are an ordered tuple of (key, value) pairs, as EC2 returns
them in insertion order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vpccni.emulator.errors import Ec2Error, invalid_parameter

Tags = tuple[tuple[str, str], ...]

ACCOUNT_ID = "123456789012"
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
RESERVED_TAG_PREFIX = "aws:"


@dataclass(frozen=True)
class CidrAssociation:
    """One IPv4 CIDR block associated with a VPC, and the association's id."""

    association_id: str
    cidr: str


@dataclass(frozen=True)
class Vpc:
    """A VPC: ``cidr`` is its primary IPv4 block, ``associations`` every associated block (the
    primary first, then secondary blocks in the order they were associated)."""

    vpc_id: str
    cidr: str
    default_group_id: str
    tags: Tags = ()
    associations: tuple[CidrAssociation, ...] = ()

    @property
    def cidr_blocks(self) -> tuple[str, ...]:
        """Every associated IPv4 block, the primary first."""
        return tuple(a.cidr for a in self.associations) or (self.cidr,)


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    cidr: str
    availability_zone: str
    tags: Tags = ()


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    name: str
    vpc_id: str
    description: str
    tags: Tags = ()


@dataclass(frozen=True)
class Instance:
    instance_id: str
    instance_type: str
    image_id: str
    subnet_id: str
    vpc_id: str
    availability_zone: str
    reservation_id: str
    primary_eni_id: str
    group_ids: tuple[str, ...]
    launch_time: float
    state: str = "running"
    tags: Tags = ()

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class Attachment:
    """An ENI's attachment; ``status`` is attaching, attached or detaching."""

    attachment_id: str
    instance_id: str
    device_index: int
    network_card_index: int
    delete_on_termination: bool
    attach_time: float
    status: str


@dataclass(frozen=True)
class Eni:
    """A network interface; ``private_ips[0]`` is its primary address."""

    eni_id: str
    subnet_id: str
    vpc_id: str
    availability_zone: str
    mac: str
    description: str
    group_ids: tuple[str, ...]
    private_ips: tuple[str, ...]
    prefixes: tuple[str, ...]
    created_at: float
    tags: Tags = ()
    source_dest_check: bool = True
    attachment: Attachment | None = None
    interface_type: str = "interface"
    requester_managed: bool = False

    @property
    def status(self) -> str:
        """EC2's ENI status: in-use while it has an attachment, else available."""
        return "available" if self.attachment is None else "in-use"

    @property
    def primary_ip(self) -> str:
        return self.private_ips[0]

    @property
    def secondary_ips(self) -> tuple[str, ...]:
        return self.private_ips[1:]

    @property
    def slots_used(self) -> int:
        """Per-ENI IPv4 slots in use: one per address (primary included) and one per /28."""
        return len(self.private_ips) + len(self.prefixes)


def check_tag_keys(keys: Iterable[str]) -> None:
    """EC2's rules for a tag key: 1 to 128 characters, not starting with ``aws:`` (any case)."""
    for key in keys:
        if not key:
            raise invalid_parameter("Tag keys must not be empty.")
        if len(key) > MAX_TAG_KEY:
            raise invalid_parameter(
                f"Tag key '{key[:20]}...' is {len(key)} characters long; the limit is "
                f"{MAX_TAG_KEY}."
            )
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise invalid_parameter(
                f"Tag key '{key}' is invalid: tag keys starting with 'aws:' are reserved for "
                "internal use."
            )


def check_tags(tags: Iterable[tuple[str, str]], count: int | None = None) -> None:
    """EC2's tag restrictions for tags being set: keys as ``check_tag_keys``, values up to 256
    characters, at most 50 on a resource (``count``: the resource's total after the change;
    default the number given)."""
    listed = list(tags)
    check_tag_keys(key for key, _ in listed)
    for key, value in listed:
        if len(value) > MAX_TAG_VALUE:
            raise invalid_parameter(
                f"The value of tag '{key}' is {len(value)} characters long; the limit is "
                f"{MAX_TAG_VALUE}."
            )
    total = len({key for key, _ in listed}) if count is None else count
    if total > MAX_TAGS:
        raise Ec2Error(
            "TagLimitExceeded",
            f"The maximum number of tags ({MAX_TAGS}) would be exceeded: the resource would "
            f"have {total}.",
        )


def merge_tags(tags: Tags, new: Iterable[tuple[str, str]]) -> Tags:
    """``tags`` with each new (key, value) replacing the same key or appended."""
    merged = dict(tags)
    for key, value in new:
        merged[key] = value
    return tuple(merged.items())


def remove_tags(tags: Tags, doomed: Iterable[tuple[str, str | None]]) -> Tags:
    """``tags`` without the given keys; a key given with a value goes only if the value matches."""
    kept = dict(tags)
    for key, value in doomed:
        if key in kept and (value is None or kept[key] == value):
            del kept[key]
    return tuple(kept.items())


def tag_value(tags: Tags, key: str) -> str | None:
    for tag_key, value in tags:
        if tag_key == key:
            return value
    return None
