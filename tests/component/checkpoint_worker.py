"""Crash-test worker: assigns and releases addresses through FileCheckpointStore until killed.

Usage: ``python checkpoint_worker.py DIRECTORY RUN SEED COMPACT_EVERY BOOT``. Loads the store (which
repairs whatever the previous kill left), prints ``ready``, then loops forever: choose a record
that follows from the current state, ``append`` it, and only then print the record's encoded
journal line (sequence 0) to stdout and flush - that line is the acknowledgement the parent
checks against.
Container ids carry RUN so keys never repeat across restarts. Stops by itself after a safety
deadline or when the parent goes away (broken pipe).
"""

from __future__ import annotations

import random
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.core.checkpoint import AssignRecord, Record, ReleaseRecord, encode_record
from vpccni.core.model import Assignment, PodKey, PodMeta

POOL = tuple(IPv4Address("10.1.0.0") + offset for offset in range(1, 97))
MOST_PODS = 40
SAFETY_DEADLINE_SECONDS = 30.0


def next_record(store: FileCheckpointStore, rng: random.Random, run: int, serial: int) -> Record:
    state = store.state
    pods = len(state.assignments)
    if pods and (pods >= MOST_PODS or rng.random() < 0.45):
        held = state.assignments[rng.choice(sorted(state.assignments))]
        return ReleaseRecord(held.key, held.address, time.time())
    taken = {assignment.address for assignment in state.assignments.values()}
    address = rng.choice([a for a in POOL if a not in taken])
    key = PodKey("aws-cni", f"run{run}-{serial}", "eth0")
    return AssignRecord(Assignment(key, address, PodMeta("crash", f"pod-{serial}"), time.time()))


def main(argv: list[str]) -> int:
    directory, run, seed, compact_every = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    store = FileCheckpointStore(directory, compact_every=compact_every, boot_id=argv[4])
    store.load()
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    rng = random.Random(seed)
    deadline = time.monotonic() + SAFETY_DEADLINE_SECONDS
    serial = 0
    while time.monotonic() < deadline:
        serial += 1
        record = next_record(store, rng, run, serial)
        store.append(record)
        try:
            out.write(encode_record(record, 0))
            out.flush()
        except BrokenPipeError:
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
