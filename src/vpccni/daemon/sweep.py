"""The leaked-pod sweep: release pods whose runtime never sent DEL.

Some runtimes remove a container without any CNI call (containerd's ``ctr`` with a detached
container): the pod's namespace goes, and with it the veth pair, but its address and its rules
stay until the daemon restarts. Every ``interval`` the sweep looks at each assignment from the
node's side: when its host veth is gone, the pod is *missing* from that moment. (A veth that is
down but exists still has its peer in the pod's namespace - the kernel deletes the pair with the
namespace - so the pod is there, e.g. with its ``eth0`` set down; the daemon holds no pod
namespace open between requests, which would keep it alive.) A pod missing for ``grace``
seconds on the daemon's clock (``VPCCNI_POD_SWEEP_GRACE_SECONDS``, 60 s by default: far longer
than any ADD takes between taking an address and creating the veth) is released as a DEL would
(``Datapath.release_pod``): rules and route removed, the address released durably through the
IPAM service - unless, once the release holds the pod's veth name and the service's lock, the
pod is found released, replaced or with its veth back. Each release is
logged and counted (``awscni_ipamd_error_count{fn="podSweepReleased"}``). The sweep also retries
the ENI host clean-ups that failed before. Only with a datapath: without one the daemon wires
nothing and cannot see a pod go.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.service import IpamService
from vpccni.ports import Metrics, NullMetrics

log = logging.getLogger("vpccni.ipamd")
SWEEP_FN = "podSweepReleased"


@dataclass
class PodSweep:
    """Finds pods gone without a DEL and releases them after ``grace`` seconds."""

    service: IpamService
    datapath: Datapath
    grace: float
    metrics: Metrics = field(default_factory=NullMetrics)
    missing: dict[PodKey, float] = field(default_factory=dict)
    """Pods seen without their host veth, and since when (the daemon's clock)."""

    def sweep(self) -> list[Assignment]:
        """One pass: note missing pods, release those missing for ``grace``; returns them."""
        self.datapath.retry_removals()
        now = self.service.clock.now()
        due = [a for a in self._missing_now(now) if now - self.missing[a.key] >= self.grace]
        if not due:
            return []
        released = []
        for assignment in due:
            if self._release(assignment, now):
                released.append(assignment)
        return released

    def _missing_now(self, now: float) -> list[Assignment]:
        veths = self.datapath.host.host_veths()
        assignments = self.service.assignments()
        gone = [a for a in assignments if not self._present(a, veths)]
        keys = {a.key for a in gone}
        for key in [k for k in self.missing if k not in keys]:
            del self.missing[key]  # back, or released by a DEL
        for assignment in gone:
            since = self.missing.setdefault(assignment.key, now)
            if since > now:  # the clock stepped back: start over
                self.missing[assignment.key] = now
        return gone

    def _present(self, assignment: Assignment, veths: set[str]) -> bool:
        veth = self.datapath.wiring_of(self.service, assignment).host_veth
        return veth in veths or self.datapath.veth_exists(veth)

    def _release(self, assignment: Assignment, now: float) -> bool:
        """Release it as DEL does, unless it was released or replaced since, or its veth is
        back: checked once the DEL holds the veth name (an ADD of the same pod has finished or
        waits) and under the service's lock (nothing changes under us)."""

        def still_gone(held: Assignment | None) -> bool:
            return held == assignment and not self._present(
                assignment, self.datapath.host.host_veths()
            )

        if (
            self.datapath.release_pod(self.service, assignment.key, PodMeta(), only_if=still_gone)
            is None
        ):
            return False
        seconds = now - self.missing.pop(assignment.key, now)
        self.metrics.error(SWEEP_FN)
        log.warning(
            "pod sweep: %s (%s/%s) held %s, but its host veth has been gone for %.0f s and no "
            "DEL came (its network namespace was removed without CNI, as ctr does, or the veth "
            "was deleted); released it and its rules",
            assignment.key,
            assignment.meta.namespace or "-",
            assignment.meta.name or "-",
            assignment.address,
            seconds,
        )
        return True


def run_sweep(sweep: PodSweep, interval: float, stop: threading.Event) -> threading.Thread:
    """Sweep every ``interval`` seconds on a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                sweep.sweep()
            except Exception:
                log.exception("pod sweep failed; retrying in %.1f s", interval)

    thread = threading.Thread(target=loop, daemon=True, name="pod-sweep")
    thread.start()
    return thread
