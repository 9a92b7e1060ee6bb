"""The checkpoint codec: records change state as documented, encodings round-trip exactly, and
every torn or damaged byte is noticed with an error that names the file and line."""

from __future__ import annotations

import math
import zlib
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.checkpoint_strategies import (
    PROPERTY_EXAMPLES,
    assign,
    records,
    release,
    states,
)
from vpccni.core.checkpoint import (
    AssignRecord,
    CheckpointCorrupt,
    CheckpointState,
    JournalHeader,
    Record,
    RecordConflict,
    Snapshot,
    apply_record,
    decode_journal,
    decode_record,
    decode_snapshot,
    encode_journal_header,
    encode_record,
    encode_snapshot,
    replay_journal,
)
from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.errors import VpccniError


def framed(kind: str, payload: bytes) -> bytes:
    """A line framed as docs/checkpoint.md describes, built independently of the codec."""
    return b'{"crc32":"%08x","%s":%s}\n' % (zlib.crc32(payload), kind.encode(), payload)


def journal_bytes(generation: int, *journal: Record, seq: int = 0) -> bytes:
    header = encode_journal_header(JournalHeader(generation, "lineage-1", seq, "boot-1"))
    return header + b"".join(encode_record(r, seq + 1 + i) for i, r in enumerate(journal))


def fold(*journal: Record) -> CheckpointState:
    state = CheckpointState.empty()
    for record in journal:
        state = apply_record(state, record)
    return state


# -- state transitions --------------------------------------------------------------------------


def test_assign_takes_the_address_out_of_cooldown() -> None:
    state = fold(assign("a", "10.0.0.1"), release("a", "10.0.0.1", at=7.0))
    assert state.cooldowns == {IPv4Address("10.0.0.1"): 7.0}
    after = apply_record(state, assign("b", "10.0.0.1"))
    assert after.cooldowns == {}
    assert after.assignments[PodKey("aws-cni", "b", "eth0")].address == IPv4Address("10.0.0.1")
    assert state.cooldowns == {IPv4Address("10.0.0.1"): 7.0}, "apply_record must not mutate"


def test_release_removes_the_assignment_and_starts_cooldown() -> None:
    state = fold(assign("a", "10.0.0.1"), assign("b", "10.0.0.2"), release("a", "10.0.0.1", 9.0))
    assert set(state.assignments) == {PodKey("aws-cni", "b", "eth0")}
    assert state.cooldowns == {IPv4Address("10.0.0.1"): 9.0}


@pytest.mark.parametrize(
    ("before", "record", "words"),
    [
        ((), release("ghost", "10.0.0.1"), "holds no address"),
        ((assign("a", "10.0.0.1"),), release("a", "10.0.0.2"), "it holds 10.0.0.1"),
        ((assign("a", "10.0.0.1"),), assign("a", "10.0.0.2"), "already holds 10.0.0.1"),
        ((assign("a", "10.0.0.1"),), assign("b", "10.0.0.1"), "held by aws-cni/a/eth0"),
    ],
)
def test_records_that_do_not_follow_are_refused(
    before: tuple[Record, ...], record: Record, words: str
) -> None:
    state = fold(*before)
    with pytest.raises(RecordConflict, match=words) as caught:
        apply_record(state, record)
    assert isinstance(caught.value, VpccniError)
    assert "not changed" in str(caught.value)


def test_replaying_a_release_of_an_unknown_key_is_corruption_with_its_line() -> None:
    data = journal_bytes(0, assign("a", "10.0.0.1"), release("b", "10.0.0.9"))
    journal = decode_journal(data, source="/var/lib/vpccni/ipam.journal")
    with pytest.raises(CheckpointCorrupt) as caught:
        replay_journal(CheckpointState.empty(), journal, source="/var/lib/vpccni/ipam.journal")
    assert caught.value.line == 3
    assert "/var/lib/vpccni/ipam.journal line 3" in str(caught.value)


def test_state_equality_and_empty() -> None:
    assert CheckpointState.empty() == CheckpointState()
    assert fold(assign("a", "10.0.0.1")) == fold(assign("a", "10.0.0.1"))
    assert fold(assign("a", "10.0.0.1")) != fold(assign("a", "10.0.0.2"))


# -- round trips --------------------------------------------------------------------------------


@settings(max_examples=PROPERTY_EXAMPLES)
@given(states(), st.integers(0, 2**63), st.integers(0, 2**63), st.text(max_size=20))
def test_snapshot_round_trips(
    state: CheckpointState, generation: int, seq: int, lineage: str
) -> None:
    snapshot = Snapshot(generation, state, seq, lineage)
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


@settings(max_examples=PROPERTY_EXAMPLES)
@given(records)
def test_record_round_trips(record: Record) -> None:
    line = encode_record(record, 1)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_record(line) == record


@settings(max_examples=PROPERTY_EXAMPLES)
@given(st.lists(records, max_size=8), st.integers(0, 1000), st.integers(0, 10**12))
def test_journal_round_trips(journal: list[Record], generation: int, seq: int) -> None:
    data = journal_bytes(generation, *journal, seq=seq)
    decoded = decode_journal(data)
    assert (decoded.generation, decoded.records) == (generation, tuple(journal))
    assert (decoded.header.seq, decoded.last_seq) == (seq, seq + len(journal))
    assert (decoded.valid_length, decoded.torn_bytes) == (len(data), 0)


@pytest.mark.parametrize(
    "seconds",
    [0.1, 1e-300, 5e-324, -0.0, 1.7976931348623157e308, 1700000000.123456789, 2.0**53 + 1],
)
def test_floats_round_trip_bit_for_bit(seconds: float) -> None:
    record = assign("a", "10.0.0.1", at=seconds)
    decoded = decode_record(encode_record(record, 1))
    assert isinstance(decoded, AssignRecord)
    assert decoded.assignment.assigned_at.hex() == float(seconds).hex()
    state = fold(record, release("a", "10.0.0.1", at=seconds))
    cooled = decode_snapshot(encode_snapshot(Snapshot(1, state))).state.cooldowns
    assert math.copysign(1.0, cooled[IPv4Address("10.0.0.1")]) == math.copysign(1.0, seconds)


def test_non_finite_times_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_record(assign("a", "10.0.0.1", at=math.nan), 1)


# -- damage -------------------------------------------------------------------------------------


@settings(max_examples=PROPERTY_EXAMPLES)
@given(records, st.data())
def test_any_single_bit_flip_in_a_record_line_is_noticed(
    record: Record, data: st.DataObject
) -> None:
    line = bytearray(encode_record(record, 1))
    position = data.draw(st.integers(0, len(line) - 1))
    line[position] ^= 1 << data.draw(st.integers(0, 7))
    header = encode_journal_header(JournalHeader(0, "l", 0, "b"))
    middle = header + bytes(line) + encode_record(assign("z", "192.0.2.1"), 2)
    with pytest.raises(CheckpointCorrupt):
        decode_journal(middle)
    if position == len(line) - 1:  # the newline itself: a final line without one is partial
        final = decode_journal(header + bytes(line))
        assert (final.records, final.valid_length) == ((), len(header))
    else:  # a complete final line that fails its checksum is damage, not a torn append
        with pytest.raises(CheckpointCorrupt):
            decode_journal(header + bytes(line))


def test_a_final_line_without_newline_is_torn_and_dropped() -> None:
    data = journal_bytes(4, assign("a", "10.0.0.1"))
    torn = data + encode_record(assign("b", "10.0.0.2"), 2)[:-1]
    journal = decode_journal(torn)
    assert journal.records == (assign("a", "10.0.0.1"),)
    assert (journal.valid_length, journal.torn_bytes) == (len(data), len(torn) - len(data))


def test_a_final_line_of_zeros_is_torn_and_dropped() -> None:
    data = journal_bytes(0, assign("a", "10.0.0.1"))
    assert decode_journal(data + b"\0" * 300).valid_length == len(data)
    zero_filled = data + b"\0" * 40 + b'","record":{}}\n'  # the end of a line reached the disk
    assert decode_journal(zero_filled).torn_bytes == 55


@pytest.mark.parametrize(
    ("numbers", "words"),
    [
        ((1, 3), "sequence number 3 where 2 was expected: 1 acknowledged record"),
        ((1, 1), "sequence number 1 goes back"),
        ((2,), "sequence number 2 where 1 was expected"),
    ],
)
def test_a_sequence_gap_or_step_back_is_corruption(numbers: tuple[int, ...], words: str) -> None:
    header = encode_journal_header(JournalHeader(0, "l", 0, "b"))
    lines = [encode_record(assign(f"c{n}{i}", f"10.0.0.{i + 1}"), n) for i, n in enumerate(numbers)]
    with pytest.raises(CheckpointCorrupt, match=words):
        decode_journal(header + b"".join(lines), source="j")


def test_a_version_1_journal_without_sequence_numbers_still_decodes() -> None:
    header = framed("header", b'{"format":"vpccni-ipam","version":1,"generation":0}')
    body = b'{"op":"assign","network":"aws-cni","container_id":"a","ifname":"eth0",'
    body += b'"address":"10.0.0.1","namespace":"default","name":"a","assigned_at":1.5}'
    journal = decode_journal(header + framed("record", body))
    assert journal.records == (assign("a", "10.0.0.1"),)
    assert (journal.header.version, journal.header.lineage) == (1, "")


def test_damage_before_the_last_line_is_corruption_naming_file_and_line() -> None:
    lines = journal_bytes(0, assign("a", "10.0.0.1"), assign("b", "10.0.0.2")).split(b"\n")
    lines[1] = lines[1].replace(b"10.0.0.1", b"10.0.0.7")
    with pytest.raises(CheckpointCorrupt) as caught:
        decode_journal(b"\n".join(lines), source="/x/ipam.journal")
    message = str(caught.value)
    assert "/x/ipam.journal line 2" in message
    assert "checksum mismatch" in message
    assert "left untouched" in message
    assert "restore it from a backup" in message
    assert "vpccni ipamd --recover" in message


def test_a_journal_without_a_complete_header_is_corruption() -> None:
    for data in (b"", encode_journal_header(JournalHeader(0))[:-3]):
        with pytest.raises(CheckpointCorrupt, match="no complete header"):
            decode_journal(data)


def test_the_frame_is_the_documented_one() -> None:
    payload = b'{"format":"vpccni-ipam","version":2,"lineage":"ab","generation":7,"seq":9,'
    payload += b'"boot":"b-1"}'
    assert encode_journal_header(JournalHeader(7, "ab", 9, "b-1")) == framed("header", payload)


def test_a_newer_format_version_is_refused_with_advice() -> None:
    header = framed("header", b'{"format":"vpccni-ipam","version":3,"generation":0}')
    with pytest.raises(CheckpointCorrupt, match="format version 3 is not a version") as caught:
        decode_journal(header, source="j")
    assert "run the vpccni release that wrote it" in str(caught.value)


def test_a_snapshot_listing_an_address_twice_is_corruption() -> None:
    twice = CheckpointState(
        {
            PodKey("n", "a", "eth0"): Assignment(
                PodKey("n", "a", "eth0"), IPv4Address("10.0.0.1"), PodMeta(), 1.0
            )
        },
        {IPv4Address("10.0.0.1"): 2.0},
    )
    with pytest.raises(CheckpointCorrupt, match="also listed elsewhere"):
        decode_snapshot(encode_snapshot(Snapshot(1, twice)), source="s")


def test_a_truncated_snapshot_is_corruption() -> None:
    data = encode_snapshot(Snapshot(3, fold(assign("a", "10.0.0.1"))))
    with pytest.raises(CheckpointCorrupt, match=r"IPAM checkpoint /s/ipam.snapshot is unreadable"):
        decode_snapshot(data[: len(data) // 2], source="/s/ipam.snapshot")


def test_a_damaged_separator_merging_two_records_is_corruption_not_a_torn_tail() -> None:
    data = bytearray(journal_bytes(0, assign("a", "10.0.0.1"), assign("b", "10.0.0.2")))
    first_end = data.index(b"\n", data.index(b"\n") + 1)
    data[first_end] ^= 1  # the newline after record "a" becomes \x0b
    with pytest.raises(CheckpointCorrupt, match="line 2 is unreadable: checksum mismatch"):
        decode_journal(bytes(data))
    data[-1] ^= 1  # and without the final newline: one partial record may not hold two frames
    with pytest.raises(CheckpointCorrupt, match="more than one record"):
        decode_journal(bytes(data))
