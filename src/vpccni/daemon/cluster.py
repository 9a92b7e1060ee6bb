"""The daemon's view of the Kubernetes cluster: which source runs, and what it decides.

A :class:`~vpccni.ports.ClusterSource` gives the daemon a
:class:`~vpccni.core.cluster.ClusterView`: the Kubernetes API (``adapters.kubernetes_source``),
a directory of ENIConfig YAML with node labels from the command line
(``adapters.eniconfig_files``), or nothing (:class:`NoClusterSource`). The daemon keeps the source
on its node object (``Node.cluster``), so the pool engine reads ``view()`` each tick.
"""

from __future__ import annotations

from vpccni.core.cluster import ClusterView

NO_API = "no Kubernetes API access"


class NoClusterSource:
    """No cluster at all: an empty view that says why."""

    def __init__(self, problem: str = NO_API) -> None:
        self._view = ClusterView(problem=problem)

    def view(self) -> ClusterView:
        return self._view

    def close(self) -> None:
        """Nothing to stop."""
