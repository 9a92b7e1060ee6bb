"""The shipped instance table: size, the default-card ENI rule, lookups and provenance."""

from __future__ import annotations

import pytest

from vpccni.core.limits import InstanceTable, parse_instance_table
from vpccni.errors import UnknownInstanceType, VpccniError


def test_table_has_every_type_with_provenance(table: InstanceTable) -> None:
    assert len(table) == 1164
    assert table.provenance["limits"]["commit"] == "b8d425119bdba371202882b808f202c6073a46cc"
    assert table.provenance["vcpus"]["package"].startswith("moto==")
    without = table.provenance["vcpus"]["types_without_vcpus"]
    assert len(without) == 13
    assert sorted(limits.instance_type for limits in table if limits.vcpus is None) == without


def test_eni_limit_is_the_default_cards(table: InstanceTable) -> None:
    p5 = table.get("p5.48xlarge")
    assert (p5.enis, p5.enis_all_cards, len(p5.network_cards)) == (2, 64, 32)
    multi_card = [limits for limits in table if len(limits.network_cards) > 1]
    assert len(multi_card) == 33
    for limits in table:
        default = limits.network_cards[limits.default_network_card_index]
        assert limits.enis == default.max_interfaces
        assert limits.enis_all_cards == sum(card.max_interfaces for card in limits.network_cards)


def test_hypervisor_and_bare_metal(table: InstanceTable) -> None:
    assert table.get("m5.large").nitro
    assert table.get("m4.large").hypervisor == "xen"
    metal = table.get("c5.metal")
    assert metal.bare_metal
    assert metal.hypervisor == ""
    assert metal.hypervisor_label == "none (bare metal)"
    assert all(limits.bare_metal == (limits.hypervisor == "") for limits in table)


def test_lookup_ignores_case_and_space(table: InstanceTable) -> None:
    assert table.get(" M5.Large ").instance_type == "m5.large"


def test_unknown_type_suggests_the_closest(table: InstanceTable) -> None:
    with pytest.raises(UnknownInstanceType) as caught:
        table.get("m5.larg")
    assert caught.value.suggestions[0] == "m5.large"
    assert "did you mean m5.large" in str(caught.value)


def test_nonsense_type_has_no_suggestion(table: InstanceTable) -> None:
    with pytest.raises(UnknownInstanceType, match="not among the 1164 types") as caught:
        table.get("zzzzzzzz")
    assert caught.value.suggestions == ()


def test_wrong_format_version_is_refused() -> None:
    with pytest.raises(VpccniError, match="format_version 99"):
        parse_instance_table({"format_version": 99, "instance_types": {}})
