"""The max-pods calculator: the worked examples of the reference and the fallback rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpccni.core.limits import InstanceTable
from vpccni.core.maxpods import (
    CniVersion,
    MaxPodsOptions,
    compute_max_pods,
    parse_cni_version,
    vcpu_cap,
)
from vpccni.errors import InvalidInput, MissingFact

CNI_1_9 = parse_cni_version("1.9.0")

# (instance type, options, raw max pods, printed by the calculator without --show-max-allowed)
WORKED_EXAMPLES = [
    ("m5.large", {}, 29, 29),
    ("m5.large", {"prefix_delegation": True}, 434, 110),
    ("m5.large", {"custom_networking": True}, 20, 20),
    ("m5.large", {"custom_networking": True, "prefix_delegation": True}, 290, 110),
    ("m5.large", {"prefix_delegation": True, "cni_version": parse_cni_version("1.8.0")}, 29, 29),
    ("m5.large", {"prefix_delegation": True, "max_eni": 1}, 146, 110),
    ("m5.24xlarge", {}, 737, 250),
    ("t3.nano", {}, 4, 4),
    ("t3.nano", {"prefix_delegation": True}, 34, 34),
    ("m4.large", {"prefix_delegation": True}, 20, 20),
    ("p5.48xlarge", {}, 100, 100),
    ("p5.48xlarge", {"prefix_delegation": True}, 1570, 250),
]


@pytest.mark.parametrize(("instance", "flags", "raw", "printed"), WORKED_EXAMPLES)
def test_worked_examples(
    table: InstanceTable, instance: str, flags: dict[str, object], raw: int, printed: int
) -> None:
    options = MaxPodsOptions(**{"cni_version": CNI_1_9, **flags})  # type: ignore[arg-type]
    result = compute_max_pods(table.get(instance), options)
    assert result.uncapped == raw
    assert result.recommended == printed
    assert result.figure(recommended=False) == raw
    assert result.figure(recommended=True) == printed


def test_non_nitro_prefix_delegation_falls_back_with_a_note(table: InstanceTable) -> None:
    result = compute_max_pods(table.get("m4.large"), MaxPodsOptions(prefix_delegation=True))
    assert not result.prefix_delegation_applied
    assert "prefix delegation needs a Nitro instance; m4.large is xen" in result.note


def test_bare_metal_prefix_delegation_falls_back_like_the_calculator(table: InstanceTable) -> None:
    metal = table.get("c5.metal")
    result = compute_max_pods(metal, MaxPodsOptions(prefix_delegation=True))
    assert result.uncapped == metal.enis * (metal.ipv4_per_eni - 1) + 2
    assert "bare metal" in result.note
    assert "ipamd itself does allow prefixes on bare metal" in result.note


def test_old_cni_version_note(table: InstanceTable) -> None:
    options = MaxPodsOptions(prefix_delegation=True, cni_version=parse_cni_version("1.8.3"))
    assert (
        "needs VPC CNI 1.9.0 or later; 1.8.3"
        in compute_max_pods(table.get("m5.large"), options).note
    )


def test_max_eni_applies_before_custom_networking(table: InstanceTable) -> None:
    result = compute_max_pods(
        table.get("m5.large"), MaxPodsOptions(max_eni=1, custom_networking=True)
    )
    assert result.enis_for_pods == 0
    assert result.uncapped == 2


def test_max_eni_above_the_limit_changes_nothing(table: InstanceTable) -> None:
    result = compute_max_pods(table.get("m5.large"), MaxPodsOptions(max_eni=50))
    assert result.uncapped == 29
    assert result.note == ""


def test_cap_boundary_is_strictly_more_than_30_vcpus() -> None:
    assert vcpu_cap(30) == 110
    assert vcpu_cap(31) == 250
    assert vcpu_cap(2) == 110


def test_recommended_without_vcpus_names_the_missing_fact(table: InstanceTable) -> None:
    result = compute_max_pods(table.get("p3.2xlarge"), MaxPodsOptions())
    assert result.recommended is None
    assert result.uncapped == 4 * 14 + 2
    with pytest.raises(MissingFact, match="no vCPU count"):
        result.figure(recommended=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.9.0", CniVersion(1, 9, 0)), ("v1.18.3", CniVersion(1, 18, 3)), ("2.0", CniVersion(2, 0))],
)
def test_cni_versions(text: str, expected: CniVersion) -> None:
    assert parse_cni_version(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1.x", "latest", "1.9.0-rc1", "1..9"])
def test_bad_cni_versions_are_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"expected X\.Y or X\.Y\.Z"):
        parse_cni_version(text)


def test_prefix_delegation_threshold() -> None:
    assert not CniVersion(1, 8, 99).supports_prefix_delegation
    assert CniVersion(1, 9).supports_prefix_delegation
    assert CniVersion(2, 0).supports_prefix_delegation


@pytest.mark.parametrize("value", [0, -1])
def test_max_eni_must_be_positive(value: int) -> None:
    with pytest.raises(InvalidInput, match="give 1 or more"):
        MaxPodsOptions(max_eni=value)


@given(
    index=st.integers(min_value=0, max_value=1163),
    custom=st.booleans(),
    max_eni=st.none() | st.integers(min_value=1, max_value=20),
)
def test_properties_over_the_whole_table(
    table: InstanceTable, index: int, custom: bool, max_eni: int | None
) -> None:
    limits = list(table)[index]
    base = MaxPodsOptions(custom_networking=custom, max_eni=max_eni)
    secondary = compute_max_pods(limits, base)
    prefix = compute_max_pods(
        limits, MaxPodsOptions(custom_networking=custom, max_eni=max_eni, prefix_delegation=True)
    )
    assert secondary.uncapped >= 2
    assert prefix.uncapped >= secondary.uncapped
    for result in (secondary, prefix):
        if result.recommended is not None:
            assert result.recommended <= result.uncapped
            assert result.recommended <= 250
    if custom:
        plain = compute_max_pods(limits, MaxPodsOptions(max_eni=max_eni))
        assert secondary.uncapped == plain.uncapped - limits.secondary_ipv4_per_eni
