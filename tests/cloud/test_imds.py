"""The IMDSv2 adapter against the emulator's per-node metadata service."""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from ipaddress import IPv4Network

import pytest

from tests.cloud.conftest import Backend, VirtualClock, advance, backend_for, start_emulator
from vpccni.adapters.imds_http import ImdsV2
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.cloud import CloudError
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
