"""The doctor's healthy lab node (one pod, plugin and conflist installed) for bundle tests."""

from __future__ import annotations

from tests.daemon.conftest import make_node  # noqa: F401  (shared fixture)
from tests.doctor.conftest import doctor_lab  # noqa: F401  (shared fixture)
from tests.netns.conftest import lab_node, netns_factory  # noqa: F401  (shared fixture)
