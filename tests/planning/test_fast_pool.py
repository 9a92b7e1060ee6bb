"""The simulator's NodePool makes the same choices as the core Datastore.

Both get the same random operations (ENIs and CIDRs of both kinds, assign, release, removals,
time passing); after every step their views for ``plan_scaling`` and the address of every pod
must be identical, and the pool's counters must match its views.
"""

from __future__ import annotations

import math
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.planning.conftest import EXAMPLES
from vpccni.core.datastore import Datastore, DatastoreError
from vpccni.core.model import EniInfo, Mode, PodKey, PodMeta
from vpccni.core.wake import counts_of
from vpccni.sim.fast_pool import NodePool

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("eni"), st.booleans()),
        st.tuples(st.just("cidr"), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("assign"), st.integers(0, 40)),
        st.tuples(st.just("release"), st.integers(0, 40)),
        st.tuples(st.just("remove-cidr"), st.integers(0, 5), st.integers(0, 20)),
        st.tuples(st.just("remove-eni"), st.integers(0, 5)),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 1.0, 10.0, 29.0, 30.0, 31.0])),
    ),
    max_size=80,
)


class Twins:
    """A Datastore and a NodePool driven in lockstep."""

    def __init__(self, mode: Mode, cooldown: int) -> None:
        self.mode, self.cooldown = mode, cooldown
        self.store = Datastore(mode, cooldown)
        self.pool = NodePool(mode, cooldown)
        self.enis: list[str] = []
        self.created = 0
        self.singles = int(IPv4Address("10.0.0.10"))
        self.blocks = int(IPv4Address("10.1.0.0"))
        self.now = 0.0

    def eni(self, excluded: bool) -> None:
        first = self.created == 0
        info = EniInfo(
            f"eni-{self.created}", self.created, primary=first, excluded=excluded and not first
        )
        self.created += 1
        self.store.add_eni(info)
        self.pool.add_eni(info)
        self.enis.append(info.eni_id)

    def cidr(self, which: int, prefix: bool) -> None:
        eni = self.enis[which % len(self.enis)]
        if prefix:
            network = IPv4Network((self.blocks, 28))
            self.blocks += 16
        else:
            network = IPv4Network((self.singles, 32))
            self.singles += 1
        self.store.add_cidr(eni, network)
        self.pool.add_cidr(eni, network)

    def assign(self, pod: int) -> None:
        try:
            assignment, _ = self.store.assign(PodKey("n", f"p{pod}", "eth0"), PodMeta(), self.now)
            expected: int | None = int(assignment.address)
        except DatastoreError:
            expected = None
        assert self.pool.assign(pod, self.now) == (expected is not None)
        assert self.pool.address_of(pod) == expected

    def release(self, pod: int) -> None:
        released = self.store.release(PodKey("n", f"p{pod}", "eth0"), self.now)
        assert self.pool.release(pod, self.now) == (released is not None)

    def remove_cidr(self, which: int, pick: int) -> None:
        eni = self.enis[which % len(self.enis)]
        cidrs = [c for v in self.store.views(self.now) if v.eni_id == eni for c in v.cidrs]
        if not cidrs:
            return
        text = cidrs[pick % len(cidrs)].cidr
        try:
            self.store.remove_cidr(eni, IPv4Network(text))
            removed = True
        except DatastoreError:
            removed = False
        assert self.pool.remove_cidr(eni, text) == removed

    def remove_eni(self, which: int) -> None:
        eni = self.enis[which % len(self.enis)]
        try:
            self.store.remove_eni(eni)
            removed = True
        except DatastoreError:
            removed = False
        assert self.pool.remove_eni(eni) == removed
        if removed:
            self.enis.remove(eni)

    def check(self) -> None:
        views = self.store.views(self.now)
        assert self.pool.views(self.now) == views
        for eni, view in zip(self.pool.ordered, views, strict=True):
            counts = counts_of(view, self.mode)
            mine = (
                eni.cidr_count,
                eni.assigned,
                eni.active_size,
                eni.active_assigned,
                eni.prefix_count,
                eni.free_prefixes,
            )
            assert mine == (
                counts.cidr_count,
                counts.assigned,
                counts.active_size,
                counts.active_assigned,
                counts.prefix_count,
                counts.free_prefixes,
            )
            cooling = sum(c.cooling for c in view.cidrs) > 0
            released = eni.last_release > -math.inf
            assert cooling == (released and self.now - eni.last_release <= self.cooldown)


@settings(max_examples=EXAMPLES, deadline=None)
@given(mode=st.sampled_from(list(Mode)), cooldown=st.sampled_from([0, 30]), ops=OPS)
def test_nodepool_matches_the_datastore(mode: Mode, cooldown: int, ops: list[tuple]) -> None:
    twins = Twins(mode, cooldown)
    for kind, *args in ops:
        if kind == "eni":
            twins.eni(*args)
        elif kind == "wait":
            twins.now += args[0]
        elif kind == "assign":
            twins.assign(*args)
        elif kind == "release":
            twins.release(*args)
        elif twins.enis:
            {"cidr": twins.cidr, "remove-cidr": twins.remove_cidr, "remove-eni": twins.remove_eni}[
                kind
            ](*args)
        twins.check()
