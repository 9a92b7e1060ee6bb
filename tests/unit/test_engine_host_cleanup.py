"""An ENI that leaves the pool loses its host networking, and the forced-removal counters count
only what pods were using (over a synthetic EC2 with a recording link check and metrics)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from vpccni.capacity.synthetic import SUBNET, VPC, StepClock, SyntheticCloud
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.config import parse_ipam_config
from vpccni.core.datastore import Datastore
from vpccni.core.model import PodKey, PodMeta
from vpccni.core.pool_rules import NodeLimits
from vpccni.core.scaling import Action
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger
from vpccni.ports import NullMetrics

LIMITS = NodeLimits(max_enis=3, ipv4_per_eni=6, max_pods=20)


class Links:
    """A link check that records what it is told."""

    def __init__(self) -> None:
        self.ready: list[tuple[str, IPv4Address, int]] = []
        self.removed: list[tuple[str, IPv4Address, int]] = []

    def eni_ready(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        self.ready.append((mac, primary_ip, device_index))
        return True

    def eni_removed(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        self.removed.append((mac, primary_ip, device_index))
        return True


class Counted(NullMetrics):
    def __init__(self) -> None:
        self.forced: list[tuple[int, int]] = []

    def force_removed(self, enis: int, ips: int) -> None:
        self.forced.append((enis, ips))


def node_with_second_eni() -> tuple[PoolEngine, SyntheticCloud, Datastore, Links, Counted, str]:
    cloud = SyntheticCloud()
    config = parse_ipam_config({"WARM_IP_TARGET": "1", "MINIMUM_IP_TARGET": "1"})
    clock = StepClock()
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    lifecycle = EniLifecycle(
        cloud, clock, NodeContext(cloud.instance_id, VPC, SUBNET, ()), random.Random(0)
    )
    links, metrics = Links(), Counted()
    engine = PoolEngine(
        DatastoreLedger(store), lifecycle, config, LIMITS, cloud, metrics=metrics, links=links
    )
    engine.reconcile_or_raise(force_ec2=True)
    engine.execute(Action("create-eni", None, 2, "test"))
    [second] = [e for e in cloud.enis if e != cloud.primary_eni_id]
    return engine, cloud, store, links, metrics, second


def detach(cloud: SyntheticCloud, eni_id: str) -> None:
    attachment = cloud.enis[eni_id].attachment
    assert attachment is not None
    cloud.detach_eni(attachment.attachment_id)


def test_an_empty_eni_ec2_detached_is_not_a_forced_removal_but_loses_its_host_state() -> None:
    engine, cloud, _store, links, metrics, second = node_with_second_eni()
    eni = cloud.enis[second]
    detach(cloud, second)
    outcome = engine.reconcile()
    assert outcome is not None
    assert outcome.removed == 1
    assert metrics.forced == []  # no pod lost anything: nothing to count
    assert links.removed == [(eni.mac, eni.primary_ip, 1)]


def test_an_eni_with_pods_ec2_detached_counts_the_eni_and_each_address() -> None:
    engine, cloud, store, links, metrics, second = node_with_second_eni()
    eni = cloud.enis[second]
    while not any(a.address in eni.secondary_ips for a in store.assignments()):
        store.assign(PodKey("aws-cni", f"c{len(store.assignments())}", "eth0"), PodMeta(), 0.0)
    on_second = sum(1 for a in store.assignments() if a.address in eni.secondary_ips)
    detach(cloud, second)
    engine.reconcile()
    assert metrics.forced == [(1, on_second)]
    assert links.removed == [(eni.mac, eni.primary_ip, 1)]


def test_an_unused_address_ec2_took_away_is_not_counted() -> None:
    engine, cloud, _store, _links, metrics, second = node_with_second_eni()
    eni = cloud.enis[second]
    cloud.unassign_ips(second, eni.secondary_ips[:1])
    engine.reconcile()
    assert metrics.forced == []


def test_freeing_an_eni_removes_its_host_state_with_what_was_configured() -> None:
    engine, cloud, _store, links, _metrics, second = node_with_second_eni()
    eni = cloud.enis[second]
    assert (eni.mac, eni.primary_ip, 1) in links.ready
    engine.execute(Action("free-eni", second, 0, "test"))
    assert second not in cloud.enis
    assert links.removed == [(eni.mac, eni.primary_ip, 1)]
