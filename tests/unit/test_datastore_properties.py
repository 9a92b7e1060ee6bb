"""Property tests: random assign / release / clock / scaling sequences never break the datastore.

Checked after every step: no address is held twice, a handed-out address was never cooling,
idempotent assign returns the same address, applying the decided actions converges to a state
where no further growth is decided, and a datastore restored from its checkpoint state is equal.
The number of examples is ``VPCCNI_PROPERTY_EXAMPLES`` (CI default 60; run more on demand).
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vpccni.core.config import IpamConfig
from vpccni.core.datastore import Datastore, NoAvailableAddress
from vpccni.core.model import Assignment, EniInfo, PodKey, PodMeta
from vpccni.core.pool_rules import NodeLimits
from vpccni.core.scaling import Action, PoolTiming, plan_scaling

EXAMPLES = int(os.environ.get("VPCCNI_PROPERTY_EXAMPLES", "60"))
LIMITS = NodeLimits(max_enis=3, ipv4_per_eni=6, max_pods=60)
CONFIGS = [
    IpamConfig(),
    IpamConfig(warm_ip_target=3, minimum_ip_target=5),
    IpamConfig(warm_eni_target=0, warm_ip_target=2),
    IpamConfig(prefix_delegation=True),
    IpamConfig(prefix_delegation=True, warm_prefix_target=2),
    IpamConfig(prefix_delegation=True, warm_ip_target=5, minimum_ip_target=20),
    IpamConfig(ip_cooldown_seconds=0, warm_ip_target=1),
]


class FakeCloud:
    """Hands out unique addresses and aligned /28s, as EC2 would; no limits of its own."""

    def __init__(self) -> None:
        self.next_ip = int(IPv4Address("10.0.0.10"))
        self.next_prefix = int(IPv4Address("10.1.0.0"))
        self.next_device = 1

    def cidr(self, prefix: bool) -> IPv4Network:
        if prefix:
            self.next_prefix += 16
            return IPv4Network((self.next_prefix - 16, 28))
        self.next_ip += 1
        return IPv4Network((self.next_ip - 1, 32))


def apply(store: Datastore, cloud: FakeCloud, actions: tuple[Action, ...], now: float) -> None:
    """Execute decided actions against the datastore the way the daemon's executor will."""
    prefix = store.mode.uses_prefixes
    for action in actions:
        if action.action in ("assign-ips", "assign-prefixes"):
            assert action.eni is not None
            for _ in range(action.count):
                store.add_cidr(action.eni, cloud.cidr(prefix))
        elif action.action == "create-eni":
            eni_id = f"eni-{cloud.next_device}"
            store.add_eni(EniInfo(eni_id, cloud.next_device, created_at=now))
            cloud.next_device += 1
            for _ in range(action.count):
                store.add_cidr(eni_id, cloud.cidr(prefix))
        elif action.action in ("release-ips", "release-prefixes"):
            assert action.eni is not None
            for cidr in action.cidrs:
                assert store.remove_cidr(action.eni, IPv4Network(cidr)) == []
        else:
            assert action.eni is not None
            assert store.remove_eni(action.eni) == []


class DatastoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.cloud = FakeCloud()
        self.config = IpamConfig()
        self.store = Datastore(self.config.mode, self.config.ip_cooldown_seconds)
        self.store.add_eni(EniInfo("eni-0", 0, primary=True, created_at=self.now))
        self.last_release: float | None = None
        self.configured = False

    @rule(choice=st.integers(min_value=0, max_value=len(CONFIGS) - 1))
    def configure(self, choice: int) -> None:
        if self.configured:
            return
        self.configured = True
        self.config = CONFIGS[choice]
        self.store = Datastore(self.config.mode, self.config.ip_cooldown_seconds)
        self.store.add_eni(EniInfo("eni-0", 0, primary=True, created_at=self.now))

    @rule(pod=st.integers(min_value=0, max_value=40))
    def assign(self, pod: int) -> None:
        key = PodKey("aws-cni", f"c{pod}", "eth0")
        before = self.store.lookup(key)
        cooling = {a for a in self._all_addresses() if self.store.is_cooling(a, self.now)}
        try:
            assignment, created = self.store.assign(key, PodMeta("default", f"p{pod}"), self.now)
        except NoAvailableAddress:
            assert before is None
            return
        if before is not None:
            assert (assignment, created) == (before, False)
        else:
            assert created
            assert assignment.address not in cooling

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        held = self.store.assignments()
        if not held:
            return
        chosen = data.draw(st.sampled_from(held))
        released = self.store.release(chosen.key, self.now)
        assert released == chosen
        assert self.store.is_cooling(chosen.address, self.now)
        assert self.store.lookup(chosen.key) is None
        assert self.store.release(chosen.key, self.now) is None

    @rule(pod=st.integers(min_value=0, max_value=40))
    def release_unknown_is_a_no_op(self, pod: int) -> None:
        key = PodKey("aws-cni", f"c{pod}", "eth0")
        if self.store.lookup(key) is None:
            assert self.store.release(key, self.now) is None

    @rule(seconds=st.sampled_from([1.0, 5.0, 29.0, 31.0, 61.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def tick(self) -> None:
        decision = self._plan()
        apply(self.store, self.cloud, decision.actions, self.now)
        if any(a.action.startswith("release") for a in decision.actions):
            self.last_release = self.now

    @rule()
    def growth_converges(self) -> None:
        for _ in range(3 * LIMITS.max_enis * LIMITS.ipv4_per_eni):
            decision = self._plan()
            grow = tuple(a for a in decision.actions if a.action.startswith(("assign", "create")))
            if not grow:
                return
            apply(self.store, self.cloud, grow, self.now)
        pytest.fail("applying the decided growth never reached a state without more growth")

    @rule()
    def checkpoint_round_trip(self) -> None:
        state = self.store.checkpoint_state()
        copy = Datastore(self.config.mode, self.config.ip_cooldown_seconds)
        for view in self.store.views(self.now):
            copy.add_eni(view.info)
            for cidr in view.cidrs:
                copy.add_cidr(view.eni_id, IPv4Network(cidr.cidr))
        assert copy.restore(state) == []
        assert copy.checkpoint_state() == state
        assert copy.views(self.now) == self.store.views(self.now)

    @invariant()
    def consistent(self) -> None:
        self.store.check_invariants(self.now)
        held = [a.address for a in self.store.assignments()]
        assert len(held) == len(set(held))

    def _plan(self):  # type: ignore[no-untyped-def]
        timing = PoolTiming(last_release_at=self.last_release)
        return plan_scaling(self.store.views(self.now), self.config, LIMITS, self.now, timing)

    def _all_addresses(self) -> list[IPv4Address]:
        return [
            address
            for view in self.store.views(self.now)
            for cidr in view.cidrs
            for address in IPv4Network(cidr.cidr)
        ]


DatastoreMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=60, deadline=None
)
test_datastore_state_machine = DatastoreMachine.TestCase


def test_assignments_are_packed_onto_the_busiest_eni() -> None:
    store = Datastore(IpamConfig().mode, 30)
    store.add_eni(EniInfo("eni-a", 0, primary=True))
    store.add_eni(EniInfo("eni-b", 1))
    for offset in range(3):
        store.add_cidr("eni-a", IPv4Network(f"10.0.0.{10 + offset}/32"))
        store.add_cidr("eni-b", IPv4Network(f"10.0.1.{10 + offset}/32"))
    for pod in range(4):
        store.assign(PodKey("n", f"c{pod}", "eth0"), PodMeta(), 0.0)
    # Three pods filled eni-a, the fourth went to eni-b. Drain eni-a: once the cooldown is
    # over, new pods go to eni-b, the busiest ENI, not to eni-a with its lower device index,
    # so that eni-a can become freeable.
    for pod in range(3):
        store.release(PodKey("n", f"c{pod}", "eth0"), 0.0)
    placed, _ = store.assign(PodKey("n", "new", "eth0"), PodMeta(), 60.0)
    assert str(placed.address) == "10.0.1.11"


def test_prefix_mode_uses_all_16_addresses_and_the_fullest_prefix_first() -> None:
    store = Datastore(IpamConfig(prefix_delegation=True).mode, 30)
    store.add_eni(EniInfo("eni-a", 0, primary=True))
    store.add_cidr("eni-a", IPv4Network("10.1.0.0/28"))
    store.add_cidr("eni-a", IPv4Network("10.1.0.16/28"))
    addresses = [
        store.assign(PodKey("n", f"c{i}", "eth0"), PodMeta(), 0.0)[0].address for i in range(17)
    ]
    assert str(addresses[0]) == "10.1.0.0"
    assert str(addresses[15]) == "10.1.0.15"
    assert str(addresses[16]) == "10.1.0.16"


def test_cooling_address_is_not_reused_until_the_period_ends() -> None:
    store = Datastore(IpamConfig().mode, 30)
    store.add_eni(EniInfo("eni-a", 0, primary=True))
    store.add_cidr("eni-a", IPv4Network("10.0.0.10/32"))
    key = PodKey("n", "c1", "eth0")
    store.assign(key, PodMeta(), 0.0)
    store.release(key, 10.0)
    with pytest.raises(NoAvailableAddress, match="retry shortly"):
        store.assign(PodKey("n", "c2", "eth0"), PodMeta(), 40.0)
    again, _ = store.assign(PodKey("n", "c2", "eth0"), PodMeta(), 40.5)
    assert str(again.address) == "10.0.0.10"


def test_restore_drops_stale_and_refuses_conflicts() -> None:
    store = Datastore(IpamConfig().mode, 30)
    store.add_eni(EniInfo("eni-a", 0, primary=True))
    store.add_cidr("eni-a", IPv4Network("10.0.0.10/32"))
    kept, _ = store.assign(PodKey("n", "c1", "eth0"), PodMeta(), 0.0)
    state = store.checkpoint_state()
    stale = Assignment(PodKey("n", "gone", "eth0"), IPv4Address("10.9.9.9"), PodMeta(), 0.0)
    fresh = Datastore(IpamConfig().mode, 30)
    fresh.add_eni(EniInfo("eni-a", 0, primary=True))
    fresh.add_cidr("eni-a", IPv4Network("10.0.0.10/32"))
    state.assignments[stale.key] = stale  # type: ignore[index]
    assert fresh.restore(state) == [stale]
    assert fresh.lookup(kept.key) == kept
