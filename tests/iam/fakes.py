"""A synthetic EC2 that denies the actions it is told to, as EC2 does, and counts every call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from vpccni.capacity.synthetic import SyntheticCloud
from vpccni.core.aws_types import EniDescription, InstanceDescription, ec2_error
from vpccni.core.subnets import Subnet

T = TypeVar("T")
CALLER = "arn:aws:sts::111122223333:assumed-role/vpccni/i-planner"


def denial_message(action: str, resource: str = "*") -> str:
    """EC2's words for a denied call (the shape real EC2 and the emulator answer with)."""
    on = "" if resource == "*" else f" on resource: {resource}"
    return (
        f"You are not authorized to perform this operation. User: {CALLER} is not authorized to "
        f"perform: ec2:{action}{on} because no identity-based policy allows the ec2:{action} "
        "action. Encoded authorization failure message: eyJhbGxvd2VkIjogZmFsc2V9"
    )


class DenyingCloud(SyntheticCloud):
    """``denied`` actions raise UnauthorizedOperation; ``denied_on`` denies CreateTags on the
    listed ENIs only (a tag-scoped policy); ``calls`` and ``denials`` count what reached EC2."""

    def __init__(self) -> None:
        self.denied: set[str] = set()
        self.denied_on: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.denials: Counter[str] = Counter()
        super().__init__()
        self.calls.clear()

    def _api(self, action: str, resource: str, call: Callable[[], T]) -> T:
        self.calls[action] += 1
        if action in self.denied or (action == "CreateTags" and resource in self.denied_on):
            self.denials[action] += 1
            arn = f"arn:aws:ec2:us-west-2:111122223333:network-interface/{resource}"
            raise ec2_error(
                action, "UnauthorizedOperation", denial_message(action, arn if resource else "*")
            )
        return call()

    def describe_instance(self, instance_id: str) -> InstanceDescription:
        return self._api(
            "DescribeInstances",
            "",
            lambda: super(DenyingCloud, self).describe_instance(instance_id),
        )

    def describe_enis(
        self, eni_ids: Sequence[str] = (), filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[EniDescription]:
        return self._api(
            "DescribeNetworkInterfaces",
            "",
            lambda: super(DenyingCloud, self).describe_enis(eni_ids, filters),
        )

    def create_eni(self, *args: Any, **kwargs: Any) -> EniDescription:
        return self._api(
            "CreateNetworkInterface",
            "",
            lambda: super(DenyingCloud, self).create_eni(*args, **kwargs),
        )

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        return self._api(
            "AttachNetworkInterface",
            eni_id,
            lambda: super(DenyingCloud, self).attach_eni(eni_id, instance_id, device_index),
        )

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        self._api("ModifyNetworkInterfaceAttribute", eni_id, lambda: None)

    def detach_eni(self, attachment_id: str, force: bool = False) -> None:
        self._api(
            "DetachNetworkInterface",
            attachment_id,
            lambda: super(DenyingCloud, self).detach_eni(attachment_id, force),
        )

    def delete_eni(self, eni_id: str) -> None:
        self._api(
            "DeleteNetworkInterface", eni_id, lambda: super(DenyingCloud, self).delete_eni(eni_id)
        )

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        return self._api(
            "AssignPrivateIpAddresses",
            eni_id,
            lambda: super(DenyingCloud, self).assign_ips(eni_id, count),
        )

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]:
        return self._api(
            "AssignPrivateIpAddresses",
            eni_id,
            lambda: super(DenyingCloud, self).assign_prefixes(eni_id, count),
        )

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        self._api(
            "UnassignPrivateIpAddresses",
            eni_id,
            lambda: super(DenyingCloud, self).unassign_ips(eni_id, addresses),
        )

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None:
        self._api(
            "UnassignPrivateIpAddresses",
            eni_id,
            lambda: super(DenyingCloud, self).unassign_prefixes(eni_id, prefixes),
        )

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        self._api(
            "CreateTags",
            resource_id,
            lambda: super(DenyingCloud, self).create_tags(resource_id, tags),
        )

    def subnet_free_addresses(self, subnet_id: str) -> int:
        return self._api(
            "DescribeSubnets",
            "",
            lambda: super(DenyingCloud, self).subnet_free_addresses(subnet_id),
        )

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        return self._api(
            "DescribeSubnets",
            "",
            lambda: super(DenyingCloud, self).describe_subnets(subnet_ids, filters),
        )
