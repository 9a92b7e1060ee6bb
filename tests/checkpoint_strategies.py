"""Hypothesis strategies and builders for IPAM checkpoint values, shared by unit and file tests."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

from hypothesis import strategies as st

from vpccni.core.checkpoint import AssignRecord, CheckpointState, Record, ReleaseRecord
from vpccni.core.model import Assignment, PodKey, PodMeta

PROPERTY_EXAMPLES = int(os.environ.get("VPCCNI_PROPERTY_EXAMPLES", "200"))

texts = st.text(max_size=12)
keys = st.builds(PodKey, texts, texts, texts)
addresses = st.integers(0, 2**32 - 1).map(IPv4Address)
times = st.floats(allow_nan=False, allow_infinity=False)
metas = st.builds(PodMeta, texts, texts)
assignments = st.builds(Assignment, keys, addresses, metas, times)


@st.composite
def states(draw: st.DrawFn) -> CheckpointState:
    """Any consistent state: unique keys, unique addresses, cooling addresses not assigned."""
    drawn = draw(
        st.lists(assignments, max_size=12, unique_by=(lambda a: a.key, lambda a: a.address))
    )
    held = {a.address for a in drawn}
    cooling = draw(st.dictionaries(addresses.filter(lambda a: a not in held), times, max_size=12))
    return CheckpointState({a.key: a for a in drawn}, cooling)


records: st.SearchStrategy[Record] = st.one_of(
    st.builds(AssignRecord, assignments), st.builds(ReleaseRecord, keys, addresses, times)
)


def assign(container: str, address: str, at: float = 1.5) -> AssignRecord:
    """An assign record for pod interface aws-cni/<container>/eth0."""
    key = PodKey("aws-cni", container, "eth0")
    return AssignRecord(Assignment(key, IPv4Address(address), PodMeta("default", container), at))


def release(container: str, address: str, at: float = 2.5) -> ReleaseRecord:
    """A release record for pod interface aws-cni/<container>/eth0."""
    return ReleaseRecord(PodKey("aws-cni", container, "eth0"), IPv4Address(address), at)
