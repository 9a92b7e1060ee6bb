"""The IPAM checkpoint: its state, its journal records, and its on-disk encoding (bytes only).

Owns :class:`CheckpointState` (which pod interface holds which address, and when each released
address began cooling down), the journal records that change it (:class:`AssignRecord`,
:class:`ReleaseRecord`, applied by :func:`apply_record`), and the versioned ``vpccni-ipam``
format (version 2): a snapshot naming its ``lineage``, ``generation`` and the last sequence
number it covers, and a journal whose header names the same three (plus the boot it was started
in) followed by one record per line, numbered consecutively from there. A gap, a number that
goes back, a line that fails its CRC anywhere but as one partial final record is corruption.
Every line is framed as ``{"crc32":"<8 hex>","<kind>":<body>}`` with the CRC-32 taken over the
exact body bytes, so each line is still plain JSON for ``jq``. Version 1 files (no sequence
numbers) are still decoded so the store can convert them. Floats are written with ``repr`` and
round-trip exactly. Field readers live in ``vpccni.core.checkpoint_fields``; the upstream file in
``vpccni.core.checkpoint_upstream``; files, fsync and the load rules in
``vpccni.adapters.checkpoint_file``. See docs/checkpoint.md.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from vpccni.core.checkpoint_fields import (
    Invalid,
    address,
    assignment_of,
    counter,
    key_of,
    list_of,
    object_of,
    seconds,
    text,
)
from vpccni.core.model import Assignment, PodKey
from vpccni.errors import VpccniError

FORMAT = "vpccni-ipam"
FORMAT_VERSION = 2
LEGACY_VERSION = 1  # no sequence numbers, lineage or boot; read only, converted on load

FRAME_OPEN = b'{"crc32":"'
_CRC_HEX_DIGITS = 8
DEFAULT_HINT = (
    "inspect it (every line is JSON: jq . FILE), restore it from a backup, or run "
    "`vpccni ipamd --recover` to move the checkpoint files aside and rebuild them from EC2 and "
    "the node's pod routes - vpccni never discards a checkpoint silently"
)


class CheckpointCorrupt(VpccniError):
    """A checkpoint (ours or upstream's) cannot be read; nothing on disk was changed."""

    def __init__(
        self, reason: str, *, source: str = "", line: int | None = None, hint: str = DEFAULT_HINT
    ) -> None:
        where = source or "checkpoint data"
        if line is not None:
            where = f"{where} line {line}"
        super().__init__(
            f"IPAM checkpoint {where} is unreadable: {reason}; the file was left untouched; {hint}"
        )
        self.reason = reason
        self.source = source
        self.line = line


class RecordConflict(VpccniError):
    """A journal record does not follow from the current state; the state is unchanged."""


@dataclass(frozen=True)
class CheckpointState:
    """What must survive a restart: assignments by key, and cooldown start per released address.

    An address is in ``cooldowns`` when it was released and not assigned again since. Values are
    never mutated: :func:`apply_record` builds a new state.
    """

    assignments: Mapping[PodKey, Assignment] = field(default_factory=dict)
    cooldowns: Mapping[IPv4Address, float] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> CheckpointState:
        """The state of a fresh node."""
        return cls({}, {})


@dataclass(frozen=True)
class AssignRecord:
    """A pod interface was given an address."""

    assignment: Assignment


@dataclass(frozen=True)
class ReleaseRecord:
    """A pod interface gave its address back at ``released_at``; the address starts cooling."""

    key: PodKey
    address: IPv4Address
    released_at: float


Record = AssignRecord | ReleaseRecord


@dataclass(frozen=True)
class Snapshot:
    """A whole state: every record up to sequence ``seq`` of checkpoint ``lineage``.

    It expects the journal of the same ``lineage`` and ``generation`` whose records start at
    ``seq + 1``. Version 1 snapshots carry no lineage and no sequence (``""`` and 0).
    """

    generation: int
    state: CheckpointState
    seq: int = 0
    lineage: str = ""
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class JournalHeader:
    """A journal's first line: which snapshot it follows, and the boot it was started in.

    Every record of a journal is appended in the boot its header names (the store starts a new
    journal when it loads one from an earlier boot), so a partial final record in a journal of
    the current boot cannot come from a power loss: only a daemon crash, which never tears a
    write, could have interrupted it.
    """

    generation: int
    lineage: str = ""
    seq: int = 0
    boot: str = ""
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class Journal:
    """A decoded journal: its header, its records, and how much of the file is sound.

    Record ``i`` has sequence number ``header.seq + 1 + i`` (checked while decoding version 2).
    ``valid_length`` bytes are sound; ``torn_bytes`` after them are one partial final record (an
    append interrupted by a power loss, never acknowledged), for the store to judge and drop.
    """

    header: JournalHeader
    records: tuple[Record, ...]
    valid_length: int
    torn_bytes: int = 0

    @property
    def generation(self) -> int:
        return self.header.generation

    @property
    def last_seq(self) -> int:
        """The sequence number of the last complete record (the header's when there is none)."""
        return self.header.seq + len(self.records)

    @staticmethod
    def line_of(index: int) -> int:
        """The 1-based file line of record ``index`` (line 1 is the header)."""
        return index + 2


def apply_record(state: CheckpointState, record: Record) -> CheckpointState:
    """The state after ``record``; raises :class:`RecordConflict` when it does not follow."""
    if isinstance(record, AssignRecord):
        return _apply_assign(state, record.assignment)
    return _apply_release(state, record)


def _apply_assign(state: CheckpointState, assignment: Assignment) -> CheckpointState:
    held = state.assignments.get(assignment.key)
    if held is not None:
        raise RecordConflict(
            f"cannot record {assignment.address} for {assignment.key}: it already holds "
            f"{held.address}; release it first (the checkpoint was not changed)"
        )
    for other in state.assignments.values():
        if other.address == assignment.address:
            raise RecordConflict(
                f"cannot record {assignment.address} for {assignment.key}: the address is held "
                f"by {other.key}; release it first (the checkpoint was not changed)"
            )
    assignments = dict(state.assignments)
    assignments[assignment.key] = assignment
    cooldowns = dict(state.cooldowns)
    cooldowns.pop(assignment.address, None)
    return CheckpointState(assignments, cooldowns)


def _apply_release(state: CheckpointState, record: ReleaseRecord) -> CheckpointState:
    held = state.assignments.get(record.key)
    if held is None:
        raise RecordConflict(
            f"cannot record the release of {record.address} by {record.key}: that pod interface "
            "holds no address (the checkpoint was not changed)"
        )
    if held.address != record.address:
        raise RecordConflict(
            f"cannot record the release of {record.address} by {record.key}: it holds "
            f"{held.address} (the checkpoint was not changed)"
        )
    assignments = dict(state.assignments)
    del assignments[record.key]
    cooldowns = dict(state.cooldowns)
    cooldowns[record.address] = record.released_at
    return CheckpointState(assignments, cooldowns)


def without_cooldowns_before(state: CheckpointState, cutoff: float) -> CheckpointState:
    """The state minus cooldowns that started before ``cutoff`` (expired: no longer needed)."""
    kept = {address: at for address, at in state.cooldowns.items() if at >= cutoff}
    if len(kept) == len(state.cooldowns):
        return state
    return CheckpointState(state.assignments, kept)


# -- encoding -----------------------------------------------------------------------------------


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot file's bytes (one framed JSON document, entries in a stable order)."""
    state = snapshot.state
    body = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "lineage": snapshot.lineage,
        "generation": snapshot.generation,
        "seq": snapshot.seq,
        "assignments": [
            _assignment_body(state.assignments[key]) for key in sorted(state.assignments)
        ],
        "cooldowns": [
            {"address": str(cooling), "released_at": state.cooldowns[cooling]}
            for cooling in sorted(state.cooldowns)
        ],
    }
    return _frame("snapshot", body)


def encode_journal_header(header: JournalHeader) -> bytes:
    """The first line of a journal that follows the snapshot of ``header.generation``."""
    body = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "lineage": header.lineage,
        "generation": header.generation,
        "seq": header.seq,
        "boot": header.boot,
    }
    return _frame("header", body)


def encode_record(record: Record, seq: int) -> bytes:
    """One journal line with sequence number ``seq``, newline included."""
    if isinstance(record, AssignRecord):
        return _frame("record", {"seq": seq, "op": "assign", **_assignment_body(record.assignment)})
    body = {"seq": seq, "op": "release", **_key_body(record.key), "address": str(record.address)}
    return _frame("record", {**body, "released_at": record.released_at})


def _frame(kind: str, body: Mapping[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    crc = b"%08x" % zlib.crc32(payload)
    return b"".join((FRAME_OPEN, crc, b'","', kind.encode("ascii"), b'":', payload, b"}\n"))


def _key_body(key: PodKey) -> dict[str, Any]:
    return {"network": key.network, "container_id": key.container_id, "ifname": key.ifname}


def _assignment_body(assignment: Assignment) -> dict[str, Any]:
    return {
        **_key_body(assignment.key),
        "address": str(assignment.address),
        "namespace": assignment.meta.namespace,
        "name": assignment.meta.name,
        "assigned_at": assignment.assigned_at,
    }


# -- decoding -----------------------------------------------------------------------------------


def decode_snapshot(data: bytes, *, source: str = "") -> Snapshot:
    """Parse and validate a snapshot file (version 2 or 1); raises :class:`CheckpointCorrupt`."""
    try:
        body = _unframe(data.removesuffix(b"\n"), "snapshot")
        version = _check_format(body, source)
        generation = counter(body, "generation")
        seq, lineage = _lineage_and_seq(body, version)
        assignments: dict[PodKey, Assignment] = {}
        holders: dict[IPv4Address, PodKey] = {}
        for entry in list_of(body, "assignments"):
            assignment = assignment_of(entry)
            if assignment.key in assignments or assignment.address in holders:
                raise Invalid(f"{assignment.key} or {assignment.address} appears twice")
            assignments[assignment.key] = assignment
            holders[assignment.address] = assignment.key
        cooldowns: dict[IPv4Address, float] = {}
        for entry in list_of(body, "cooldowns"):
            cooling = object_of(entry)
            cooled = address(cooling, "address")
            if cooled in cooldowns or cooled in holders:
                raise Invalid(f"cooling address {cooled} is also listed elsewhere")
            cooldowns[cooled] = seconds(cooling, "released_at")
    except Invalid as invalid:
        raise CheckpointCorrupt(str(invalid), source=source) from None
    state = CheckpointState(assignments, cooldowns)
    return Snapshot(generation, state, seq, lineage, version)


def decode_journal(data: bytes, *, source: str = "") -> Journal:
    """Parse a journal file, setting aside at most one partial final record; raises
    CheckpointCorrupt for anything else.

    The final record is *partial* when it has no newline (the append never finished) or holds a
    NUL byte (a region a file system extended but never wrote; the encoder never writes NUL),
    and holds at most one frame start. A complete line that fails its checksum or parse is
    corruption wherever it is, the last line included. Version 2 records must be numbered
    consecutively from the header's ``seq + 1``.
    """
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    torn = len(tail)
    if not tail and len(lines) > 1 and b"\0" in lines[-1]:
        tail = lines.pop()
        torn = len(tail) + 1
    if tail.count(FRAME_OPEN) > 1:
        # One append writes one frame, so a torn write holds at most one frame start; more
        # means a damaged newline merged acknowledged records into this line.
        raise CheckpointCorrupt(
            "the last line holds more than one record (a damaged line separator)",
            source=source,
            line=len(lines) + 1,
        )
    if not lines:
        raise CheckpointCorrupt("the journal has no complete header line", source=source)
    header = _header(lines[0], source)
    records: list[Record] = []
    for index, line in enumerate(lines[1:]):
        try:
            body = _unframe(line, "record")
            if header.version != LEGACY_VERSION:
                _check_seq(counter(body, "seq"), header.seq + 1 + index)
            records.append(_record(body))
        except Invalid as invalid:
            raise CheckpointCorrupt(
                str(invalid), source=source, line=Journal.line_of(index)
            ) from None
    return Journal(header, tuple(records), len(data) - torn, torn)


def decode_record(line: bytes) -> Record:
    """One journal line (with or without its newline); raises :class:`CheckpointCorrupt`."""
    try:
        return _record(_unframe(line.removesuffix(b"\n"), "record"))
    except Invalid as invalid:
        raise CheckpointCorrupt(str(invalid)) from None


def replay_journal(
    state: CheckpointState, journal: Journal, *, source: str = ""
) -> CheckpointState:
    """``state`` with every journal record applied in order; raises CheckpointCorrupt."""
    for index, record in enumerate(journal.records):
        try:
            state = apply_record(state, record)
        except RecordConflict as conflict:
            reason = f"the record does not follow from the records before it ({conflict})"
            raise CheckpointCorrupt(reason, source=source, line=Journal.line_of(index)) from None
    return state


def _header(line: bytes, source: str) -> JournalHeader:
    try:
        body = _unframe(line, "header")
        version = _check_format(body, source)
        generation = counter(body, "generation")
        seq, lineage = _lineage_and_seq(body, version)
        boot = text(body, "boot") if version != LEGACY_VERSION else ""
    except Invalid as invalid:
        raise CheckpointCorrupt(str(invalid), source=source, line=1) from None
    return JournalHeader(generation, lineage, seq, boot, version)


def _lineage_and_seq(body: Mapping[str, Any], version: int) -> tuple[int, str]:
    if version == LEGACY_VERSION:
        return 0, ""
    return counter(body, "seq"), text(body, "lineage")


def _check_seq(found: int, expected: int) -> None:
    if found == expected:
        return
    if found > expected:
        raise Invalid(
            f"sequence number {found} where {expected} was expected: "
            f"{found - expected} acknowledged record(s) are missing before this line"
        )
    raise Invalid(
        f"sequence number {found} goes back (expected {expected}): a line was repeated, "
        "moved or copied from another journal"
    )


def _unframe(line: bytes, kind: str) -> dict[str, Any]:
    crc_end = len(FRAME_OPEN) + _CRC_HEX_DIGITS
    label = b'","' + kind.encode("ascii") + b'":'
    start = crc_end + len(label)
    framed = line.startswith(FRAME_OPEN) and line[crc_end:start] == label
    if not framed or not line.endswith(b"}") or len(line) <= start + 1:
        raise Invalid(f"not a {FORMAT} {kind} line")
    payload = line[start:-1]
    if line[len(FRAME_OPEN) : crc_end] != b"%08x" % zlib.crc32(payload):
        raise Invalid(f"checksum mismatch (damaged {kind})")
    try:
        body = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise Invalid(f"the {kind} is not valid JSON ({error})") from None
    return object_of(body)


def _reject_constant(name: str) -> float:
    raise Invalid(f"{name} is not a valid time")


def _check_format(body: Mapping[str, Any], source: str) -> int:
    if body.get("format") != FORMAT:
        raise Invalid(f"format is {body.get('format')!r}, expected {FORMAT!r}")
    version = body.get("version")
    if version not in (FORMAT_VERSION, LEGACY_VERSION) or isinstance(version, bool):
        raise CheckpointCorrupt(
            f"format version {version!r} is not a version this vpccni reads "
            f"({LEGACY_VERSION} or {FORMAT_VERSION})",
            source=source,
            hint="run the vpccni release that wrote it (or a newer one) to read or convert it",
        )
    return int(version)


def _record(body: Mapping[str, Any]) -> Record:
    op = body.get("op")
    if op == "assign":
        return AssignRecord(assignment_of(body))
    if op == "release":
        return ReleaseRecord(key_of(body), address(body, "address"), seconds(body, "released_at"))
    raise Invalid(f"unknown record op {op!r}")
