"""The IMDSv2 adapter against the emulator's per-node metadata service."""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Network

import pytest

from tests.cloud.conftest import Backend, VirtualClock, advance, backend_for, start_emulator
from vpccni.adapters.imds_http import ImdsV2
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.aws_types import CloudError, EniDescription, ImdsInterface
from vpccni.core.limits import InstanceTable


def setup_node(backend: Backend) -> tuple[NodeContext, ImdsV2]:
    vpc, subnet = backend.network()
    instance_id = backend.launch(subnet)
    assert backend.server is not None
    return (
        NodeContext(instance_id, vpc, subnet, ()),
        ImdsV2(backend.server.imds_endpoint(instance_id)),
    )


def test_identity_and_interfaces_match_ec2(emulator: Backend) -> None:
    context, imds = setup_node(emulator)
    identity = imds.identity()
    instance = emulator.ec2.describe_instance(context.instance_id)
    assert (identity.instance_id, identity.instance_type) == (context.instance_id, "c5.large")
    assert identity.local_ipv4 == instance.private_ip
    assert identity.region == "us-west-2"
    assert identity.availability_zone.startswith("us-west-2")

    eni = EniLifecycle(emulator.ec2, VirtualClock(), context, random.Random(1)).allocate_eni(
        secondary_ips=4
    )
    by_id = {i.eni_id: i for i in imds.interfaces()}
    assert eni.eni_id in by_id
    listed = by_id[eni.eni_id]
    assert listed.device_number == 1
    assert listed.local_ipv4s == (eni.primary_ip, *eni.secondary_ips)
    assert listed.subnet_id == context.subnet_id
    assert listed.vpc_id == context.vpc_id
    assert listed.subnet_cidr == IPv4Network("10.0.1.0/24")
    assert IPv4Network("10.0.0.0/16") in listed.vpc_cidrs
    primary = [i for i in by_id.values() if i.device_number == 0]
    assert [p.primary_ip for p in primary] == [instance.private_ip]


def test_imds_lags_ec2_by_the_configured_delay(table: InstanceTable) -> None:
    server = start_emulator(table, imds_lag=30.0)
    try:
        backend = backend_for(server)
        context, imds = setup_node(backend)
        cycle = EniLifecycle(backend.ec2, VirtualClock(), context, random.Random(1))
        eni = cycle.allocate_eni(secondary_ips=2)
        assert eni.eni_id not in {i.eni_id for i in imds.interfaces()}
        advance(backend, 31)
        assert eni.eni_id in {i.eni_id for i in imds.interfaces()}
    finally:
        server.stop()


def test_unreachable_imds_is_a_clear_error() -> None:
    with pytest.raises(CloudError, match="AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        ImdsV2("http://127.0.0.1:9/", timeout_seconds=1).identity()


def test_token_is_required(emulator: Backend) -> None:
    context, imds = setup_node(emulator)
    request = urllib.request.Request(imds.endpoint + "latest/meta-data/instance-id")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert imds.get("meta-data/instance-id") == context.instance_id


# -- partial views (issue #12 item 5): each through the adapter, against the running emulator --

MACS = "meta-data/network/interfaces/macs/"


def attached_eni(backend: Backend, instance_id: str, subnet_id: str, **addresses: int) -> str:
    """A new ENI (boto3 keyword arguments for its addresses) attached at device index 1."""
    client = backend.client
    eni = client.create_network_interface(SubnetId=subnet_id, **addresses)["NetworkInterface"]
    eni_id = str(eni["NetworkInterfaceId"])
    client.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1
    )
    return eni_id


def listed(imds: ImdsV2, eni_id: str) -> ImdsInterface | None:
    return next((i for i in imds.interfaces() if i.eni_id == eni_id), None)


@contextmanager
def node_with(
    table: InstanceTable, **knobs: float
) -> Iterator[tuple[Backend, NodeContext, ImdsV2]]:
    """An emulator with ``knobs`` and one launched node: (backend, node, the node's IMDS)."""
    server = start_emulator(table, **knobs)
    try:
        backend = backend_for(server)
        yield (backend, *setup_node(backend))
    finally:
        server.stop()


def detached_eni(backend: Backend, context: NodeContext) -> EniDescription:
    """A new ENI attached, then detached at once; as it was while attached."""
    eni_id = attached_eni(backend, context.instance_id, context.subnet_id)
    eni = backend.ec2.describe_enis([eni_id])[0]
    assert eni.attachment is not None
    backend.ec2.detach_eni(eni.attachment.attachment_id)
    assert backend.ec2.describe_enis([eni_id])[0].attachment is None
    return eni


def test_a_new_eni_is_listed_before_its_addresses_and_prefixes(table: InstanceTable) -> None:
    with node_with(table, imds_addresses_delay=10.0) as (backend, context, imds):
        with_ips = attached_eni(
            backend, context.instance_id, context.subnet_id, SecondaryPrivateIpAddressCount=3
        )
        early = listed(imds, with_ips)
        assert early is not None
        assert len(early.local_ipv4s) == 1  # the ENI's primary only (upstream issue #1148)
        assert early.device_number == 1
        eni = backend.ec2.describe_enis([with_ips])[0]
        assert early.local_ipv4s == (eni.primary_ip,)

        advance(backend, 5)
        assert eni.attachment is not None
        backend.ec2.detach_eni(eni.attachment.attachment_id)
        with_prefix = attached_eni(
            backend, context.instance_id, context.subnet_id, Ipv4PrefixCount=1
        )
        base = f"{MACS}{backend.ec2.describe_enis([with_prefix])[0].mac}/"
        assert imds.get_optional(base + "ipv4-prefix") is None  # absent, as IMDS does
        advance(backend, 11)
        later = listed(imds, with_prefix)
        assert later is not None
        assert len(later.ipv4_prefixes) == 1


def test_a_detached_enis_mac_lingers_without_a_device_number(table: InstanceTable) -> None:
    with node_with(table, imds_stale_mac=10.0) as (backend, context, imds):
        eni = detached_eni(backend, context)
        macs = [m.strip("/") for m in imds.get(MACS).split()]
        assert eni.mac in macs  # still listed (upstream PR #194) ...
        assert imds.get_optional(f"{MACS}{eni.mac}/device-number") is None  # ... but 404 here
        assert imds.get(f"{MACS}{eni.mac}/interface-id") == eni.eni_id
        advance(backend, 11)
        assert eni.mac not in imds.get(MACS)
        assert eni.eni_id not in {i.eni_id for i in imds.interfaces()}


def test_the_adapter_skips_a_lingering_mac(table: InstanceTable) -> None:
    with node_with(table, imds_stale_mac=10.0) as (backend, context, imds):
        eni = detached_eni(backend, context)
        assert eni.eni_id not in {i.eni_id for i in imds.interfaces()}


def test_released_addresses_and_prefixes_linger_after_an_unassign(table: InstanceTable) -> None:
    with node_with(table, imds_stale_addresses=10.0) as (backend, context, imds):
        eni_id = attached_eni(
            backend, context.instance_id, context.subnet_id, SecondaryPrivateIpAddressCount=4
        )
        prefix = backend.ec2.assign_prefixes(eni_id, 1)[0]
        before = backend.ec2.describe_enis([eni_id])[0]
        released = before.secondary_ips[:2]
        backend.ec2.unassign_ips(eni_id, released)
        backend.ec2.unassign_prefixes(eni_id, [prefix])
        truth = backend.ec2.describe_enis([eni_id])[0]
        assert not set(released) & set(truth.secondary_ips)
        assert truth.prefixes == ()

        stale = listed(imds, eni_id)
        assert stale is not None  # upstream issue #3019: IMDS still lists what was released
        assert set(released) <= set(stale.local_ipv4s)
        assert stale.local_ipv4s[0] == truth.primary_ip
        assert stale.ipv4_prefixes == (prefix,)
        advance(backend, 11)
        fresh = listed(imds, eni_id)
        assert fresh is not None
        assert fresh.local_ipv4s == (truth.primary_ip, *truth.secondary_ips)
        assert fresh.ipv4_prefixes == ()
