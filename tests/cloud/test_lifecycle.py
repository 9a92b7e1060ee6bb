"""The ENI lifecycle against the emulator: allocate, free, limits, rollback, leaked-ENI cleanup."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from tests.cloud.conftest import Backend, VirtualClock, advance, backend_for, start_emulator
from vpccni.adapters.emulator_time import RemoteEmulatorClock
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext, parse_rfc3339
from vpccni.core.aws_types import (
    TAG_CREATED_AT,
    TAG_INSTANCE_ID,
    LimitExceeded,
    NotFound,
    SubnetExhausted,
    Throttled,
)
from vpccni.core.limits import InstanceTable

WORKER = Path(__file__).with_name("allocate_worker.py")


def node(
    backend: Backend, instance_type: str = "c5.large", cidr: str = "10.0.1.0/24"
) -> NodeContext:
    vpc, subnet = backend.network(cidr)
    instance_id = backend.launch(subnet, instance_type)
    return NodeContext(instance_id, vpc, subnet, (), cluster_name="demo")


def lifecycle(backend: Backend, context: NodeContext) -> EniLifecycle:
    return EniLifecycle(backend.ec2, VirtualClock(), context, random.Random(7))


def our_enis(backend: Backend, context: NodeContext) -> list[str]:
    found = backend.ec2.describe_enis(filters={f"tag:{TAG_INSTANCE_ID}": [context.instance_id]})
    return sorted(eni.eni_id for eni in found)


def test_allocate_attaches_at_the_lowest_free_index_with_tags(emulator: Backend) -> None:
    context = node(emulator)
    eni = lifecycle(emulator, context).allocate_eni(secondary_ips=9)
    assert eni.status == "in-use"
    assert eni.attachment is not None
    assert (eni.attachment.device_index, eni.attachment.delete_on_termination) == (1, True)
    assert len(eni.secondary_ips) == 9
    assert eni.description == f"aws-K8S-{context.instance_id}"
    assert eni.tags[TAG_INSTANCE_ID] == context.instance_id
    assert eni.tags["cluster.k8s.amazonaws.com/name"] == "demo"
    assert parse_rfc3339(eni.tags[TAG_CREATED_AT]) == 1_800_000_000.0


def test_free_detaches_and_deletes_and_is_idempotent(emulator: Backend) -> None:
    context = node(emulator)
    cycle = lifecycle(emulator, context)
    eni = cycle.allocate_eni(secondary_ips=1)
    cycle.free_eni(eni.eni_id)
    with pytest.raises(NotFound):
        cycle.describe(eni.eni_id)
    cycle.free_eni(eni.eni_id)


def test_free_waits_for_a_slow_detach(table: InstanceTable) -> None:
    server = start_emulator(table, detach_delay=2.0)
    try:
        backend = backend_for(server)
        context = node(backend)
        cycle = EniLifecycle(backend.ec2, RemoteEmulatorClock(server.endpoint), context)
        eni = cycle.allocate_eni()
        cycle.free_eni(eni.eni_id)
        with pytest.raises(NotFound):
            cycle.describe(eni.eni_id)
    finally:
        server.stop()


def test_a_failed_attach_leaves_no_eni_behind(emulator: Backend) -> None:
    context = node(emulator)
    cycle = lifecycle(emulator, context)
    first, second = cycle.allocate_eni(), cycle.allocate_eni()
    with pytest.raises(LimitExceeded, match="AttachmentLimitExceeded"):
        cycle.allocate_eni()
    assert our_enis(emulator, context) == sorted([first.eni_id, second.eni_id])
    every = emulator.ec2.describe_enis(filters={"description": ["aws-K8S-*"]})
    assert {e.eni_id for e in every} == {first.eni_id, second.eni_id}


def test_address_and_prefix_limits_and_alignment(emulator: Backend) -> None:
    context = node(emulator)
    cycle = lifecycle(emulator, context)
    eni = cycle.allocate_eni(secondary_ips=8)
    assert len(emulator.ec2.assign_ips(eni.eni_id, 1)) == 1
    with pytest.raises(LimitExceeded, match="PrivateIpAddressLimitExceeded"):
        emulator.ec2.assign_ips(eni.eni_id, 1)
    prefixed = cycle.allocate_eni(prefixes=3)
    assert len(prefixed.prefixes) == 3
    more = emulator.ec2.assign_prefixes(prefixed.eni_id, 2)
    every = [*prefixed.prefixes, *more]
    assert all(p.prefixlen == 28 for p in every)
    assert all(int(p.network_address) % 16 == 0 for p in every)
    assert len(set(every)) == 5
    assert not any(a.overlaps(b) for i, a in enumerate(every) for b in every[i + 1 :])
    emulator.ec2.unassign_prefixes(prefixed.eni_id, more)
    [after] = emulator.ec2.describe_enis([prefixed.eni_id])
    assert set(after.prefixes) == set(prefixed.prefixes)
    assert all(isinstance(p, IPv4Network) for p in after.prefixes)


def test_subnet_exhaustion_is_reported_as_such(emulator: Backend) -> None:
    context = node(emulator, cidr="10.0.1.0/28")
    cycle = lifecycle(emulator, context)
    with pytest.raises(SubnetExhausted, match=r"InsufficientFreeAddressesInSubnet.*120 s"):
        cycle.allocate_eni(secondary_ips=20)
    assert our_enis(emulator, context) == []


def test_throttling_surfaces_after_botocores_retries(table: InstanceTable) -> None:
    server = start_emulator(table, buckets={"CreateTags": {"size": 1, "refill": 0.001}})
    try:
        backend = backend_for(server, retries={"mode": "standard", "max_attempts": 2})
        _, subnet = backend.network()
        eni = backend.ec2.create_eni(subnet, [], "d", {})
        backend.ec2.create_tags(eni.eni_id, {"a": "1"})
        with pytest.raises(Throttled, match="RequestLimitExceeded"):
            backend.ec2.create_tags(eni.eni_id, {"b": "2"})
    finally:
        server.stop()


def test_cleanup_removes_an_orphan_left_by_a_killed_process_once_old_enough(
    emulator: Backend,
) -> None:
    context = node(emulator)
    env = {"PYTHONPATH": str(Path(__file__).parents[2]), "PATH": "/usr/bin:/bin"}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), emulator.endpoint, json.dumps(context.__dict__)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline().split()
        assert line[:1] == ["created"], line
        orphan = line[1]
    finally:
        worker.kill()
        worker.wait(timeout=10)
    [eni] = emulator.ec2.describe_enis([orphan])
    assert (eni.status, eni.attachment) == ("available", None)

    cycle = EniLifecycle(emulator.ec2, RemoteEmulatorClock(emulator.endpoint), context)
    assert cycle.cleanup_leaked_enis() == []  # younger than five minutes: kept
    advance(emulator, 301)
    assert cycle.cleanup_leaked_enis() == [orphan]
    with pytest.raises(NotFound):
        cycle.describe(orphan)


def test_cleanup_keeps_attached_foreign_and_untimed_enis(emulator: Backend) -> None:
    context = node(emulator)
    cycle = EniLifecycle(emulator.ec2, RemoteEmulatorClock(emulator.endpoint), context)
    attached = cycle.allocate_eni()
    foreign = emulator.ec2.create_eni(context.subnet_id, [], "not ours", {TAG_INSTANCE_ID: "i-x"})
    untimed = emulator.ec2.create_eni(
        context.subnet_id,
        [],
        f"aws-K8S-{context.instance_id}",
        {TAG_INSTANCE_ID: "i-x", "cluster.k8s.amazonaws.com/name": "demo"},
    )
    advance(emulator, 3600)
    assert cycle.cleanup_leaked_enis() == []
    [retagged] = emulator.ec2.describe_enis([untimed.eni_id])
    assert TAG_CREATED_AT in retagged.tags
    assert {attached.eni_id, foreign.eni_id} <= {e.eni_id for e in emulator.ec2.describe_enis()}
