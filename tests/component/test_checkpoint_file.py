"""The file checkpoint store on a real directory: durability, compaction, crash leftovers, damage.

Crashes inside compaction are simulated by making ``os.replace`` fail at a chosen call (before or
after the rename took effect) and then loading the directory with a new store, as a restarted
daemon would; the SIGKILL test in test_checkpoint_crash.py covers arbitrary instants.
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tests.checkpoint_strategies import assign, release
from vpccni.adapters.checkpoint_file import (
    PAGE_SIZE,
    CheckpointExists,
    CheckpointWriteFailed,
    FileCheckpointStore,
    import_upstream_file,
)
from vpccni.core.checkpoint import (
    CheckpointCorrupt,
    CheckpointState,
    Record,
    RecordConflict,
    Snapshot,
    apply_record,
    decode_journal,
    encode_record,
    encode_snapshot,
)
from vpccni.core.model import PodKey


class SimulatedCrash(Exception):
    """The process 'died' here; the store object is abandoned."""


def fold(*records: Record) -> CheckpointState:
    state = CheckpointState.empty()
    for record in records:
        state = apply_record(state, record)
    return state


def churn(count: int) -> list[Record]:
    """``count`` records: assign pods c0, c1, ...; every third record releases the oldest."""
    records: list[Record] = []
    held: list[tuple[str, str]] = []
    serial = 0
    while len(records) < count:
        if len(records) % 3 == 2:
            container, address = held.pop(0)
            records.append(release(container, address, at=len(records) + 0.5))
        else:
            held.append((f"c{serial}", f"10.0.{serial // 250}.{serial % 250 + 1}"))
            records.append(assign(*held[-1], at=len(records) + 0.25))
            serial += 1
    return records


def write_all(store: FileCheckpointStore, records: list[Record]) -> None:
    for record in records:
        store.append(record)


def decode_lineage(directory: Path) -> str:
    return decode_journal((directory / "ipam.journal").read_bytes()).header.lineage


def snapshot_of(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_a_missing_directory_is_a_fresh_node_and_nothing_is_created(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "absent" / "ipam")
    assert store.load() == CheckpointState.empty()
    assert not (tmp_path / "absent").exists()


def test_appended_records_survive_a_reload(tmp_path: Path) -> None:
    records = churn(20)
    with FileCheckpointStore(tmp_path / "ipam") as store:
        write_all(store, records)
        assert store.state == fold(*records)
    assert FileCheckpointStore(tmp_path / "ipam").load() == fold(*records)


def test_compaction_folds_the_journal_into_a_new_generation(tmp_path: Path) -> None:
    records = churn(23)
    with FileCheckpointStore(tmp_path, compact_every=5) as store:
        write_all(store, records)
        assert store.generation == 5  # generation 1 is written with the first record
    journal = decode_journal((tmp_path / "ipam.journal").read_bytes())
    assert journal.generation == 5
    assert len(journal.records) == 3
    assert journal.header.seq == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ipam.journal", "ipam.snapshot"]
    reloaded = FileCheckpointStore(tmp_path, compact_every=5)
    assert reloaded.load() == fold(*records)
    assert reloaded.generation == 5


def test_a_partial_final_record_from_an_earlier_boot_is_dropped(tmp_path: Path) -> None:
    records = churn(6)
    with FileCheckpointStore(tmp_path, boot_id="boot-1") as store:
        write_all(store, records)
    journal = tmp_path / "ipam.journal"
    intact = journal.read_bytes()
    torn_line = encode_record(assign("late", "10.9.9.9"), 7)[:-7]
    journal.write_bytes(intact + torn_line)
    store = FileCheckpointStore(tmp_path, boot_id="boot-2")
    assert store.load() == fold(*records)
    assert any("partial final record" in repair for repair in store.repairs)
    assert decode_journal(journal.read_bytes()).header.boot == "boot-2"  # a new generation
    store.append(assign("next", "10.9.9.9"))
    store.close()
    assert FileCheckpointStore(tmp_path).load() == fold(*records, assign("next", "10.9.9.9"))


def test_a_partial_final_record_in_this_boot_is_refused(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path, boot_id="boot-1") as store:
        write_all(store, churn(6))
    journal = tmp_path / "ipam.journal"
    journal.write_bytes(journal.read_bytes()[:-30])
    before = snapshot_of(tmp_path)
    with pytest.raises(
        CheckpointCorrupt, match=r"partial record after sequence 5.*since the last boot"
    ):
        FileCheckpointStore(tmp_path, boot_id="boot-1").load()
    assert snapshot_of(tmp_path) == before


def test_a_final_line_with_a_bad_checksum_is_refused(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path) as store:
        write_all(store, churn(4))
    journal = tmp_path / "ipam.journal"
    line = encode_record(assign("x", "10.9.9.9"), 5).replace(b"10.9", b"10.8")
    journal.write_bytes(journal.read_bytes() + line)
    before = snapshot_of(tmp_path)
    with pytest.raises(CheckpointCorrupt, match="line 6 is unreadable: checksum mismatch"):
        FileCheckpointStore(tmp_path).load()
    assert snapshot_of(tmp_path) == before


def test_damage_in_the_middle_raises_and_leaves_every_file_byte_identical(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path, compact_every=4) as store:
        write_all(store, churn(7))
    journal = tmp_path / "ipam.journal"
    lines = journal.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"eth0"', b'"eth1"')
    journal.write_bytes(b"\n".join(lines))
    before = snapshot_of(tmp_path)
    with pytest.raises(CheckpointCorrupt) as caught:
        FileCheckpointStore(tmp_path).load()
    assert f"{journal} line 2" in str(caught.value)
    assert "left untouched" in str(caught.value)
    assert snapshot_of(tmp_path) == before


def test_a_damaged_snapshot_raises_and_leaves_the_files_alone(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path, compact_every=2) as store:
        write_all(store, churn(5))
    snapshot = tmp_path / "ipam.snapshot"
    snapshot.write_bytes(snapshot.read_bytes().replace(b"10.0.0", b"10.0.1", 1))
    before = snapshot_of(tmp_path)
    with pytest.raises(CheckpointCorrupt, match=r"ipam\.snapshot is unreadable: checksum"):
        FileCheckpointStore(tmp_path).load()
    assert snapshot_of(tmp_path) == before


def test_a_journal_newer_than_its_snapshot_is_corruption(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path, compact_every=2) as store:
        write_all(store, churn(5))
    (tmp_path / "ipam.snapshot").unlink()
    before = snapshot_of(tmp_path)
    with pytest.raises(
        CheckpointCorrupt, match=r"missing, but ipam\.journal follows snapshot generation 3"
    ):
        FileCheckpointStore(tmp_path).load()
    assert snapshot_of(tmp_path) == before


def test_a_refused_record_writes_nothing(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    store.append(assign("a", "10.0.0.1"))
    before = snapshot_of(tmp_path)
    with pytest.raises(RecordConflict):
        store.append(release("b", "10.0.0.1"))
    assert snapshot_of(tmp_path) == before
    store.close()


def test_leftover_temp_files_are_removed_on_load(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path) as store:
        write_all(store, churn(3))
    (tmp_path / "ipam.snapshot.tmp").write_bytes(b'{"crc32":"half')
    (tmp_path / "ipam.journal.tmp").write_bytes(b"")
    assert FileCheckpointStore(tmp_path).load() == fold(*churn(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ipam.journal", "ipam.snapshot"]


@pytest.mark.parametrize("call", [1, 2])
@pytest.mark.parametrize("renamed", [False, True], ids=["before-rename", "after-rename"])
def test_a_crash_inside_compaction_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: int, renamed: bool
) -> None:
    records = churn(12)
    store = FileCheckpointStore(tmp_path, compact_every=5)
    write_all(store, records[:10])
    crash_on_replace(monkeypatch, call, renamed)
    with pytest.raises(SimulatedCrash):
        store.append(records[10])  # the journal is full: compaction runs first
    monkeypatch.undo()
    store.close()
    restarted = FileCheckpointStore(tmp_path, compact_every=5)
    assert restarted.load() == fold(*records[:10])
    restarted.append(records[10])
    restarted.append(records[11])
    restarted.close()
    assert FileCheckpointStore(tmp_path).load() == fold(*records)
    assert not list(tmp_path.glob("*.tmp"))


def crash_on_replace(monkeypatch: pytest.MonkeyPatch, call: int, renamed: bool) -> None:
    real: Callable[[str | Path, str | Path], None] = os.replace
    calls = 0

    def replace(source: str | Path, target: str | Path) -> None:
        nonlocal calls
        calls += 1
        if calls == call:
            if renamed:
                real(source, target)
            raise SimulatedCrash(f"crash at os.replace call {call}")
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)


def test_a_failed_write_is_not_acknowledged_and_blocks_writes_until_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileCheckpointStore(tmp_path)
    store.append(assign("a", "10.0.0.1"))

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full_disk)
    with pytest.raises(CheckpointWriteFailed, match="ENOSPC: No space left on device") as caught:
        store.append(assign("b", "10.0.0.2"))
    assert "not acknowledged" in str(caught.value)
    monkeypatch.undo()
    with pytest.raises(CheckpointWriteFailed):
        store.append(assign("c", "10.0.0.3"))
    assert PodKey("aws-cni", "b", "eth0") not in store.state.assignments
    store.load()  # a reload may find the unacknowledged record: it reached the page cache
    store.append(assign("c", "10.0.0.3"))
    store.close()
    assert PodKey("aws-cni", "c", "eth0") in FileCheckpointStore(tmp_path).load().assignments


def test_upstream_import_becomes_generation_one(tmp_path: Path) -> None:
    upstream = tmp_path / "ipam.json"
    upstream.write_bytes(
        b'{"version":"vpc-cni-ipam/1","allocations":[{"networkName":"aws-cni",'
        b'"containerID":"a","ifName":"eth0","ipv4":"10.0.0.1","allocationTimestamp":1}]}'
    )
    original = upstream.read_bytes()
    directory = tmp_path / "vpccni" / "ipam"
    imported = import_upstream_file(upstream, directory)
    assert imported.imported == 1
    assert upstream.read_bytes() == original
    store = FileCheckpointStore(directory)
    assert store.load() == imported.state
    assert store.generation == 1
    assert (directory / "ipam.journal").exists()
    store.append(release("a", "10.0.0.1"))
    store.close()
    assert decode_journal((directory / "ipam.journal").read_bytes()).generation == 1
    with pytest.raises(CheckpointExists, match="already holds a vpccni IPAM checkpoint"):
        import_upstream_file(upstream, directory)


def test_upstream_import_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointCorrupt, match="does not exist"):
        import_upstream_file(tmp_path / "nope.json", tmp_path / "ipam")
    assert not (tmp_path / "ipam").exists()


def test_snapshot_files_are_the_codec_bytes(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path, compact_every=3) as store:
        write_all(store, churn(4))
        store.compact()
        snapshot = Snapshot(store.generation, store.state, store.seq, decode_lineage(tmp_path))
        expected = encode_snapshot(snapshot)
    assert (tmp_path / "ipam.snapshot").read_bytes() == expected


def test_expired_cooldowns_are_pruned_at_the_next_compaction(tmp_path: Path) -> None:
    with FileCheckpointStore(tmp_path) as store:
        write_all(store, [assign("a", "10.0.0.1"), release("a", "10.0.0.1", at=5.0)])
        write_all(store, [assign("b", "10.0.0.2"), release("b", "10.0.0.2", at=50.0)])
        store.prune_cooldowns(cutoff=40.0)
        store.compact()
    reloaded = FileCheckpointStore(tmp_path).load()
    assert dict(reloaded.cooldowns) == {IPv4Address("10.0.0.2"): 50.0}


def test_a_version_1_checkpoint_loads_and_is_converted_to_version_2(tmp_path: Path) -> None:
    """vpccni 1 files (no sequence numbers): read with their own rules, then folded at once
    into a version 2 generation, so every later load has the sequence checks."""

    def frame(kind: str, payload: bytes) -> bytes:
        return b'{"crc32":"%08x","%s":%s}\n' % (zlib.crc32(payload), kind.encode(), payload)

    record = (
        b'{"op":"assign","network":"aws-cni","container_id":"a","ifname":"eth0",'
        b'"address":"10.0.0.1","namespace":"default","name":"a","assigned_at":1.5}'
    )
    (tmp_path / "ipam.snapshot").write_bytes(
        frame(
            "snapshot",
            b'{"format":"vpccni-ipam","version":1,"generation":2,"assignments":[],'
            b'"cooldowns":[{"address":"10.0.0.9","released_at":0.5}]}',
        )
    )
    (tmp_path / "ipam.journal").write_bytes(
        frame("header", b'{"format":"vpccni-ipam","version":1,"generation":2}')
        + frame("record", record)
    )
    store = FileCheckpointStore(tmp_path, boot_id="boot-1")
    state = store.load()
    assert state == CheckpointState(
        fold(assign("a", "10.0.0.1")).assignments, {IPv4Address("10.0.0.9"): 0.5}
    )
    journal = decode_journal((tmp_path / "ipam.journal").read_bytes())
    assert (journal.header.version, journal.generation, journal.header.seq) == (2, 3, 1)
    store.append(release("a", "10.0.0.1"))
    store.close()
    assert FileCheckpointStore(tmp_path, boot_id="boot-1").load().assignments == {}


def test_an_append_cut_at_a_page_boundary_by_a_kill_is_dropped_in_the_same_boot(
    tmp_path: Path,
) -> None:
    """SIGKILL can stop a write() between two pages (seen in the SIGKILL test): the file then
    ends at a page boundary inside the last record, which was never acknowledged."""
    store = FileCheckpointStore(tmp_path, boot_id="boot-1")
    journal = tmp_path / "ipam.journal"
    records = churn(200)
    written = 0
    while True:  # append until a record crosses a page boundary
        before = journal.stat().st_size if journal.exists() else 0
        store.append(records[written])
        written += 1
        if before // PAGE_SIZE != journal.stat().st_size // PAGE_SIZE:
            boundary = journal.stat().st_size // PAGE_SIZE * PAGE_SIZE
            if boundary > before:
                break
    store.close()
    os.truncate(journal, boundary)
    reloaded = FileCheckpointStore(tmp_path, boot_id="boot-1")
    assert reloaded.load() == fold(*records[: written - 1])
    assert any("an append cut by a kill" in repair for repair in reloaded.repairs)
    os.truncate(journal, journal.stat().st_size - 10)  # not at a page boundary: refused
    with pytest.raises(CheckpointCorrupt, match="not cut at a page boundary"):
        FileCheckpointStore(tmp_path, boot_id="boot-1").load()
