"""``vpccni plan --xlsx FILE``: the plan as a workbook a person can share.

A ``Summary`` sheet (settings, totals, subnets and, with ``--compat``, the workbook's figures
and the differences) and one sheet per node group with a row per node. Values are plain cells,
no formulas, so any spreadsheet program shows them as computed. Written with openpyxl.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vpccni.capacity.scenario import Scenario
from vpccni.errors import VpccniError

NODE_FIELDS = (
    "name",
    "instance_type",
    "subnet",
    "availability_zone",
    "eniconfig",
    "enis",
    "secondary_ips",
    "prefixes",
    "subnet_addresses",
    "pods",
    "assigned",
    "warm",
    "waste",
    "max_pods",
    "pods_without_ip",
    "pods_over_max_pods",
)


def write_xlsx(path: Path, scenario: Scenario, document: Mapping[str, Any]) -> None:
    """Write the plan document (plain or compat) to ``path``."""
    try:
        from openpyxl import Workbook  # type: ignore[import-untyped]
        from openpyxl.styles import Font  # type: ignore[import-untyped]
    except ImportError:
        raise VpccniError(
            "--xlsx needs openpyxl, which is not installed here (the node image leaves it out); "
            "install the planning extra: pip install 'vpccni[planning]'"
        ) from None

    real = document.get("real", document)
    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    bold = Font(bold=True)
    rows: list[Sequence[Any]] = [("vpccni plan", ""), ("mode", scenario.mode.value)]
    rows += [(name, value) for name, value in sorted(scenario.env.items())]
    rows += [("", ""), ("totals", "")]
    rows += [(key, _cell(value)) for key, value in real["totals"].items()]
    if real.get("subnets"):
        rows += [("", ""), ("subnet", "zone", "role", "usable", "used", "free", "ENIs", "fits")]
        rows += [
            (
                s["cidr"],
                s["availability_zone"],
                s["role"],
                s["usable"],
                s["used"],
                s["free"],
                s["enis"],
                s["fits"],
            )
            for s in real["subnets"]
        ]
    for warning in real.get("warnings", []):
        rows += [("WARNING", warning["message"])]
    if "differences" in document:
        rows += [("", ""), (f"EKS subnet calculator ({document['tab']} tab)", "")]
        rows += [(key, _cell(value)) for key, value in document["totals"].items()]
        rows += [("", ""), ("what differs", "workbook", "real", "why")]
        rows += [
            (d["what"], _cell(d["workbook"]), _cell(d["real"]), d["why"])
            for d in document["differences"]
        ]
    for row in rows:
        summary.append(list(row))
        if (len(row) > 1 and row[1] == "") or row[0] in ("subnet", "what differs"):
            summary.cell(summary.max_row, 1).font = bold
    summary.column_dimensions["A"].width = 32
    for group in scenario.groups:
        sheet = book.create_sheet(_sheet_name(group.name, group.index))
        sheet.append(list(NODE_FIELDS))
        for cell in sheet[1]:
            cell.font = bold
        for node in real["nodes"]:
            if node["group"] == group.index:
                sheet.append([_cell(node.get(field)) for field in NODE_FIELDS])
        sheet.column_dimensions["A"].width = 18
    try:
        book.save(path)
    except OSError as error:
        raise VpccniError(
            f"cannot write the workbook {path}: {error.strerror or error}; choose a writable path"
        ) from None


def _cell(value: Any) -> Any:
    return "-" if value is None else value


def _sheet_name(name: str, index: int) -> str:
    cleaned = "".join("_" if c in "[]:*?/\\" else c for c in name)[:28]
    return cleaned or f"group{index}"
