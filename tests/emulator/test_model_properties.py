"""Property tests of the model's address bookkeeping under random operation sequences.

Whatever sequence of create / assign / unassign / attach / detach / delete runs (refusals
included): addresses are unique subnet-wide and never reserved, prefixes are /28-aligned and
disjoint from each other and from single addresses, AvailableIpAddressCount matches, per-ENI
slots stay within the instance type's limit, and a refused call changes nothing.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.network import LaunchRequest

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "assign",
                "assign_prefix",
                "unassign",
                "attach",
                "detach",
                "delete",
                "explicit",
            ]
        ),
        st.integers(min_value=0, max_value=20),
        st.integers(min_value=0, max_value=9),
    ),
    min_size=5,
    max_size=40,
)


def snapshot(model: Ec2Model) -> tuple[object, ...]:
    store = model.store
    return (
        dict(store.enis),
        {sid: (pool.singles, pool.prefixes, pool.available) for sid, pool in store.pools.items()},
    )


def step(model: Ec2Model, subnet: str, instance: str, op: tuple[str, int, int], now: float) -> None:
    name, pick, count = op
    enis = sorted(e for e in model.store.enis if e != model.store.instance(instance).primary_eni_id)
    target = enis[pick % len(enis)] if enis else None
    if name == "create":
        model.create_eni(
            now, subnet, AddressRequest(address_count=count % 4, prefix_count=count // 4)
        )
    elif name == "explicit":
        model.create_eni(now, subnet, primary_ip=f"10.0.2.{pick * 3 % 64}")
    elif target is None:
        return
    elif name == "assign":
        model.assign(now, target, AddressRequest(address_count=max(count, 1)))
    elif name == "assign_prefix":
        model.assign(now, target, AddressRequest(prefix_count=max(count % 3, 1)))
    elif name == "unassign":
        eni = model.store.eni(target)
        model.unassign(now, target, eni.secondary_ips[: count % 3], eni.prefixes[: count % 2])
    elif name == "attach":
        model.attach_eni(now, target, instance, 1 + pick % 3)
    elif name == "detach":
        attachment = model.store.eni(target).attachment
        if attachment is not None:
            model.detach_eni(now, attachment.attachment_id)
    elif name == "delete":
        model.delete_eni(now, target)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS, scatter=st.booleans(), seed=st.integers(0, 1000))
def test_address_invariants_hold_and_refusals_change_nothing(
    table: InstanceTable, operations: list[tuple[str, int, int]], scatter: bool, seed: int
) -> None:
    model = Ec2Model(table, rng=random.Random(seed) if scatter else None)
    vpc = model.create_vpc(0, "10.0.0.0/16")
    subnet = model.create_subnet(0, vpc.vpc_id, "10.0.2.0/26").subnet_id
    _, [instance] = model.run_instances(0, LaunchRequest("m5.large", subnet))
    limit = table.get("m5.large").ipv4_per_eni
    for now, op in enumerate(operations, start=1):
        before = snapshot(model)
        try:
            step(model, subnet, instance.instance_id, op, float(now))
        except Ec2Error:
            assert snapshot(model) == before, op
        assert model.invariant_violations() == [], op
        for eni in model.store.enis.values():
            if eni.attachment is not None:
                assert eni.slots_used <= limit
        attached = [e for e in model.store.enis.values() if e.attachment is not None]
        assert len(attached) <= table.get("m5.large").enis
