"""SIGKILL crash test: every acknowledged checkpoint record survives a kill at a random instant.

A worker process (checkpoint_worker.py) appends assign/release records through
FileCheckpointStore with a small ``compact_every`` (so kills land inside compactions too) and
prints each record only after ``append`` returned. The parent kills it with SIGKILL after a
seeded random delay - mostly while it appends, sometimes during start-up and load-time repair -
then loads a copy of the directory and requires the loaded state to be exactly the acknowledged
state, or that state plus the one record that was in flight. The next worker then continues on
the same directory from wherever the kill left it.

A SIGKILL cuts an append only where it crosses a page boundary (the kernel checks for a fatal
signal between pages; the file then ends exactly at a 4 KiB boundary - seen here about once in
200 kills). To cover power loss as well, the test tears the in-flight line itself in half of the
kills that left one, and then "reboots" (the next workers and loads get a new boot id): the
store accepts a partial record in a journal of this boot only at a page boundary.

``VPCCNI_CRASH_KILLS`` sets the number of kills (default 200, the CI figure). A SIGKILL keeps the
page cache, so this checks the write protocol (ordering, torn lines, the two renames of a
compaction), not the fsync calls; docs/checkpoint.md gives the power-loss argument.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import vpccni
from vpccni.adapters.checkpoint_file import JOURNAL_NAME, SNAPSHOT_NAME, FileCheckpointStore
from vpccni.core.checkpoint import (
    AssignRecord,
    CheckpointState,
    Record,
    ReleaseRecord,
    apply_record,
    decode_journal,
    decode_record,
    decode_snapshot,
    encode_record,
)

KILLS = int(os.environ.get("VPCCNI_CRASH_KILLS", "200"))
COMPACT_EVERY = 50
EARLY_KILL_SHARE = 0.1
TEAR_SHARE = 0.5
WORKER = Path(__file__).with_name("checkpoint_worker.py")
SEED = 20261126


def test_every_acknowledged_record_survives_sigkill(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    assert KILLS >= 1
    directory = tmp_path / "ipam"
    rng = random.Random(SEED)
    expected = CheckpointState.empty()
    seen: Counter[str] = Counter()
    started = time.monotonic()
    boot = "boot-0"
    for run in range(KILLS):
        acknowledged = run_worker_and_kill(directory, run, rng, tmp_path / "worker.err", boot)
        seen["acknowledged records"] += len(acknowledged)
        for record in acknowledged:
            expected = apply_record(expected, record)
        seen.update(leftovers(directory))
        loaded = load_copy(directory, tmp_path / "copy", boot)
        label, in_flight = outcome(expected, loaded, run)
        seen[label] += 1
        if in_flight is not None and rng.random() < TEAR_SHARE and tear(directory, in_flight, rng):
            seen["in-flight line torn by the test, then a reboot"] += 1
            boot = f"boot-{run + 1}"
            loaded = load_copy(directory, tmp_path / "copy", boot)
            assert loaded == expected, f"after tearing the in-flight line of run {run}"
        expected = loaded
    summary = ", ".join(f"{name}: {count}" for name, count in sorted(seen.items()))
    elapsed = time.monotonic() - started
    record_property("crash_summary", f"{KILLS} kills in {elapsed:.1f} s; {summary}")
    print(f"\n{KILLS} kills in {elapsed:.1f} s; {summary}")
    assert seen["acknowledged records"] > KILLS, "the workers barely ran; the test proved little"


def run_worker_and_kill(
    directory: Path, run: int, rng: random.Random, errors: Path, boot: str
) -> list[Record]:
    """Start a worker, SIGKILL it after a random delay, return the records it acknowledged."""
    source_root = str(Path(vpccni.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")])),
    }
    seed = rng.randrange(2**32)
    command = [
        sys.executable,
        str(WORKER),
        str(directory),
        str(run),
        str(seed),
        str(COMPACT_EVERY),
        boot,
    ]
    with errors.open("wb") as stderr:
        worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
    lines: list[bytes] = []
    ready = threading.Event()
    reader = threading.Thread(target=collect, args=(worker, lines, ready), daemon=True)
    reader.start()
    if rng.random() < EARLY_KILL_SHARE:
        time.sleep(rng.uniform(0.0, 0.12))  # during interpreter start-up, load and repair
    else:
        if not ready.wait(30):
            worker.kill()
            pytest.fail(f"worker {run} never became ready: {errors.read_text()}")
        time.sleep(rng.uniform(0.0, 0.04))
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    reader.join(30)
    if worker.returncode != -signal.SIGKILL:
        pytest.fail(f"worker {run} exited with {worker.returncode}: {errors.read_text()}")
    return [decode_record(line) for line in lines if line.endswith(b"\n")]


def collect(worker: subprocess.Popen[bytes], lines: list[bytes], ready: threading.Event) -> None:
    assert worker.stdout is not None
    for line in worker.stdout:
        if line == b"ready\n":
            ready.set()
        else:
            lines.append(line)
    worker.stdout.close()


def leftovers(directory: Path) -> list[str]:
    """What the kill left on disk that load must repair (for the summary)."""
    found = []
    if list(directory.glob("*.tmp")):
        found.append("killed with a temp file left")
    journal_path, snapshot_path = directory / JOURNAL_NAME, directory / SNAPSHOT_NAME
    if journal_path.exists():
        journal = decode_journal(journal_path.read_bytes())
        if journal.torn_bytes:
            found.append("killed with a torn tail not yet repaired")
        snapshot = snapshot_path.read_bytes() if snapshot_path.exists() else None
        if snapshot and decode_snapshot(snapshot).generation > journal.generation:
            found.append("killed between the compaction renames")
    return found


def load_copy(directory: Path, copy: Path, boot: str) -> CheckpointState:
    """Load a copy, so the repairs are left for the next worker to do (and be killed in)."""
    shutil.rmtree(copy, ignore_errors=True)
    if not directory.exists():
        return CheckpointState.empty()
    shutil.copytree(directory, copy)
    with FileCheckpointStore(copy, boot_id=boot) as store:
        return store.load()


def outcome(
    expected: CheckpointState, loaded: CheckpointState, run: int
) -> tuple[str, Record | None]:
    """Check ``loaded`` is the acknowledged state, or it plus the one in-flight record."""
    if loaded == expected:
        return "loaded exactly the acknowledged state", None
    gained = [a for k, a in loaded.assignments.items() if expected.assignments.get(k) != a]
    lost = [a for k, a in expected.assignments.items() if loaded.assignments.get(k) != a]
    in_flight: Record | None = None
    if len(gained) == 1 and not lost:
        in_flight = AssignRecord(gained[0])
    elif len(lost) == 1 and not gained and lost[0].address in loaded.cooldowns:
        in_flight = ReleaseRecord(lost[0].key, lost[0].address, loaded.cooldowns[lost[0].address])
    explanation = (
        f"after kill {run} the checkpoint differs from the acknowledged state by more than one "
        f"in-flight record: gained {gained}, lost {lost}"
    )
    assert in_flight is not None, explanation
    assert apply_record(expected, in_flight) == loaded, explanation
    return f"plus the in-flight {'assign' if isinstance(in_flight, AssignRecord) else 'release'}", (
        in_flight
    )


def tear(directory: Path, in_flight: Record, rng: random.Random) -> bool:
    """Tear the unacknowledged last journal line as a power loss could: cut it short or zero
    its end (SIGKILL alone cuts one only at a page boundary)."""
    path = directory / JOURNAL_NAME
    journal = decode_journal(path.read_bytes())
    if not journal.records or journal.records[-1] != in_flight or journal.torn_bytes:
        return False
    line = len(encode_record(in_flight, journal.last_seq))
    keep = journal.valid_length - rng.randint(1, line - 1)
    with path.open("r+b") as file:
        file.truncate(keep)
        if rng.random() < 0.5:
            file.seek(keep)
            file.write(b"\0" * (journal.valid_length - keep))
    return True
