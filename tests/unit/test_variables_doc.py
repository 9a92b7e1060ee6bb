"""docs/variables.md shows exactly the catalogue of upstream's variables the code acts on."""

from __future__ import annotations

import re
from pathlib import Path

from vpccni.deploy.variables import DAEMON_VARIABLES, NODE_VARIABLES, UPSTREAM_VARIABLES
from vpccni.settings_upstream import CATALOGUE, HANDLINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "variables.md"
_ROW = re.compile(r"\| `([A-Za-z0-9_]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|")


def test_the_documented_table_is_the_catalogue() -> None:
    rows = [m.groups() for m in map(_ROW.fullmatch, DOC.read_text().splitlines()) if m]
    expected = [(v.name, v.handling, v.reader, v.what) for v in CATALOGUE]
    assert [tuple(cell.strip() for cell in row) for row in rows] == expected


def test_every_catalogued_variable_is_read_by_the_program_it_names() -> None:
    readers = {"ipamd": set(DAEMON_VARIABLES), "node": set(NODE_VARIABLES)}
    for variable in CATALOGUE:
        assert variable.handling in HANDLINGS, variable.name
        assert variable.name in readers[variable.reader], variable.name
    assert {v.name for v in CATALOGUE} == UPSTREAM_VARIABLES
