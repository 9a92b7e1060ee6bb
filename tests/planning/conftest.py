"""Helpers for the planning tests: scenarios from dicts, plans and simulations of them."""

from __future__ import annotations

import os
from typing import Any

import pytest

from vpccni.capacity.plan import Plan, plan
from vpccni.capacity.scenario import Scenario, parse_scenario
from vpccni.core.limits import InstanceTable
from vpccni.sim.cluster import Simulation

EXAMPLES = int(os.environ.get("VPCCNI_PROPERTY_EXAMPLES", "60"))


@pytest.fixture(scope="session")
def scenario_of(table: InstanceTable) -> Any:
    def build(document: dict[str, Any]) -> Scenario:
        return parse_scenario(document, table.get)

    return build


def plan_of(scenario: Scenario) -> Plan:
    return plan(scenario)


def simulate(scenario: Scenario, seed: int = 0, duration: float | None = None) -> dict[str, Any]:
    simulation = Simulation(scenario, seed=seed, duration=duration)
    simulation.run()
    return simulation.recorder.report()
