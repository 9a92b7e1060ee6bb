"""Node entrypoint tests reuse the daemon tests' emulated node (``make_node``)."""

from tests.daemon.conftest import make_node  # noqa: F401  (shared fixture)
