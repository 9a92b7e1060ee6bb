"""A one-node EC2 and IMDS for the planner: instant, unlimited, addresses handed out in order.

:class:`SyntheticCloud` implements the ``vpccni.ports.Ec2`` and ``vpccni.ports.Imds`` calls the
pool engine makes for one instance, with none of EC2's limits or delays: addresses and /28
prefixes come in order from 10.0.0.0/8 (as EC2's lowest-free choice would on one node), ENIs
attach at once at the index asked, IMDS lists exactly what EC2 holds. The planner asks where a
node's pool settles, not whether the subnet holds it (the plan reports that), so subnet size,
rate limits and latency are left out on purpose; ``vpccni simulate`` runs the same engine
against the full emulator. :class:`StepClock` is the virtual clock the planner advances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.aws_types import (
    EniAttachment,
    EniDescription,
    ImdsInterface,
    InstanceDescription,
    InstanceIdentity,
    NotFound,
    ec2_error,
)
from vpccni.core.model import ADDRESSES_PER_PREFIX
from vpccni.core.subnets import ROLE_TAG, Subnet

SUBNET = "subnet-planner"
POD_SUBNET = "subnet-planner-pods"
POD_TAGS = {ROLE_TAG: "1"}
VPC = "vpc-planner"
ZONE = "planner-a"


class StepClock:
    """Virtual seconds: ``sleep`` advances the clock, ``set`` moves it forward."""

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += max(seconds, 0.0)

    def set(self, when: float) -> None:
        self._now = max(self._now, when)


class SyntheticCloud:
    """EC2 and IMDS of one instance, answering at once."""

    def __init__(
        self,
        instance_id: str = "i-planner",
        subnet_tags: Mapping[str, str] | None = None,
        pod_subnet: bool = False,
    ) -> None:
        self.instance_id = instance_id
        self.subnets = [Subnet(SUBNET, VPC, ZONE, "10.0.0.0/8", 1 << 24, dict(subnet_tags or {}))]
        """The node's subnet (with the scenario's tags: kubernetes.io/role/cni=0 excludes the
        primary ENI from pod addresses) and, when the node's zone has a subnet discovery would
        use, one such subnet tagged for pods."""
        if pod_subnet:
            self.subnets.append(Subnet(POD_SUBNET, VPC, ZONE, "100.64.0.0/10", 1 << 24, POD_TAGS))
        self.enis: dict[str, EniDescription] = {}
        self._next_single = int(IPv4Network("10.0.0.0/8").network_address) + 16
        self._next_prefix = int(IPv4Network("10.128.0.0/9").network_address)
        self._count = 0
        primary = self.create_eni(SUBNET, (), "primary", {})
        self.primary_eni_id = primary.eni_id
        self._attach(primary.eni_id, 0)

    # -- EC2 ------------------------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> InstanceDescription:
        attached = tuple(e.attachment for e in self.enis.values() if e.attachment is not None)
        primary = self.enis[self.primary_eni_id]
        return InstanceDescription(
            instance_id, "planner", SUBNET, VPC, primary.primary_ip, (), attached
        )

    def describe_enis(
        self,
        eni_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[EniDescription]:
        if filters:
            return [e for e in self.enis.values() if e.attachment is not None]
        return [self.enis[i] for i in eni_ids if i in self.enis]

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
        self._count += 1
        eni_id = f"eni-{self._count:017x}"
        eni = EniDescription(
            eni_id=eni_id,
            subnet_id=subnet_id,
            vpc_id=VPC,
            status="available",
            primary_ip=self._singles(1)[0],
            secondary_ips=tuple(self._singles(secondary_ips)),
            prefixes=tuple(self._prefixes(prefixes)),
            mac=f"02:00:00:{self._count >> 16 & 255:02x}:{self._count >> 8 & 255:02x}:"
            f"{self._count & 255:02x}",
            description=description,
            tags=dict(tags),
        )
        self.enis[eni_id] = eni
        return eni

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        return self._attach(eni_id, device_index)

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        return None

    def detach_eni(self, attachment_id: str, force: bool = False) -> None:
        for eni in self.enis.values():
            if eni.attachment is not None and eni.attachment.attachment_id == attachment_id:
                self.enis[eni.eni_id] = replace(eni, attachment=None, status="available")
                return
        raise NotFound(f"attachment {attachment_id} not found", code="InvalidAttachmentID.NotFound")

    def delete_eni(self, eni_id: str) -> None:
        if self.enis.pop(eni_id, None) is None:
            raise NotFound(f"ENI {eni_id} not found", code="InvalidNetworkInterfaceID.NotFound")

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        added = self._singles(count)
        eni = self.enis[eni_id]
        self.enis[eni_id] = replace(eni, secondary_ips=(*eni.secondary_ips, *added))
        return added

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]:
        added = self._prefixes(count)
        eni = self.enis[eni_id]
        self.enis[eni_id] = replace(eni, prefixes=(*eni.prefixes, *added))
        return added

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        eni = self.enis[eni_id]
        gone = set(addresses)
        kept = tuple(a for a in eni.secondary_ips if a not in gone)
        self.enis[eni_id] = replace(eni, secondary_ips=kept)

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None:
        eni = self.enis[eni_id]
        gone = set(prefixes)
        self.enis[eni_id] = replace(eni, prefixes=tuple(p for p in eni.prefixes if p not in gone))

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        eni = self.enis[resource_id]
        self.enis[resource_id] = replace(eni, tags={**eni.tags, **tags})

    def subnet_free_addresses(self, subnet_id: str) -> int:
        return 1 << 24

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        """The node's subnet (and a pod subnet), never short of addresses, as ids and filters
        select them."""
        known = {subnet.subnet_id: subnet for subnet in self.subnets}
        for subnet_id in subnet_ids:
            if subnet_id not in known:
                raise ec2_error(
                    "DescribeSubnets",
                    "InvalidSubnetID.NotFound",
                    f"The subnet ID '{subnet_id}' does not exist",
                )
        found = [known[i] for i in subnet_ids] if subnet_ids else list(self.subnets)
        for name, values in (filters or {}).items():
            fields = {"vpc-id": VPC, "availability-zone": ZONE}
            if name == "subnet-id":
                found = [s for s in found if s.subnet_id in values]
            elif fields.get(name) not in values:
                return []
        return found

    # -- IMDS -----------------------------------------------------------------------------------

    def identity(self) -> InstanceIdentity:
        primary = self.enis[self.primary_eni_id]
        return InstanceIdentity(
            self.instance_id, "planner", "planner", ZONE, primary.mac, primary.primary_ip
        )

    def interfaces(self) -> list[ImdsInterface]:
        return [
            ImdsInterface(
                mac=eni.mac,
                eni_id=eni.eni_id,
                device_number=eni.attachment.device_index,
                network_card=0,
                local_ipv4s=(eni.primary_ip, *eni.secondary_ips),
                ipv4_prefixes=eni.prefixes,
                subnet_id=SUBNET,
                subnet_cidr=None,
                vpc_id=VPC,
                vpc_cidrs=(),
                security_group_ids=(),
            )
            for eni in self.enis.values()
            if eni.attachment is not None
        ]

    # -- addresses ------------------------------------------------------------------------------

    def _attach(self, eni_id: str, device_index: int) -> str:
        attachment = EniAttachment(f"eni-attach-{eni_id[4:]}", self.instance_id, device_index)
        self.enis[eni_id] = replace(self.enis[eni_id], attachment=attachment, status="in-use")
        return attachment.attachment_id

    def _singles(self, count: int) -> list[IPv4Address]:
        start, self._next_single = self._next_single, self._next_single + count
        return [IPv4Address(start + i) for i in range(count)]

    def _prefixes(self, count: int) -> list[IPv4Network]:
        start = self._next_prefix
        self._next_prefix += count * ADDRESSES_PER_PREFIX
        return [IPv4Network((start + i * ADDRESSES_PER_PREFIX, 28)) for i in range(count)]
