"""Node entrypoint tests reuse the daemon tests' emulated node (``make_node``) and the netns
tests' namespaces (``netns_factory``: ``vt-`` names, deleted afterwards, root needed - CI fails
loudly without it)."""

from tests.daemon.conftest import make_node  # noqa: F401  (shared fixture)
from tests.netns.conftest import netns_factory  # noqa: F401  (shared fixture)
