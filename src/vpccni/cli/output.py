"""Plain-text and JSON rendering shared by every ``vpccni`` subcommand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json")


def to_json(value: Any) -> str:
    """Stable, indented JSON for people and scripts alike."""
    return json.dumps(value, indent=2)


def key_values(rows: Sequence[tuple[str, object]]) -> str:
    """Two aligned columns: a label and its value."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def columns(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned table with a header line."""
    cells = [list(header), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
