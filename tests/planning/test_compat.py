"""``--compat subnet-calc`` reproduces the EKS workbook's numbers (shared reference
subnet-calc.md), including the values Excel cached in the workbook itself."""

from __future__ import annotations

from typing import Any

import openpyxl
import pytest

from tests.conftest import DATA
from tests.planning.conftest import plan_of
from vpccni.capacity.compat import compare

WORKBOOK_ROWS = [
    {"instance_type": "m5.12xlarge", "nodes": 2, "pods": 100},
    {"instance_type": "c5.2xlarge", "nodes": 1, "pods": 30},
]


def compat(scenario_of: Any, document: dict[str, Any]) -> dict[str, Any]:
    return compare(plan_of(scenario_of(document)))


def test_warm_eni_tab_matches_the_workbook_example(scenario_of: Any) -> None:
    result = compat(scenario_of, {"subnet_cidr": "10.0.0.0/23", "node_groups": WORKBOOK_ROWS})
    assert result["tab"] == "WarmENI"
    assert [n["subnet_addresses"] for n in result["nodes"]] == [152, 152, 47]
    totals = result["totals"]
    assert totals["subnet_addresses_available"] == 510
    assert totals["subnet_addresses_used"] == 351
    assert totals["pods"] == 230
    assert totals["subnet_addresses_free"] == 159
    real = result["real"]["totals"]
    assert real["subnet_addresses_available"] == 507
    assert real["subnet_addresses_used"] == sum(
        n["subnet_addresses"] for n in result["real"]["nodes"]
    )


def test_warm_ip_tab_matches_the_workbook_example(scenario_of: Any) -> None:
    result = compat(
        scenario_of,
        {
            "env": {"WARM_IP_TARGET": "1"},
            "subnet_cidr": "10.0.0.0/23",
            "node_groups": WORKBOOK_ROWS,
        },
    )
    assert result["tab"] == "WarmIP"
    assert [n["subnet_addresses"] for n in result["nodes"]] == [122, 122, 32]
    assert result["totals"]["subnet_addresses_used"] == 276
    assert result["totals"]["subnet_addresses_free"] == 234


@pytest.mark.parametrize(
    ("env", "per_node", "used", "remaining"),
    [({"WARM_ENI_TARGET": "1"}, 22, 66, 188), ({"WARM_IP_TARGET": "5"}, 12, 36, 218)],
)
def test_reference_examples_on_c5_large(
    scenario_of: Any, env: dict[str, str], per_node: int, used: int, remaining: int
) -> None:
    group = {"instance_type": "c5.large", "nodes": 3, "pods": 10}
    result = compat(scenario_of, {"env": env, "subnet_cidr": "10.0.0.0/24", "node_groups": [group]})
    assert [n["subnet_addresses"] for n in result["nodes"]] == [per_node] * 3
    assert result["totals"]["subnet_addresses_used"] == used
    assert result["totals"]["subnet_addresses_free"] == remaining


def test_guide_example_is_56_in_the_workbook_and_50_in_reality(scenario_of: Any) -> None:
    result = compat(
        scenario_of, {"node_groups": [{"instance_type": "c5.large", "pods": [1, 1, 0]}]}
    )
    assert [n["subnet_addresses"] for n in result["nodes"]] == [22, 22, 12]
    assert result["totals"]["subnet_addresses_used"] == 56
    assert result["real"]["totals"]["subnet_addresses_used"] == 50
    whats = [d["what"] for d in result["differences"]]
    assert whats[:3] == ["subnet addresses used", "ENI primary addresses", "host-network addresses"]
    primaries = result["differences"][1]
    assert primaries["real"] == 5
    assert "primary" in primaries["why"]


def test_unsupported_settings_are_named(scenario_of: Any) -> None:
    result = compat(
        scenario_of,
        {
            "mode": "prefix",
            "env": {"MINIMUM_IP_TARGET": "20"},
            "node_groups": [{"instance_type": "m5.large", "nodes": 1, "pods": 5}],
        },
    )
    ignored = next(d for d in result["differences"] if d["what"] == "settings the workbook ignores")
    assert "MINIMUM_IP_TARGET=20" in ignored["real"]
    assert "prefix delegation" in ignored["real"]


@pytest.mark.parametrize(("sheet", "env"), [("WarmENI", {}), ("WarmIP", {"WARM_IP_TARGET": "1"})])
def test_values_cached_in_the_workbook(scenario_of: Any, sheet: str, env: dict[str, str]) -> None:
    book = openpyxl.load_workbook(DATA / "subnet-calc.xlsx", data_only=True)
    tab = book[sheet]
    total_column = "N" if sheet == "WarmENI" else "Q"
    per_node_column = "L" if sheet == "WarmENI" else "K"
    rows = [
        {
            "instance_type": tab[f"A{r}"].value,
            "nodes": tab[f"B{r}"].value,
            "pods": tab[f"C{r}"].value,
        }
        for r in (23, 24)
    ]
    document = {
        "env": {**env, "WARM_ENI_TARGET": str(book["WarmENI"]["B13"].value)},
        "subnet_cidr": f"10.0.0.0/{tab['B4'].value}",
        "host_networking_ips": tab["B14"].value,
        "node_groups": rows,
    }
    if sheet == "WarmIP":
        document["env"]["WARM_IP_TARGET"] = str(tab["B13"].value)
    result = compat(scenario_of, document)
    per_node = [n["subnet_addresses"] for n in result["nodes"]]
    assert per_node == [tab[f"{per_node_column}23"].value] * 2 + [tab[f"{per_node_column}24"].value]
    assert sum(per_node[:2]) == tab[f"{total_column}23"].value
    assert result["totals"]["subnet_addresses_available"] == tab["B5"].value
    assert result["totals"]["subnet_addresses_used"] == tab["B8"].value
    assert result["totals"]["pods"] == tab["B9"].value
    assert result["totals"]["subnet_addresses_free"] == tab["B10"].value
