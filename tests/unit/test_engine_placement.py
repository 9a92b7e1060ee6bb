"""The pool engine's subnet handling over a synthetic EC2 with several subnets: a batch the
subnet cannot fill, the first successful create, a broken ENIConfig waiting for a change."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from ipaddress import IPv4Address

from vpccni.capacity.synthetic import SUBNET, VPC, StepClock, SyntheticCloud
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.aws_types import EniDescription, Throttled, ec2_error
from vpccni.core.cluster import ClusterView, EniConfig, NodeInfo
from vpccni.core.config import parse_ipam_config
from vpccni.core.datastore import Datastore
from vpccni.core.pool_rules import NodeLimits
from vpccni.core.scaling import Action
from vpccni.core.subnets import Subnet
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger

ZONE = "planner-a"
LIMITS = NodeLimits(max_enis=3, ipv4_per_eni=10, max_pods=29)


class Subnets(SyntheticCloud):
    """The synthetic EC2 with subnets of limited free addresses, counting calls."""

    def __init__(self, subnets: Sequence[Subnet]) -> None:
        self.subnet_list = {s.subnet_id: s for s in subnets}
        self.calls: Counter[str] = Counter()
        self.throttle_assign = False
        self.ready = False  # the primary ENI, made by the constructor, takes nothing
        super().__init__()
        self.ready = True

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        self.calls["DescribeSubnets"] += 1
        found = list(self.subnet_list.values())
        if subnet_ids:
            unknown = [i for i in subnet_ids if i not in self.subnet_list]
            if unknown:
                raise ec2_error("DescribeSubnets", "InvalidSubnetID.NotFound", unknown[0])
            found = [self.subnet_list[i] for i in subnet_ids]
        zone = (filters or {}).get("availability-zone")
        return [s for s in found if zone is None or s.availability_zone in zone]

    def _take(self, subnet_id: str, count: int, operation: str) -> None:
        subnet = self.subnet_list.get(subnet_id)
        if subnet is None:
            return
        if count > subnet.free:
            raise ec2_error(operation, "InsufficientFreeAddressesInSubnet", f"{subnet_id} full")
        self.subnet_list[subnet_id] = replace(subnet, free=subnet.free - count)

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
        if self.ready:
            self.calls["CreateNetworkInterface"] += 1
            self._take(subnet_id, 1 + secondary_ips, "CreateNetworkInterface")
        eni = super().create_eni(
            subnet_id,
            security_groups,
            description,
            tags,
            secondary_ips=secondary_ips,
            prefixes=prefixes,
        )
        eni = replace(eni, security_groups=tuple(security_groups))
        self.enis[eni.eni_id] = eni
        return eni

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        self.calls[f"AssignPrivateIpAddresses/{count}"] += 1
        if self.throttle_assign:
            raise Throttled("slow down", code="RequestLimitExceeded")
        self._take(self.enis[eni_id].subnet_id, count, "AssignPrivateIpAddresses")
        return super().assign_ips(eni_id, count)


class Source:
    """An in-memory cluster source whose view a test replaces."""

    def __init__(self, view: ClusterView) -> None:
        self.current = view

    def view(self) -> ClusterView:
        return self.current

    def close(self) -> None:
        return None


def engine_for(cloud: Subnets, **env: str) -> PoolEngine:
    config = parse_ipam_config(env)
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    context = NodeContext(cloud.instance_id, VPC, SUBNET, ("sg-node",), availability_zone=ZONE)
    lifecycle = EniLifecycle(cloud, StepClock(), context, random.Random(0))
    engine = PoolEngine(DatastoreLedger(store), lifecycle, config, LIMITS, cloud)
    engine.reconcile_or_raise(force_ec2=True)
    return engine


def node_subnet(free: int, **tags: str) -> Subnet:
    return Subnet(SUBNET, VPC, ZONE, "10.0.1.0/28", free, tags)


def cidrs_on(engine: PoolEngine, eni_id: str) -> int:
    return len(engine.ledger.cidrs_by_eni()[eni_id])


def test_a_batch_the_subnet_cannot_fill_is_taken_one_by_one_then_reported() -> None:
    cloud = Subnets([node_subnet(3)])
    engine = engine_for(cloud, ENABLE_SUBNET_DISCOVERY="false")
    primary = cloud.primary_eni_id
    for _ in range(3):
        engine.tick()
    assert cidrs_on(engine, primary) == 3
    assert cloud.calls["AssignPrivateIpAddresses/9"] == 1
    assert cloud.calls["AssignPrivateIpAddresses/1"] == 3
    engine.tick()  # nothing left: the subnet is exhausted, growth pauses
    assert engine.state.insufficient_capacity_at is not None
    assert engine.state.errors["increaseIPPool"] == 1
    assert engine.tick().actions == ()  # paused: no call at all
    assert engine.state.subnet_free == 0


def test_a_throttled_batch_is_not_retried_with_one() -> None:
    cloud = Subnets([node_subnet(100)])
    engine = engine_for(cloud)
    cloud.throttle_assign = True
    engine.execute(Action("assign-ips", cloud.primary_eni_id, 5, "test"))
    assert cloud.calls["AssignPrivateIpAddresses/5"] == 1
    assert cloud.calls["AssignPrivateIpAddresses/1"] == 0
    assert engine.state.throttled_until is not None


def test_discovery_moves_on_to_a_new_eni_in_the_next_subnet_that_takes_it() -> None:
    roomy = Subnet("subnet-roomy", VPC, ZONE, "10.0.4.0/24", 200, {"kubernetes.io/role/cni": "1"})
    # the most free addresses, but the create fails there (someone else took them meanwhile)
    racing = Subnet("subnet-racing", VPC, ZONE, "10.0.8.0/24", 250, {"kubernetes.io/role/cni": "1"})
    cloud = Subnets([node_subnet(2), roomy, racing])
    engine = engine_for(cloud)
    cloud.subnet_list["subnet-racing"] = replace(racing, free=250)
    original = cloud._take

    def take(subnet_id: str, count: int, operation: str) -> None:
        if subnet_id == "subnet-racing" and operation == "CreateNetworkInterface":
            raise ec2_error(operation, "InsufficientFreeAddressesInSubnet", "taken meanwhile")
        original(subnet_id, count, operation)

    cloud._take = take  # type: ignore[method-assign]
    primary = cloud.primary_eni_id
    for _ in range(4):
        engine.tick()
    assert cidrs_on(engine, primary) == 2  # the node subnet's last two, one by one
    enis = [e for e in cloud.enis.values() if e.eni_id != primary]
    assert [(e.subnet_id, e.security_groups) for e in enis] == [("subnet-roomy", ("sg-node",))]
    assert engine.state.insufficient_capacity_at is None
    assert engine.eni_subnets[enis[0].eni_id] == "subnet-roomy"


def test_a_broken_eniconfig_waits_for_the_view_to_change() -> None:
    pods = Subnet("subnet-pods", VPC, ZONE, "100.64.0.0/24", 250)
    cloud = Subnets([node_subnet(100), pods])
    engine = engine_for(cloud, AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG="true")
    node = NodeInfo("n1", {"k8s.amazonaws.com/eniConfig": "az-a"})
    source = Source(ClusterView(node=node, eniconfigs={}, generation=1))
    engine.cluster = source
    engine.tick()
    problem = engine.state.placement_problem
    assert problem is not None
    assert "ENIConfig 'az-a'" in problem.message
    before = Counter(cloud.calls)
    for _ in range(10):
        engine.clock.sleep(5.0)
        engine.tick()
    assert cloud.calls == before  # no EC2 call while nothing changed
    source.current = ClusterView(
        node=node,
        eniconfigs={"az-a": EniConfig("az-a", "subnet-pods", ("sg-pods",))},
        generation=2,
    )
    engine.tick()
    assert engine.state.placement_problem is None
    (eni,) = [e for e in cloud.enis.values() if e.eni_id != cloud.primary_eni_id]
    assert (eni.subnet_id, eni.security_groups, len(eni.secondary_ips)) == (
        "subnet-pods",
        ("sg-pods",),
        9,
    )
    views = {v.eni_id: v for v in engine.ledger.views(engine.clock.now())}
    assert views[cloud.primary_eni_id].info.excluded
    assert not views[eni.eni_id].info.excluded
