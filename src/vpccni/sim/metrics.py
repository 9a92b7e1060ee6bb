"""What a simulation run records, and its report in the shared shape.

:class:`Recorder` samples the cluster at a fixed virtual interval (addresses held, assigned,
warm, pods waiting, ENIs, free addresses per subnet), keeps every pod's time-to-IP (how long it
waited for an address), counts ADDs that found no address, and at the end turns the EC2
account's per-API, per-minute counts into calls-per-minute figures. ``report`` gives the
document ``vpccni plan`` prints plus ``timeline``, ``ec2``, ``time_to_ip``, ``pods`` and
``subnet_exhaustion``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vpccni.capacity.report import EniUse, NodeReport, report_json
from vpccni.core.scaling import Decision

if TYPE_CHECKING:
    from vpccni.sim.cluster import Simulation
    from vpccni.sim.node import SimNode

SAMPLE = 10


class Recorder:
    """Timelines, time-to-IP and counters of one run."""

    def __init__(self, simulation: Simulation, interval: float) -> None:
        self.sim = simulation
        self.interval = interval
        self.waits: list[float] = []
        self.no_address_adds = 0
        self.actions: dict[str, int] = {}
        self.timeline: dict[str, list[float]] = {
            key: []
            for key in (
                "seconds",
                "subnet_addresses",
                "assigned",
                "warm",
                "waiting_pods",
                "enis",
                "nodes",
                "subnet_free",
            )
        }

    def start(self) -> None:
        self.sim.queue.push(0.0, SAMPLE, -1)

    def placed(self, wait: float) -> None:
        self.waits.append(wait)

    def no_address(self) -> None:
        self.no_address_adds += 1

    def tick(self, node: SimNode, decision: Decision) -> None:
        for action in decision.actions:
            self.actions[action.action] = self.actions.get(action.action, 0) + 1

    def sample(self, when: float, schedule: bool = True) -> None:
        nodes = self.sim.nodes
        line = self.timeline
        addresses = assigned = total = waiting = enis = 0
        for node in nodes:
            pool = node.pool
            addresses += pool.subnet_addresses
            assigned += pool.assigned
            total += pool.active_total
            waiting += len(node.waiting)
            enis += len(pool.ordered)
        store = self.sim.model.store
        line["seconds"].append(when)
        line["subnet_addresses"].append(addresses)
        line["assigned"].append(assigned)
        line["warm"].append(total - assigned)
        line["waiting_pods"].append(waiting)
        line["enis"].append(enis)
        line["nodes"].append(len(nodes))
        line["subnet_free"].append(sum(store.pool(s).available for s in self.sim.subnet_ids))
        if schedule:
            self.sim.queue.push(when + self.interval, SAMPLE, -1)

    def finish(self, end: float) -> None:
        if not self.timeline["seconds"] or self.timeline["seconds"][-1] < end:
            self.sample(end, schedule=False)
        self.end = end

    # -- the report -----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        sim = self.sim
        ordered = sorted(sim.nodes, key=lambda n: (n.group, n.position))
        nodes = [_node_report(node, sim) for node in ordered]
        exhaustion = sorted(t for n in sim.nodes for t in n.counters.exhaustion_times)
        errors: dict[str, int] = {}
        for node in sim.nodes:
            for fn, count in node.counters.errors.items():
                errors[fn] = errors.get(fn, 0) + count
        waiting = sum(len(n.waiting) for n in sim.nodes)
        return report_json(
            nodes,
            sim.scenario,
            command="simulate",
            mode=sim.scenario.mode.value,
            seed=sim.seed,
            duration_seconds=self.end,
            timeline=self.timeline,
            peaks={
                key: max(values, default=0)
                for key, values in self.timeline.items()
                if key not in ("seconds", "subnet_free")
            },
            ec2=self._ec2(),
            time_to_ip=time_to_ip(self.waits),
            pods={
                "arrived": sum(n.pods_seen for n in sim.nodes),
                "got_address": len(self.waits),
                "waited": sum(1 for w in self.waits if w > 0),
                "adds_without_address": self.no_address_adds,
                "failed": waiting,
                "over_max_pods": sum(n.over_max_pods for n in sim.nodes),
            },
            actions=dict(sorted(self.actions.items())),
            subnet_exhaustion={
                "events": len(exhaustion),
                "first_at": exhaustion[0] if exhaustion else None,
                "nodes": sum(1 for n in sim.nodes if n.counters.exhaustion_times),
            },
            errors=dict(sorted(errors.items())),
            reconciles={
                "imds_only": sim.imds_reconciles
                + sum(n.engine.state.imds_reconciles for n in sim.nodes),
                "with_ec2_read": sum(n.engine.state.ec2_reconciles for n in sim.nodes),
            },
        )

    def _ec2(self) -> dict[str, Any]:
        account = self.sim.account
        minutes = max(math.ceil(self.end / 60.0), 1)
        apis: dict[str, Any] = {}
        for api in sorted(account.requests):
            per = account.per_minute[api]
            throttled = account.throttled_per_minute[api]
            apis[api] = {
                "calls": account.requests[api],
                "throttled": account.throttled[api],
                "per_minute_mean": round(account.requests[api] / minutes, 3),
                "per_minute_max": max(per.values(), default=0),
                "throttled_per_minute_max": max(throttled.values(), default=0),
            }
        return {
            "calls": sum(account.requests.values()),
            "throttled": sum(account.throttled.values()),
            "errors": dict(sorted(account.errors.items())),
            "apis": apis,
            "per_minute": {
                api: [account.per_minute[api].get(m, 0) for m in range(minutes)]
                for api in sorted(account.requests)
            },
            "throttled_per_minute": [
                sum(account.throttled_per_minute[api].get(m, 0) for api in account.requests)
                for m in range(minutes)
            ],
        }


def time_to_ip(waits: Sequence[float]) -> dict[str, Any]:
    """Percentiles (nearest rank) of how long pods waited for an address, in seconds."""
    ordered = sorted(waits)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)

    return {
        "pods": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": rank(1.0),
        "mean": round(sum(ordered) / len(ordered), 3) if ordered else None,
    }


def _node_report(node: SimNode, sim: Simulation) -> NodeReport:
    pool = node.pool
    total = pool.active_total
    store = sim.model.store
    enis = []
    for eni in pool.ordered:
        record = store.enis.get(eni.info.eni_id)
        subnet = None if record is None else sim.subnet_cidrs.get(record.subnet_id)
        singles = sum(1 for c in eni.cidrs if not c.prefix)
        enis.append(
            EniUse(
                eni.info.device_index,
                eni.info.primary,
                subnet if subnet is not None else node.subnet,
                singles,
                len(eni.cidrs) - singles,
            )
        )
    return NodeReport(
        group=node.group,
        name=node.name,
        instance_type=node.instance_type,
        subnet=node.subnet,
        enis=len(pool.ordered),
        secondary_ips=pool.singles,
        prefixes=pool.prefixes,
        assigned=pool.assigned,
        warm=total - pool.assigned,
        max_pods=node.limits.max_pods,
        pods=pool.assigned + len(node.waiting) + node.over_max_pods,
        pods_without_ip=len(node.waiting),
        pods_over_max_pods=node.over_max_pods,
        availability_zone=node.availability_zone,
        eniconfig=node.eniconfig,
        eni_list=tuple(enis),
    )
