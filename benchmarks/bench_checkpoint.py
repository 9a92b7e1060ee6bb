"""Durable IPAM checkpoint throughput and latency: our journal store against peers, same run.

Every design below makes each operation durable before the next starts, on the same directory,
replaying the same deterministic stream of records (assign a new pod / release an old one) on
top of the same preloaded node state (``--pods`` assigned, a pool of ``--pool`` addresses, the
rest cooling down). An "op" is one record. Designs:

* ``journal (ours)``: ``vpccni.adapters.checkpoint_file.FileCheckpointStore`` (append +
  fdatasync, compaction every ``--compact-every`` records, included in the timings);
* ``whole-file rewrite``: the alternative design - encode the whole state, temp file, fsync,
  rename, directory fsync per op (upstream ipamd's scheme plus the directory fsync);
* ``bare write+fsync+rename``: the syscalls alone on a file of the snapshot's size, no encoding
  and no directory fsync - the floor for any whole-file design;
* ``bare append+fdatasync``: the syscalls alone on lines of a record's size - the floor for a
  journal;
* ``sqlite WAL, synchronous=FULL`` and ``sqlite rollback, synchronous=FULL``: stdlib sqlite3,
  one transaction per op.

Run: ``.venv/bin/python benchmarks/bench_checkpoint.py [--ops N] [--dir DIR]``. The default
directory is ``.bench-tmp/`` in the repository (a real disk; tmpfs would make fsync free and the
figures meaningless - the script says which file system it measured).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vpccni.adapters.checkpoint_file import FileCheckpointStore  # noqa: E402
from vpccni.core.checkpoint import (  # noqa: E402
    AssignRecord,
    CheckpointState,
    Record,
    ReleaseRecord,
    Snapshot,
    apply_record,
    encode_record,
    encode_snapshot,
)
from vpccni.core.model import Assignment, PodKey, PodMeta  # noqa: E402

WARMUP_OPS = 200
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    name: str
    ops: int
    seconds: float
    latencies_ns: tuple[int, ...]

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


# -- workload -----------------------------------------------------------------------------------


def workload(pods: int, pool: int, ops: int, seed: int) -> tuple[list[Record], list[Record]]:
    """Records that build the preloaded state, then ``ops`` alternating release/assign records."""
    rng = random.Random(seed)
    addresses = [IPv4Address("10.0.0.0") + 10 + i for i in range(pool)]
    state = CheckpointState.empty()
    preload: list[Record] = []
    clock = 1_700_000_000.0
    serial = 0

    def assign() -> Record:
        nonlocal serial, clock
        serial += 1
        clock += rng.random()
        held = {a.address for a in state.assignments.values()}
        address = rng.choice([a for a in addresses if a not in held])
        key = PodKey("aws-cni", f"{serial:064x}", "eth0")
        return AssignRecord(Assignment(key, address, PodMeta("default", f"pod-{serial}"), clock))

    def release() -> Record:
        nonlocal clock
        clock += rng.random()
        victim = state.assignments[rng.choice(sorted(state.assignments))]
        return ReleaseRecord(victim.key, victim.address, clock)

    for _ in range(pool):  # touch every address once, so most of the pool is cooling
        record = assign()
        state = apply_record(state, record)
        preload.append(record)
        if len(state.assignments) > pods:
            record = release()
            state = apply_record(state, record)
            preload.append(record)
    stream: list[Record] = []
    for index in range(ops + WARMUP_OPS):
        record = release() if index % 2 == 0 else assign()
        state = apply_record(state, record)
        stream.append(record)
    return preload, stream


def replay(records: Iterable[Record]) -> CheckpointState:
    state = CheckpointState.empty()
    for record in records:
        state = apply_record(state, record)
    return state


# -- designs ------------------------------------------------------------------------------------


def run_ours(directory: Path, preload: list[Record], stream: list[Record], every: int) -> Result:
    store = FileCheckpointStore(directory, compact_every=every)
    store.load()
    for record in preload:
        store.append(record)
    store.compact()
    result = timed("journal (ours)", stream, store.append)
    store.close()
    reloaded = FileCheckpointStore(directory).load()
    assert reloaded == replay([*preload, *stream]), "the journal store lost or changed records"
    return result


def run_whole_file(directory: Path, preload: list[Record], stream: list[Record]) -> Result:
    directory.mkdir()
    path = directory / "ipam.snapshot"
    state = replay(preload)
    generation = 0

    def write(record: Record) -> None:
        nonlocal state, generation
        state = apply_record(state, record)
        generation += 1
        replace_file(path, encode_snapshot(Snapshot(generation, state)), fsync_directory=True)

    return timed("whole-file rewrite", stream, write)


def run_bare_rename(directory: Path, size: int, ops: int) -> Result:
    directory.mkdir()
    data = b"x" * size
    return timed(
        "bare write+fsync+rename",
        range(ops + WARMUP_OPS),
        lambda _: replace_file(directory / "f", data, fsync_directory=False),
    )


def run_bare_append(directory: Path, line_size: int, ops: int) -> Result:
    directory.mkdir()
    fd = os.open(directory / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line = b"x" * (line_size - 1) + b"\n"

    def append(_: int) -> None:
        os.write(fd, line)
        os.fdatasync(fd)

    try:
        return timed("bare append+fdatasync", range(ops + WARMUP_OPS), append)
    finally:
        os.close(fd)


def run_sqlite(directory: Path, preload: list[Record], stream: list[Record], wal: bool) -> Result:
    directory.mkdir()
    db = sqlite3.connect(directory / "ipam.db", isolation_level=None)
    db.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE assignments (network TEXT, container_id TEXT, ifname TEXT, address TEXT"
        " UNIQUE, namespace TEXT, name TEXT, assigned_at REAL,"
        " PRIMARY KEY (network, container_id, ifname))"
    )
    db.execute("CREATE TABLE cooldowns (address TEXT PRIMARY KEY, released_at REAL)")

    def write(record: Record) -> None:
        db.execute("BEGIN")
        if isinstance(record, AssignRecord):
            a = record.assignment
            db.execute(
                "INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*astuple_key(a.key), str(a.address), a.meta.namespace, a.meta.name, a.assigned_at),
            )
            db.execute("DELETE FROM cooldowns WHERE address = ?", (str(a.address),))
        else:
            db.execute(
                "DELETE FROM assignments WHERE network = ? AND container_id = ? AND ifname = ?",
                astuple_key(record.key),
            )
            db.execute(
                "INSERT OR REPLACE INTO cooldowns VALUES (?, ?)",
                (str(record.address), record.released_at),
            )
        db.execute("COMMIT")

    for record in preload:
        write(record)
    name = f"sqlite {'WAL' if wal else 'rollback'}, synchronous=FULL"
    try:
        return timed(name, stream, write)
    finally:
        db.close()


def astuple_key(key: PodKey) -> tuple[str, str, str]:
    return key.network, key.container_id, key.ifname


def replace_file(path: Path, data: bytes, *, fsync_directory: bool) -> None:
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    if fsync_directory:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def timed(name: str, items: Sequence[T], operation: Callable[[T], object]) -> Result:
    latencies: list[int] = []
    clock = time.perf_counter_ns
    for item in items[:WARMUP_OPS]:
        operation(item)
    measured = items[WARMUP_OPS:]
    begin = clock()
    for item in measured:
        start = clock()
        operation(item)
        latencies.append(clock() - start)
    return Result(name, len(latencies), (clock() - begin) / 1e9, tuple(latencies))


# -- reporting ----------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The file system type holding ``path``, from /proc/self/mounts (longest mount prefix)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def report(results: list[Result]) -> str:
    ours = results[0]
    header = (
        f"{'design':<36}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'ours/x ops/s':>14}{'x/ours p99':>12}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        lines.append(
            f"{result.name:<36}{result.ops_per_second:>9,.0f}{result.percentile_ms(0.5):>9.3f}"
            f"{result.percentile_ms(0.99):>9.3f}{max(result.latencies_ns) / 1e6:>9.2f}"
            f"{ours.ops_per_second / result.ops_per_second:>14.2f}"
            f"{result.percentile_ms(0.99) / ours.percentile_ms(0.99):>12.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=5000, help="timed ops per design")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench-tmp", help="where to write")
    parser.add_argument("--pods", type=int, default=110, help="pods holding an address")
    parser.add_argument("--pool", type=int, default=250, help="addresses on the node")
    parser.add_argument("--compact-every", type=int, default=1000, help="journal records")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.ops < 1 or args.pool <= args.pods + 1:
        parser.error("--ops must be positive and --pool larger than --pods + 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    kind = filesystem_of(args.dir)
    preload, stream = workload(args.pods, args.pool, args.ops, args.seed)
    state = replay(preload)
    snapshot_size = len(encode_snapshot(Snapshot(1, state)))
    line_size = round(statistics.mean(len(encode_record(r)) for r in stream))
    print(
        f"directory {args.dir} ({kind}); {args.ops} timed ops per design after {WARMUP_OPS} "
        f"warm-up; state: {len(state.assignments)} pods, {len(state.cooldowns)} cooling; "
        f"snapshot {snapshot_size} B, journal line {line_size} B"
    )
    if kind in {"tmpfs", "ramfs"}:
        print("warning: fsync is free on this file system; use --dir on a real disk")
    work = Path(tempfile.mkdtemp(prefix="bench-checkpoint-", dir=args.dir))
    try:
        results = [
            run_ours(work / "ours", preload, stream, args.compact_every),
            run_whole_file(work / "whole", preload, stream),
            run_bare_rename(work / "rename", snapshot_size, args.ops),
            run_bare_append(work / "append", line_size, args.ops),
            run_sqlite(work / "sqlite-wal", preload, stream, wal=True),
            run_sqlite(work / "sqlite-rollback", preload, stream, wal=False),
        ]
    finally:
        shutil.rmtree(work)
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
