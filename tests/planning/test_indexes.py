"""The simulator's indexed subnet pool and store answer exactly as the emulator's originals."""

from __future__ import annotations

import random
from ipaddress import IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.planning.conftest import EXAMPLES
from vpccni.emulator.addressing import SubnetPool
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.network import LaunchRequest
from vpccni.sim.indexes import IndexedStore, IndexedSubnetPool

OPS = st.lists(
    st.tuples(st.sampled_from(["addresses", "prefixes", "release"]), st.integers(0, 20)),
    max_size=60,
)


def choose(pool: SubnetPool, kind: str, count: int) -> list[int] | str:
    try:
        if kind == "addresses":
            return pool.choose_addresses(count)
        return pool.choose_prefixes(count)
    except Ec2Error as error:
        return error.code


@settings(max_examples=EXAMPLES, deadline=None)
@given(size=st.sampled_from([24, 26, 28]), ops=OPS, seed=st.integers(0, 1000))
def test_indexed_subnet_pool_chooses_like_the_original(size: int, ops: list, seed: int) -> None:
    cidr = IPv4Network(f"10.0.0.0/{size}")
    original, indexed = SubnetPool(cidr), IndexedSubnetPool(cidr)
    rng = random.Random(seed)
    singles: list[int] = []
    prefixes: list[int] = []
    for kind, count in ops:
        if kind == "release":
            if singles and (not prefixes or rng.random() < 0.5):
                address = singles.pop(rng.randrange(len(singles)))
                original.release_address(address)
                indexed.release_address(address)
            elif prefixes:
                base = prefixes.pop(rng.randrange(len(prefixes)))
                original.release_prefix(base)
                indexed.release_prefix(base)
            continue
        want = choose(original, kind, count)
        assert choose(indexed, kind, count) == want
        if isinstance(want, list):
            for value in want:
                for pool in (original, indexed):
                    if kind == "addresses":
                        pool.take_address(value)
                    else:
                        pool.take_prefix(value)
                (singles if kind == "addresses" else prefixes).append(value)
        assert indexed.available == original.available


def test_indexed_store_lists_an_instances_enis_like_the_original(table: object) -> None:
    models = [Ec2Model(table), Ec2Model(table)]  # type: ignore[arg-type]
    indexed = IndexedStore(models[1].store.limits, "us-west-2", None)
    models[1].store = indexed
    found = []
    for model in models:
        vpc = model.create_vpc(0.0, "10.0.0.0/16")
        subnet = model.create_subnet(0.0, vpc.vpc_id, "10.0.0.0/20")
        _, instances = model.run_instances(0.0, LaunchRequest("m5.large", subnet.subnet_id, 2))
        a, b = (i.instance_id for i in instances)
        enis = [
            model.create_eni(1.0, subnet.subnet_id, AddressRequest(address_count=2))
            for _ in range(4)
        ]
        model.attach_eni(2.0, enis[0].eni_id, a, 1)
        attachment = model.attach_eni(2.0, enis[1].eni_id, a, 2)
        model.attach_eni(2.0, enis[2].eni_id, b, 1)
        model.detach_eni(3.0, attachment.attachment_id)
        model.delete_eni(4.0, enis[1].eni_id)
        model.attach_eni(5.0, enis[3].eni_id, a, 2)
        found.append([[e.eni_id for e in model.store.enis_of(i)] for i in (a, b, "i-none")])
    assert found[0] == found[1]
    assert len(found[0][0]) == 3


def test_indexed_pool_refuses_like_the_original() -> None:
    cidr = IPv4Network("10.0.0.0/28")
    for pool in (SubnetPool(cidr), IndexedSubnetPool(cidr)):
        assert pool.choose_addresses(11) == list(
            range(int(cidr.network_address) + 4, int(cidr.network_address) + 15)
        )
        with pytest.raises(Ec2Error) as error:
            pool.choose_addresses(12)
        assert error.value.code == "InsufficientFreeAddressesInSubnet"
        with pytest.raises(Ec2Error) as error:
            pool.choose_prefixes(1)
        assert error.value.code == "InsufficientCidrBlocks"
