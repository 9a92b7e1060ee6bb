"""Benchmark ``vpccni simulate``: whole clusters for 24 virtual hours of pod churn.

Named configurations (``--config``, repeatable; run one after the other in one invocation):

* ``sip-1000``: 1,000 m5.xlarge nodes x 24 h, secondary-IP mode with the manifest defaults
  (WARM_ENI_TARGET=1);
* ``prefix-1000``: 1,000 m5.xlarge nodes x 24 h, prefix mode (WARM_PREFIX_TARGET=1);
* ``prefix-5000``: 5,000 m5.xlarge nodes x 24 h, prefix mode;
* ``custom`` (the default): whatever ``--nodes``/``--hours``/``--mode``/... say.

All with the stated churn: nodes started over the first 30 minutes (``--launch-over``); on every
node pods arrive as a Poisson process at 1 per minute and live an exponential 30 minutes on
average (about 30 pods per node), against the in-process emulator with AWS's rate limits, 0.1 s
per call and 1 s attachments. ``--nodes``, ``--hours``, ``--mode``, ``--launch-over`` and the
workload flags, when given, override a named configuration's values.

For each configuration it prints: EC2 calls per node-hour by API (node-hours = nodes x hours,
as the recorded figures of the previous design count them), throttled calls (total and by API)
and the minutes in which throttling happened (first/last, how many), ENI creations that failed
(the engine's ``create-eni`` errors, the EC2 error codes of the ENI APIs), time-to-IP
p50/p99/max, pods without an address at the end, reconciles answered from IMDS alone against
those that read EC2, and the wall time of the simulation; beside it the figures recorded for the
previous design (every node reconciling with EC2 every 60 s), with the ratio of calls per
node-hour. ``--json FILE`` writes all of it.

The peer (``--peer``), measured on a slice of the cluster (``--peer-nodes`` nodes for
``--peer-hours``, the first configuration's mode and workload): the same simulation ticking
every node every 5 s, as the daemon does, instead of only when ``vpccni.core.wake.next_wake``
says a tick can act. Both must produce the same report; the ratio of their wall times is the
gain of event-driven time.

    .venv/bin/python benchmarks/bench_simulate.py [--config sip-1000|prefix-1000|prefix-5000|custom]
        [--nodes 1000] [--hours 24] [--mode prefix|secondary-ip] [--instance-type m5.xlarge]
        [--arrivals 1] [--lifetime 30] [--launch-over 30] [--seed 1] [--json FILE]
        [--peer] [--peer-nodes 100] [--peer-hours 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.capacity.scenario import Scenario, parse_scenario
from vpccni.sim.cluster import Simulation

SAME = ("nodes", "totals", "time_to_ip", "pods", "actions")
ENI_APIS = ("CreateNetworkInterface", "AttachNetworkInterface", "ModifyNetworkInterfaceAttribute")


@dataclass(frozen=True)
class Config:
    """One benchmark configuration."""

    nodes: int
    hours: float
    mode: str
    instance_type: str = "m5.xlarge"
    arrivals: float = 1.0
    lifetime: float = 30.0
    launch_over: float = 30.0
    env: tuple[tuple[str, str], ...] = ()


CONFIGS: dict[str, Config] = {
    "custom": Config(1000, 24.0, "prefix"),
    "sip-1000": Config(1000, 24.0, "secondary-ip", env=(("WARM_ENI_TARGET", "1"),)),
    "prefix-1000": Config(1000, 24.0, "prefix", env=(("WARM_PREFIX_TARGET", "1"),)),
    "prefix-5000": Config(5000, 24.0, "prefix", env=(("WARM_PREFIX_TARGET", "1"),)),
}

PREVIOUS: dict[str, dict[str, Any]] = {
    # The figures recorded for the previous design (every node reconciling with EC2 every 60 s).
    "sip-1000": {
        "nodes": 1000,
        "hours": 2.0,
        "calls": 522_000,
        "throttled": 182_000,
        "note": "1,000 nodes x 2 h (the run was too slow for 24 h)",
    },
    "prefix-1000": {
        "nodes": 1000,
        "hours": 24.0,
        "calls": 2_900_000,
        "throttled": 0,
        "wall": 44.5,
    },
    "prefix-5000": {
        "nodes": 5000,
        "hours": 24.0,
        "calls": 42_400_000,
        "throttled": 38_800_000,
        "time_to_ip_max": 1410.0,
        "wall": 395.0,
    },
}


def scenario(config: Config, nodes: int) -> Scenario:
    document: dict[str, Any] = {
        "mode": config.mode,
        "node_groups": [
            {
                "instance_type": config.instance_type,
                "nodes": nodes,
                "pods": 0,
                "workload": {
                    "arrivals_per_minute": config.arrivals,
                    "lifetime_minutes": config.lifetime,
                },
            }
        ],
    }
    if config.env:
        document["env"] = dict(config.env)
    return parse_scenario(document, load_instance_table().get)


def run(
    config: Config, nodes: int, hours: float, seed: int, fixed: bool
) -> tuple[float, Simulation]:
    simulation = Simulation(
        scenario(config, nodes),
        seed=seed,
        duration=hours * 3600.0,
        launch_over=config.launch_over * 60.0,
        fixed_ticks=fixed,
    )
    started = time.perf_counter()
    simulation.run()
    elapsed = time.perf_counter() - started
    return elapsed, simulation


def minutes_with(counts: dict[int, int]) -> dict[str, Any]:
    """The minutes (from the start) in which ``counts`` is non-zero: first, last, how many."""
    minutes = sorted(m for m, n in counts.items() if n)
    if not minutes:
        return {"first": None, "last": None, "minutes": 0}
    return {"first": minutes[0], "last": minutes[-1], "minutes": len(minutes)}


def figures(
    name: str, config: Config, seed: int, elapsed: float, simulation: Simulation
) -> dict[str, Any]:
    """The benchmark's figures of one finished run."""
    report = simulation.recorder.report()
    account = simulation.account
    ec2 = report["ec2"]
    node_hours = config.nodes * config.hours
    apis: dict[str, Any] = {}
    for api, entry in ec2["apis"].items():
        apis[api] = {
            "calls": entry["calls"],
            "per_node_hour": round(entry["calls"] / node_hours, 3),
            "throttled": entry["throttled"],
            "per_minute_max": entry["per_minute_max"],
            "throttled_minutes": minutes_with(account.throttled_per_minute[api]),
        }
    throttled_series = {m: n for m, n in enumerate(ec2["throttled_per_minute"]) if n}
    errors = report["errors"]
    eni_errors = {
        key: count for key, count in ec2["errors"].items() if key.split(":")[0] in ENI_APIS
    }
    events = simulation.queue._sequence
    result: dict[str, Any] = {
        "config": name,
        "nodes": config.nodes,
        "hours": config.hours,
        "mode": config.mode,
        "instance_type": config.instance_type,
        "env": dict(config.env),
        "arrivals_per_minute": config.arrivals,
        "lifetime_minutes": config.lifetime,
        "launch_over_minutes": config.launch_over,
        "seed": seed,
        "wall_seconds": round(elapsed, 2),
        "events": events,
        "events_per_second": round(events / elapsed),
        "node_hours": node_hours,
        "ec2_calls": ec2["calls"],
        "ec2_calls_per_node_hour": round(ec2["calls"] / node_hours, 3),
        "throttled": ec2["throttled"],
        "throttled_minutes": minutes_with(throttled_series),
        "apis": apis,
        "eni_creations": report["actions"].get("create-eni", 0),
        "eni_creations_failed": errors.get("create-eni", 0),
        "eni_api_errors": eni_errors,
        "errors": errors,
        "ec2_errors": ec2["errors"],
        "time_to_ip": report["time_to_ip"],
        "pods": report["pods"],
        "reconciles": report["reconciles"],
        "actions": report["actions"],
        "subnet_exhaustion": report["subnet_exhaustion"],
        "final": {
            "subnet_addresses": report["totals"]["subnet_addresses_used"],
            "assigned": report["totals"]["assigned"],
            "warm": report["totals"]["warm"],
            "peak_subnet_addresses": report["peaks"]["subnet_addresses"],
        },
    }
    waits = sorted(simulation.recorder.waits)
    if waits:
        result["time_to_ip"]["p999"] = round(waits[min(len(waits) - 1, int(0.999 * len(waits)))], 3)
    result["time_to_ip"]["waits_over"] = {
        f"{limit}s": sum(1 for w in waits if w > limit) for limit in (5, 60, 600)
    }
    hours = max(1, int(-(-config.hours // 1)))
    result["calls_per_hour"] = {
        api: [sum(series[h * 60 : (h + 1) * 60]) for h in range(hours)]
        for api, series in ec2["per_minute"].items()
    }
    result["throttled_per_minute"] = {
        api: dict(sorted(account.throttled_per_minute[api].items()))
        for api in ec2["apis"]
        if account.throttled[api]
    }
    if ec2["per_minute"] and config.hours > 2:
        # the first two virtual hours alone, to set beside the previous design's 2 h figure
        first = sum(sum(series[:120]) for series in ec2["per_minute"].values())
        result["ec2_calls_first_2h"] = first
        result["ec2_calls_per_node_hour_first_2h"] = round(first / (config.nodes * 2.0), 3)
        rest = ec2["calls"] - first
        result["ec2_calls_per_node_hour_after_2h"] = round(
            rest / (config.nodes * (config.hours - 2.0)), 3
        )
    previous = PREVIOUS.get(name)
    if previous is not None and previous["nodes"] == config.nodes:
        old = previous["calls"] / (previous["nodes"] * previous["hours"])
        result["previous"] = dict(previous, calls_per_node_hour=round(old, 3))
        result["ratio_calls_per_node_hour_old_new"] = round(
            old / max(result["ec2_calls_per_node_hour"], 1e-9), 2
        )
    return result


def show(result: dict[str, Any]) -> None:
    ttl, pods, rec = result["time_to_ip"], result["pods"], result["reconciles"]
    tm = result["throttled_minutes"]
    print(
        f"== {result['config']}: {result['nodes']:,} nodes x {result['hours']:g} virtual h, "
        f"{result['mode']} {dict(result['env']) or ''}, {result['instance_type']}, "
        f"{result['arrivals_per_minute']:g} pod/min/node, {result['lifetime_minutes']:g} min "
        f"mean life, launched over {result['launch_over_minutes']:g} min"
    )
    print(
        f"  wall {result['wall_seconds']:.1f} s, {result['events_per_second']:,} events/s "
        f"({result['events']:,} events, {pods['arrived']:,} pods)"
    )
    print(
        f"  EC2 {result['ec2_calls']:,} calls = {result['ec2_calls_per_node_hour']:.2f} per "
        f"node-hour; throttled {result['throttled']:,}"
        + (
            f" in {tm['minutes']} minutes (first minute {tm['first']}, last {tm['last']})"
            if tm["minutes"]
            else ""
        )
    )
    print(f"  {'API':<34} {'calls':>11} {'/node-h':>9} {'max/min':>8} {'throttled':>10}  minutes")
    for api, entry in result["apis"].items():
        minutes = entry["throttled_minutes"]
        span = (
            f"{minutes['first']}-{minutes['last']} ({minutes['minutes']})"
            if minutes["minutes"]
            else ""
        )
        print(
            f"  {api:<34} {entry['calls']:>11,} {entry['per_node_hour']:>9.3f} "
            f"{entry['per_minute_max']:>8,} {entry['throttled']:>10,}  {span}"
        )
    print(
        f"  ENI creations {result['eni_creations']:,}, failed {result['eni_creations_failed']:,}"
        f"; ENI API errors {result['eni_api_errors'] or 'none'}; engine errors "
        f"{result['errors'] or 'none'}"
    )
    print(
        f"  time to IP p50/p99/max {ttl['p50']}/{ttl['p99']}/{ttl['max']} s "
        f"({pods['waited']:,} pods waited); {pods['failed']:,} pods without an address at the end"
    )
    print(
        f"  reconciles: {rec['imds_only']:,} from IMDS only, {rec['with_ec2_read']:,} with an "
        f"EC2 read; final {result['final']['subnet_addresses']:,} subnet addresses "
        f"({result['final']['assigned']:,} assigned), peak "
        f"{result['final']['peak_subnet_addresses']:,}"
    )
    over = ttl["waits_over"]
    print(
        f"  time to IP p99.9 {ttl.get('p999')} s; pods waiting over 5 s {over['5s']:,}, "
        f"over 60 s {over['60s']:,}, over 600 s {over['600s']:,}"
    )
    if "ec2_calls_first_2h" in result:
        print(
            f"  first 2 h: {result['ec2_calls_first_2h']:,} EC2 calls = "
            f"{result['ec2_calls_per_node_hour_first_2h']:.2f} per node-hour; after: "
            f"{result['ec2_calls_per_node_hour_after_2h']:.2f} per node-hour"
        )
    previous = result.get("previous")
    if previous is not None:
        print(
            f"  previous design ({previous['nodes']:,} nodes x {previous['hours']:g} h): "
            f"{previous['calls']:,} calls = {previous['calls_per_node_hour']:.2f} per node-hour, "
            f"{previous['throttled']:,} throttled; old/new calls per node-hour "
            f"{result['ratio_calls_per_node_hour_old_new']:.1f}x"
        )


def peer(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    event_driven, ours = run(config, args.peer_nodes, args.peer_hours, args.seed, fixed=False)
    stepped, other = run(config, args.peer_nodes, args.peer_hours, args.seed, fixed=True)
    a, b = ours.recorder.report(), other.recorder.report()
    same = all(json.dumps(a[k], sort_keys=True) == json.dumps(b[k], sort_keys=True) for k in SAME)
    print(
        f"peer slice ({config.mode}): {args.peer_nodes} nodes x {args.peer_hours:g} h: "
        f"event-driven {event_driven:.2f} s, ticking every 5 s {stepped:.2f} s, ratio "
        f"{stepped / event_driven:.1f}x; identical reports: {same}"
    )
    return {
        "nodes": args.peer_nodes,
        "hours": args.peer_hours,
        "mode": config.mode,
        "event_driven_seconds": round(event_driven, 3),
        "ticking_seconds": round(stepped, 3),
        "ratio": round(stepped / event_driven, 2),
        "identical_reports": same,
    }


def configured(name: str, args: argparse.Namespace) -> Config:
    """The named configuration with the flags given on the command line applied."""
    config = CONFIGS[name]
    overrides = {
        field: getattr(args, field)
        for field in (
            "nodes",
            "hours",
            "mode",
            "instance_type",
            "arrivals",
            "lifetime",
            "launch_over",
        )
        if getattr(args, field) is not None
    }
    if "mode" in overrides and overrides["mode"] != config.mode:
        overrides["env"] = ()
    return replace(config, **overrides)


def revision() -> str:
    """The commit the simulator was imported from, and whether src/ had local changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(
                ["git", *argv], check=False, cwd=root, capture_output=True, text=True, timeout=10
            )
        except OSError:
            return ""
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (src/ modified)" if git("status", "--porcelain", "--", "src") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        action="append",
        choices=tuple(CONFIGS),
        help="a named configuration (repeatable; default custom)",
    )
    parser.add_argument("--nodes", type=int, help="default 1000")
    parser.add_argument("--hours", type=float, help="virtual hours, default 24")
    parser.add_argument("--mode", choices=("prefix", "secondary-ip"))
    parser.add_argument("--instance-type", help="default m5.xlarge")
    parser.add_argument("--arrivals", type=float, help="pods per node per minute, default 1")
    parser.add_argument("--lifetime", type=float, help="mean pod minutes, default 30")
    parser.add_argument("--launch-over", type=float, help="minutes, default 30")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures to FILE")
    parser.add_argument("--peer", action="store_true", help="also run the peer comparison")
    parser.add_argument("--peer-nodes", type=int, default=100)
    parser.add_argument("--peer-hours", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()
    names = args.config or ["custom"]

    load = os.getloadavg()
    source = revision()
    print(f"source {source}; load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    document: dict[str, Any] = {
        "source": source,
        "load_at_start": [round(x, 2) for x in load],
        "runs": [],
    }
    if args.peer:
        document["peer"] = peer(configured(names[0], args), args)

    for name in names:
        config = configured(name, args)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        elapsed, simulation = run(config, config.nodes, config.hours, args.seed, fixed=False)
        if profiler is not None:
            profiler.disable()
        result = figures(name, config, args.seed, elapsed, simulation)
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        document["runs"].append(result)
        show(result)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        del simulation
        if args.json is not None:  # after every run, so a long series keeps what it finished
            args.json.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
