"""``vpccni explain``: a dry run of one warm-pool decision for a pool snapshot (JSON in, out)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.output import to_json
from vpccni.core.explain import SnapshotError, explain
from vpccni.errors import InvalidInput

MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024


def register(subparsers: Any) -> None:
    """Add the ``explain`` subcommand."""
    parser = subparsers.add_parser(
        "explain",
        help="dry-run the warm-pool decision for a pool snapshot",
        description="Read a pool snapshot (JSON; see docs/explain.md) and print, as JSON, the "
        "pool figures and the actions ipamd's logic would take this tick, with reasons.",
    )
    parser.add_argument("snapshot", metavar="FILE", help="snapshot JSON file, or - for stdin")
    parser.set_defaults(run=run)


def resolve_instance(name: str) -> tuple[int, int, bool]:
    """ENIs of the default card, IPv4 per ENI and trunking, from the shipped table."""
    limits = load_instance_table().get(name)
    return limits.enis, limits.ipv4_per_eni, limits.trunking


def run(args: argparse.Namespace) -> str:
    """Decode the snapshot, explain it, render JSON."""
    text = read_snapshot(args.snapshot)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SnapshotError(f"snapshot is not valid JSON: {error}") from None
    return to_json(explain(document, resolve_instance))


def read_snapshot(path: str) -> str:
    """The snapshot text from a file or stdin, bounded in size."""
    try:
        if path == "-":
            text = sys.stdin.read(MAX_SNAPSHOT_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(MAX_SNAPSHOT_BYTES + 1)
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read snapshot {path!r}: {error}") from None
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise InvalidInput(f"snapshot {path!r} is larger than {MAX_SNAPSHOT_BYTES} bytes")
    return text
