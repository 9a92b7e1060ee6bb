"""The IPAM checkpoint: its state, its journal records, and its on-disk encoding (bytes only).

Owns :class:`CheckpointState` (which pod interface holds which address, and when each released
address began cooling down), the journal records that change it (:class:`AssignRecord`,
:class:`ReleaseRecord`, applied by :func:`apply_record`), and the versioned ``vpccni-ipam``
format: a snapshot document carrying a ``generation`` and a journal of one record per line.
Every snapshot and every journal line is framed as ``{"crc32":"<8 hex>","<kind>":<body>}`` with
the CRC-32 taken over the exact body bytes, so a torn or bit-flipped line is detected and each
line is still plain JSON for ``jq``. Floats are written with ``repr`` and so round-trip exactly.
Reading the upstream ``vpc-cni-ipam/1`` file lives in ``vpccni.core.checkpoint_upstream``; files,
fsync and crash recovery live in ``vpccni.adapters.checkpoint_file``. See docs/checkpoint.md.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.errors import VpccniError

FORMAT = "vpccni-ipam"
FORMAT_VERSION = 1

_FRAME_OPEN = b'{"crc32":"'
_CRC_HEX_DIGITS = 8
DEFAULT_HINT = (
    "inspect it (every line is JSON), restore it from a backup, or move the checkpoint "
    "directory aside to start empty - vpccni never discards a checkpoint silently"
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
    """A whole state as of the end of journal generation ``generation - 1``."""

    generation: int
    state: CheckpointState


@dataclass(frozen=True)
class Journal:
    """A decoded journal: its generation, its records, and how much of the file is sound.

    ``valid_length`` bytes are sound; ``torn_bytes`` after them are one torn final line (a crash
    during an append that was therefore never acknowledged), to be truncated away.
    """

    generation: int
    records: tuple[Record, ...]
    valid_length: int
    torn_bytes: int = 0

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
        "generation": snapshot.generation,
        "assignments": [
            _assignment_body(state.assignments[key]) for key in sorted(state.assignments)
        ],
        "cooldowns": [
            {"address": str(address), "released_at": state.cooldowns[address]}
            for address in sorted(state.cooldowns)
        ],
    }
    return _frame("snapshot", body)


def encode_journal_header(generation: int) -> bytes:
    """The first line of a journal that follows the snapshot of ``generation``."""
    return _frame("header", {"format": FORMAT, "version": FORMAT_VERSION, "generation": generation})


def encode_record(record: Record) -> bytes:
    """One journal line, newline included."""
    if isinstance(record, AssignRecord):
        return _frame("record", {"op": "assign", **_assignment_body(record.assignment)})
    body = {"op": "release", **_key_body(record.key), "address": str(record.address)}
    return _frame("record", {**body, "released_at": record.released_at})


def _frame(kind: str, body: Mapping[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    crc = b"%08x" % zlib.crc32(payload)
    return b"".join((_FRAME_OPEN, crc, b'","', kind.encode("ascii"), b'":', payload, b"}\n"))


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


class _Invalid(Exception):
    """Why a body is unacceptable; turned into CheckpointCorrupt with the file and line."""


def decode_snapshot(data: bytes, *, source: str = "") -> Snapshot:
    """Parse and validate a snapshot file; raises :class:`CheckpointCorrupt`."""
    try:
        body = _unframe(data.removesuffix(b"\n"), "snapshot")
        _check_format(body, source)
        generation = _generation(body)
        assignments: dict[PodKey, Assignment] = {}
        holders: dict[IPv4Address, PodKey] = {}
        for entry in _list(body, "assignments"):
            assignment = _assignment(entry)
            if assignment.key in assignments or assignment.address in holders:
                raise _Invalid(f"{assignment.key} or {assignment.address} appears twice")
            assignments[assignment.key] = assignment
            holders[assignment.address] = assignment.key
        cooldowns: dict[IPv4Address, float] = {}
        for entry in _list(body, "cooldowns"):
            cooling = _object(entry)
            address = _address(cooling, "address")
            if address in cooldowns or address in holders:
                raise _Invalid(f"cooling address {address} is also listed elsewhere")
            cooldowns[address] = _time(cooling, "released_at")
    except _Invalid as invalid:
        raise CheckpointCorrupt(str(invalid), source=source) from None
    return Snapshot(generation, CheckpointState(assignments, cooldowns))


def decode_journal(data: bytes, *, source: str = "") -> Journal:
    """Parse a journal file, tolerating exactly one torn final line; raises CheckpointCorrupt.

    The final line is torn when it has no newline (the append never finished) or fails its
    checksum or parse (the crash left garbage where it was being written), and holds at most
    one frame start. Any other bad line is corruption.
    """
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    torn = len(tail)
    if not tail and len(lines) > 1 and not _is_sound_record(lines[-1]):
        tail = lines.pop()
        torn = len(tail) + 1
    if tail.count(_FRAME_OPEN) > 1:
        # One append writes one frame, so a torn write holds at most one frame start; more
        # means a damaged newline merged acknowledged records into this line.
        raise CheckpointCorrupt(
            "the last line holds more than one record (a damaged line separator)",
            source=source,
            line=len(lines) + 1,
        )
    if not lines:
        raise CheckpointCorrupt("the journal has no complete header line", source=source)
    try:
        header = _unframe(lines[0], "header")
        _check_format(header, source)
        generation = _generation(header)
    except _Invalid as invalid:
        raise CheckpointCorrupt(str(invalid), source=source, line=1) from None
    records: list[Record] = []
    for index, line in enumerate(lines[1:]):
        try:
            records.append(_record(_unframe(line, "record")))
        except _Invalid as invalid:
            raise CheckpointCorrupt(
                str(invalid), source=source, line=Journal.line_of(index)
            ) from None
    return Journal(generation, tuple(records), len(data) - torn, torn)


def decode_record(line: bytes) -> Record:
    """One journal line (with or without its newline); raises :class:`CheckpointCorrupt`."""
    try:
        return _record(_unframe(line.removesuffix(b"\n"), "record"))
    except _Invalid as invalid:
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


def _is_sound_record(line: bytes) -> bool:
    try:
        _record(_unframe(line, "record"))
    except _Invalid:
        return False
    return True


def _unframe(line: bytes, kind: str) -> dict[str, Any]:
    crc_end = len(_FRAME_OPEN) + _CRC_HEX_DIGITS
    label = b'","' + kind.encode("ascii") + b'":'
    start = crc_end + len(label)
    framed = line.startswith(_FRAME_OPEN) and line[crc_end:start] == label
    if not framed or not line.endswith(b"}") or len(line) <= start + 1:
        raise _Invalid(f"not a {FORMAT} {kind} line")
    payload = line[start:-1]
    if line[len(_FRAME_OPEN) : crc_end] != b"%08x" % zlib.crc32(payload):
        raise _Invalid(f"checksum mismatch (torn or damaged {kind})")
    try:
        body = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise _Invalid(f"the {kind} is not valid JSON ({error})") from None
    return _object(body)


def _reject_constant(name: str) -> float:
    raise _Invalid(f"{name} is not a valid time")


def _check_format(body: Mapping[str, Any], source: str) -> None:
    if body.get("format") != FORMAT:
        raise _Invalid(f"format is {body.get('format')!r}, expected {FORMAT!r}")
    version = body.get("version")
    if version != FORMAT_VERSION:
        raise CheckpointCorrupt(
            f"format version {version!r} is not the version this vpccni reads ({FORMAT_VERSION})",
            source=source,
            hint="run the vpccni release that wrote it (or a newer one) to read or convert it",
        )


def _record(body: Mapping[str, Any]) -> Record:
    op = body.get("op")
    if op == "assign":
        return AssignRecord(_assignment(body))
    if op == "release":
        return ReleaseRecord(_key(body), _address(body, "address"), _time(body, "released_at"))
    raise _Invalid(f"unknown record op {op!r}")


def _assignment(entry: object) -> Assignment:
    body = _object(entry)
    meta = PodMeta(_str(body, "namespace"), _str(body, "name"))
    return Assignment(_key(body), _address(body, "address"), meta, _time(body, "assigned_at"))


def _key(body: Mapping[str, Any]) -> PodKey:
    return PodKey(_str(body, "network"), _str(body, "container_id"), _str(body, "ifname"))


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a JSON object, found {type(value).__name__}")
    return value


def _list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise _Invalid(f"{name!r} must be a list")
    return value


def _str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _Invalid(f"{name!r} must be a string, found {value!r}")
    return value


def _address(body: Mapping[str, Any], name: str) -> IPv4Address:
    try:
        return IPv4Address(_str(body, name))
    except AddressValueError as error:
        raise _Invalid(f"{name!r}: {error}") from None


def _time(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise _Invalid(f"{name!r} must be a finite number of seconds, found {value!r}")


def _generation(body: Mapping[str, Any]) -> int:
    value = body.get("generation")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"'generation' must be a non-negative integer, found {value!r}")
    return value
