"""Shared fixtures: the shipped instance table and paths to the test data."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpccni.adapters.instance_data import load_instance_table
from vpccni.core.limits import InstanceTable

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def table() -> InstanceTable:
    """The instance table vpccni ships."""
    return load_instance_table()
