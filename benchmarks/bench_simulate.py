"""Benchmark ``vpccni simulate``: 1,000 nodes for 24 virtual hours of pod churn.

Default scenario (stated churn): 1,000 m5.xlarge nodes in prefix mode (WARM_PREFIX_TARGET=1),
started over the first 30 minutes; on every node pods arrive as a Poisson process at 1 per
minute and live an exponential 30 minutes on average (about 30 pods per node, 2.9 million pod
ADD/DEL over the day), against the in-process emulator with AWS's rate limits, 0.1 s per call
and 1 s attachments. Prints the wall time, events per second and the run's headline figures.

The peer, measured in the same invocation on a slice of the same cluster (``--peer-nodes`` nodes
for ``--peer-hours``): the same simulation ticking every node every 5 s, as the daemon does,
instead of only when ``vpccni.core.wake.next_wake`` says a tick can act. Both must produce the
same report; the ratio of their wall times is the gain of event-driven time.

    .venv/bin/python benchmarks/bench_simulate.py [--nodes 1000] [--hours 24]
        [--mode prefix|secondary-ip] [--instance-type m5.xlarge] [--arrivals 1]
        [--lifetime 30] [--launch-over 30] [--peer-nodes 100] [--peer-hours 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.capacity.scenario import Scenario, parse_scenario
from vpccni.sim.cluster import Simulation

SAME = ("nodes", "totals", "time_to_ip", "pods", "actions")


def scenario(args: argparse.Namespace, nodes: int) -> Scenario:
    document = {
        "mode": args.mode,
        "node_groups": [
            {
                "instance_type": args.instance_type,
                "nodes": nodes,
                "pods": 0,
                "workload": {
                    "arrivals_per_minute": args.arrivals,
                    "lifetime_minutes": args.lifetime,
                },
            }
        ],
    }
    return parse_scenario(document, load_instance_table().get)


def run(args: argparse.Namespace, nodes: int, hours: float, fixed: bool) -> tuple[float, Any]:
    simulation = Simulation(
        scenario(args, nodes),
        seed=args.seed,
        duration=hours * 3600.0,
        launch_over=args.launch_over * 60.0,
        fixed_ticks=fixed,
    )
    started = time.perf_counter()
    simulation.run()
    elapsed = time.perf_counter() - started
    return elapsed, simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--mode", choices=("prefix", "secondary-ip"), default="prefix")
    parser.add_argument("--instance-type", default="m5.xlarge")
    parser.add_argument("--arrivals", type=float, default=1.0, help="pods per node per minute")
    parser.add_argument("--lifetime", type=float, default=30.0, help="mean pod minutes")
    parser.add_argument("--launch-over", type=float, default=30.0, help="minutes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-nodes", type=int, default=100)
    parser.add_argument("--peer-hours", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()

    event_driven, ours = run(args, args.peer_nodes, args.peer_hours, fixed=False)
    stepped, peer = run(args, args.peer_nodes, args.peer_hours, fixed=True)
    a, b = ours.recorder.report(), peer.recorder.report()
    same = all(json.dumps(a[k], sort_keys=True) == json.dumps(b[k], sort_keys=True) for k in SAME)
    print(
        f"peer slice: {args.peer_nodes} nodes x {args.peer_hours:g} h: event-driven "
        f"{event_driven:.2f} s, ticking every 5 s {stepped:.2f} s, ratio "
        f"{stepped / event_driven:.1f}x; identical reports: {same}"
    )

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    elapsed, simulation = run(args, args.nodes, args.hours, fixed=False)
    if profiler is not None:
        profiler.disable()
    report = simulation.recorder.report()
    events = simulation.queue._sequence
    ttl, ec2, totals = report["time_to_ip"], report["ec2"], report["totals"]
    print(
        f"{args.nodes} nodes x {args.hours:g} virtual h, {args.mode}, {args.instance_type}, "
        f"{args.arrivals:g} pod/min/node, {args.lifetime:g} min mean life: {elapsed:.1f} s wall, "
        f"{events / elapsed:,.0f} events/s ({events:,} events, {report['pods']['arrived']:,} pods)"
    )
    print(
        f"  final: {totals['subnet_addresses_used']:,} subnet addresses, "
        f"{totals['assigned']:,} assigned, {totals['warm']:,} warm; peak "
        f"{report['peaks']['subnet_addresses']:,} held"
    )
    print(
        f"  time to IP p50/p99/max {ttl['p50']}/{ttl['p99']}/{ttl['max']} s, "
        f"{report['pods']['failed']} pods without an address at the end; "
        f"EC2 {ec2['calls']:,} calls, {ec2['throttled']:,} throttled"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
