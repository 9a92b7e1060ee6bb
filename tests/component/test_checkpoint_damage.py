"""The checkpoint damage matrix: 24 ways a checkpoint directory gets damaged, and for each the
only acceptable outcomes - a clear refusal with every file byte-identical, a correct repair, or
(for damage the files cannot reveal: whole records cut at a line boundary, or both files gone)
a load whose losses the datapath cross-check makes good. Never a silent loss, never a live pod's
address handed to another pod. The matrix is printed (``pytest -s``) and kept in
docs/checkpoint.md.

The checkpoint is written by the real IPAM service (ADDs and DELs); the node's routing state is
the live pods' address -> veth map; a restart is load + restore + the cross-check + converge's
release of pods without a veth, as bootstrap does (tests/daemon/test_datapath_ledger.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tests.daemon.test_datapath_ledger import ADDRESSES, fill, start, veth_of
from vpccni.core.checkpoint import (
    AssignRecord,
    CheckpointCorrupt,
    JournalHeader,
    decode_journal,
    encode_journal_header,
    encode_record,
)
from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.daemon.recover import adopt_routed_pods

BOOT = "boot-1"


@dataclass
class Fixture:
    directory: Path
    routed: dict[IPv4Address, str]  # the live pods, as the node's routes show them
    older: dict[str, bytes]  # the files one compaction earlier


def build(directory: Path) -> Fixture:
    """20 ADDs/DELs through the service (compaction every 7 records); the journal ends in 6."""
    rng = random.Random(4)
    service, store = start(directory, BOOT)
    live: dict[PodKey, Assignment] = {}
    older: dict[str, bytes] = {}
    generation = 0
    for serial in range(20):
        if store.generation != generation:
            generation = store.generation
        if live and rng.random() < 0.35:
            key = rng.choice(sorted(live))
            service.delete(key)
            del live[key]
        else:
            key = PodKey("aws-cni", f"c{serial}", "eth0")
            live[key] = service.add(key, PodMeta("default", f"pod-{serial}")).assignment
        if serial == 12:
            older = files(directory)
    store.close()
    assert decode_journal((directory / "ipam.journal").read_bytes()).generation == 3
    assert 4 <= len(live) <= len(ADDRESSES) - 4, "the fixture needs live pods and free addresses"
    return Fixture(directory, {a.address: veth_of(a) for a in live.values()}, older)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def digest(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files(directory).items()}


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, kept: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in kept))


def flip(path: Path, line: int, offset: int = 30) -> None:
    data = path.read_bytes().split(b"\n")
    target = bytearray(data[line])
    target[min(offset, len(target) - 1)] ^= 0x04
    data[line] = bytes(target)
    path.write_bytes(b"\n".join(data))


def in_flight(fixture: Fixture) -> bytes:
    """The line of an ADD that was being appended (never acknowledged) when power went."""
    journal = decode_journal((fixture.directory / "ipam.journal").read_bytes())
    free = next(a for a in ADDRESSES if a not in fixture.routed)
    record = AssignRecord(
        Assignment(PodKey("aws-cni", "late", "eth0"), free, PodMeta("default", "late"), 9e3)
    )
    return encode_record(record, journal.last_seq + 1)


J, S = "ipam.journal", "ipam.snapshot"


def _truncate_half(f: Fixture) -> None:
    path = f.directory / J
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _append(f: Fixture, data: bytes) -> None:
    with (f.directory / J).open("ab") as out:
        out.write(data)


def _foreign_journal(f: Fixture) -> None:
    journal = decode_journal((f.directory / J).read_bytes())
    header = JournalHeader(journal.generation, "another-node", journal.header.seq, BOOT)
    kept = lines(f.directory / J)[1:]
    (f.directory / J).write_bytes(encode_journal_header(header) + b"".join(k + b"\n" for k in kept))


def _stray_files(f: Fixture) -> None:
    (f.directory / "notes.txt").write_text("operator's notes\n")
    (f.directory / "ipam.journal.bak").write_bytes((f.directory / J).read_bytes()[:100])
    (f.directory / "ipam.snapshot.tmp").write_bytes(b'{"crc32":"half')


def _swap(first: int, second: int) -> Callable[[Fixture], None]:
    def swap(f: Fixture) -> None:
        kept = lines(f.directory / J)
        kept[first], kept[second] = kept[second], kept[first]
        write_lines(f.directory / J, kept)

    return swap


# name -> (damage, boot at restart)
CASES: dict[str, tuple[Callable[[Fixture], None], str]] = {
    "truncate journal to 50%": (_truncate_half, BOOT),
    "truncate inside the last record": (
        lambda f: (f.directory / J).write_bytes((f.directory / J).read_bytes()[:-25]),
        BOOT,
    ),
    "truncate at a line boundary (last 2 records)": (
        lambda f: write_lines(f.directory / J, lines(f.directory / J)[:-2]),
        BOOT,
    ),
    "truncate to the header only": (
        lambda f: write_lines(f.directory / J, lines(f.directory / J)[:1]),
        BOOT,
    ),
    "power loss: in-flight record torn, next boot": (
        lambda f: _append(f, in_flight(f)[:-40]),
        "boot-2",
    ),
    "power loss: in-flight record zero-filled, next boot": (
        lambda f: _append(f, b"\0" * len(in_flight(f))),
        "boot-2",
    ),
    "partial final record, same boot": (lambda f: _append(f, in_flight(f)[:-40]), BOOT),
    "delete the journal": (lambda f: (f.directory / J).unlink(), BOOT),
    "delete the snapshot": (lambda f: (f.directory / S).unlink(), BOOT),
    "delete both files": (
        lambda f: ((f.directory / J).unlink(), (f.directory / S).unlink()),
        BOOT,
    ),
    "delete the header line": (
        lambda f: write_lines(f.directory / J, lines(f.directory / J)[1:]),
        BOOT,
    ),
    "delete the first record": (
        lambda f: write_lines(
            f.directory / J, [lines(f.directory / J)[0], *lines(f.directory / J)[2:]]
        ),
        BOOT,
    ),
    "delete a middle record": (
        lambda f: write_lines(
            f.directory / J, [*lines(f.directory / J)[:3], *lines(f.directory / J)[4:]]
        ),
        BOOT,
    ),
    "delete the last record": (
        lambda f: write_lines(f.directory / J, lines(f.directory / J)[:-1]),
        BOOT,
    ),
    "bit flip in the journal header": (lambda f: flip(f.directory / J, 0), BOOT),
    "bit flip in the first record": (lambda f: flip(f.directory / J, 1), BOOT),
    "bit flip in the last record": (lambda f: flip(f.directory / J, -2), BOOT),
    "bit flip in the final newline": (
        lambda f: (f.directory / J).write_bytes((f.directory / J).read_bytes()[:-1] + b"\x0e"),
        BOOT,
    ),
    "bit flip in the snapshot": (lambda f: flip(f.directory / S, 0, 200), BOOT),
    "older snapshot (previous generation)": (
        lambda f: (f.directory / S).write_bytes(f.older[S]),
        BOOT,
    ),
    "older journal (previous generation)": (
        lambda f: (f.directory / J).write_bytes(f.older[J]),
        BOOT,
    ),
    "a record repeated / two records swapped": (_swap(2, 3), BOOT),
    "foreign journal (another checkpoint's lineage)": (_foreign_journal, BOOT),
    "stray files in the directory": (_stray_files, BOOT),
}

MATRIX: list[tuple[str, str]] = []


@pytest.mark.parametrize("case", list(CASES))
def test_damage_is_refused_repaired_or_made_good_by_the_datapath(tmp_path: Path, case: str) -> None:
    fixture = build(tmp_path / "ipam")
    damage, boot = CASES[case]
    damage(fixture)
    before = digest(fixture.directory)
    service, store = start(fixture.directory, boot)
    try:
        state = store.load()
    except CheckpointCorrupt as error:
        message = str(error)
        assert "\n" not in message
        assert "left untouched" in message
        assert "--recover" in message
        assert digest(fixture.directory) == before, f"{case}: a refused load changed files"
        MATRIX.append((case, f"refused, files unchanged: {error.reason}"))
        return
    truth = {(a, v) for a, v in fixture.routed.items()}
    loaded = {(a.address, veth_of(a)) for a in state.assignments.values()}
    service.datastore.restore(state)
    adoption = adopt_routed_pods(service, fixture.routed, veth_of)
    for assignment in service.assignments():  # converge: a pod without a veth is released
        if veth_of(assignment) not in set(fixture.routed.values()):
            service.delete(assignment.key)
    held = {(a.address, veth_of(a)) for a in service.assignments()}
    assert held == truth, f"{case}: after the cross-check the node holds {held}, not {truth}"
    assert not set(fill(service)) & set(fixture.routed), f"{case}: a live address handed out"
    if loaded == truth:
        MATRIX.append((case, "repaired: " + ("; ".join(store.repairs) or "nothing to repair")))
    else:
        MATRIX.append(
            (
                case,
                f"loaded, short by whole records (the files cannot show it): {len(truth - loaded)} "
                f"live pods missing -> held by the datapath cross-check ({len(adoption.held)} for "
                f"unknown pods), {len(loaded - truth)} deleted pods back -> released by converge "
                "(no veth)",
            )
        )


def test_zz_print_the_matrix() -> None:
    assert len(CASES) == 24
    width = max(len(case) for case, _ in MATRIX) if MATRIX else 0
    print("\nCheckpoint damage matrix")
    for number, (case, outcome) in enumerate(MATRIX, start=1):
        print(f"{number:2d}. {case:<{width}}  {outcome}")
