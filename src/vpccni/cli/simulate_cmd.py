"""``vpccni simulate SCENARIO``: a cluster on virtual time, against the in-process EC2 emulator.

Runs ipamd's decision logic for every node of the scenario through its workload (or, without
one, until every pool is stable) and prints a table or JSON: the final state in the plan's
shape, addresses held over time, EC2 calls per minute per API and throttling, time-to-IP
percentiles, pods without an address, subnet exhaustion. Deterministic for a given ``--seed``.
A progress bar goes to stderr when it is a terminal (or with ``--progress``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vpccni.capacity.render import render_simulation
from vpccni.cli.output import FORMATS, to_json
from vpccni.cli.plan_cmd import load_scenario
from vpccni.errors import InvalidInput
from vpccni.sim.cluster import Simulation

DEFAULT_MINUTES = 60.0
STABLE_LIMIT_MINUTES = 240.0


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a cluster's pools, EC2 calls and throttling on virtual time",
        description="Run ipamd's warm-pool logic for every node against the in-process EC2 "
        "emulator (rate limits, latency) through the scenario's workload. See docs/planning.md.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (JSON/YAML), - = stdin")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people, json for tools"
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="MINUTES",
        help=f"virtual minutes to run (default {DEFAULT_MINUTES:g} with a workload; without "
        f"one, until every pool is stable, at most {STABLE_LIMIT_MINUTES:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--launch-over",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="start the scenario's nodes spread over this many minutes (default: within 5 s)",
    )
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the timelines")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show the progress bar"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> str:
    scenario = load_scenario(args.scenario)
    for name in ("duration", "launch_over"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 7 * 24 * 60:
            flag = "--" + name.replace("_", "-")
            raise InvalidInput(f"{flag} {value:g}: give minutes between 0 and 10080 (a week)")
    duration = args.duration
    if duration is None and scenario.has_workload:
        duration = DEFAULT_MINUTES
    horizon = (duration if duration is not None else STABLE_LIMIT_MINUTES) * 60.0
    show = sys.stderr.isatty() if args.progress is None else args.progress
    simulation = Simulation(
        scenario,
        seed=args.seed,
        duration=None if duration is None else horizon,
        progress=_bar(horizon) if show else None,
        launch_over=args.launch_over * 60.0,
        stable_limit=STABLE_LIMIT_MINUTES * 60.0,
    )
    simulation.run()
    if show:
        ended = simulation.recorder.end / 60.0
        print(f"\rsimulated {ended:.1f} virtual minutes{' ' * 50}", file=sys.stderr)
    document = simulation.recorder.report()
    if args.plot is not None:
        from vpccni.capacity.plot import write_timelines

        write_timelines(args.plot, document)
    return to_json(document) if args.format == "json" else render_simulation(document)


def _bar(horizon: float) -> Any:
    width = 40

    def show(now: float) -> None:
        done = min(now / horizon, 1.0) if horizon > 0 else 1.0
        filled = int(done * width)
        sys.stderr.write(
            f"\rsimulating [{'#' * filled}{'.' * (width - filled)}] {done:4.0%} "
            f"{now / 60.0:7.1f} virtual min"
        )
        sys.stderr.flush()

    return show
