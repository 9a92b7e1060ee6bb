"""Fixtures of the end-to-end tests: the node image (built once per session) and a node."""

from __future__ import annotations

from tests.daemon.conftest import make_node  # noqa: F401  (shared fixture)
from tests.image.conftest import built_image  # noqa: F401  (shared fixture)
