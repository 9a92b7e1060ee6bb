"""The emulator's resources as immutable values: VPC, subnet, security group, instance, ENI.

Each change to a resource replaces its record (``dataclasses.replace``), so a record handed out
never changes under its reader and old versions can be kept for the IMDS lag. Times are float
seconds on the emulator clock. Tags are an ordered tuple of (key, value) pairs, as EC2 returns
them in insertion order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Tags = tuple[tuple[str, str], ...]

ACCOUNT_ID = "123456789012"
MAX_TAGS = 50


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr: str
    default_group_id: str
    tags: Tags = ()


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
