"""``vpccni plan SCENARIO``: the steady state ipamd reaches for a cluster, and whether it fits.

Reads a scenario file (JSON or YAML; ``-`` for stdin, format in docs/planning.md), converges
every node with the daemon's own decisions and prints a table (default) or JSON. ``--compat
subnet-calc`` gives the EKS subnet calculator's own figures with the real ones beside them and
the reasons they differ; ``--xlsx`` writes a shareable workbook, ``--plot`` a PNG of addresses
held against pods for the chosen warm settings and the alternatives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.capacity.compat import COMPAT_NAMES, compare
from vpccni.capacity.plan import plan
from vpccni.capacity.render import render_compat, render_plan
from vpccni.capacity.scenario import Scenario, decode_scenario, parse_scenario
from vpccni.cli.output import FORMATS, to_json
from vpccni.errors import InvalidInput


def register(subparsers: Any) -> None:
    """Add the ``plan`` subcommand."""
    parser = subparsers.add_parser(
        "plan",
        help="addresses a cluster holds in steady state, waste, and whether its subnets fit",
        description="Converge every node of a scenario with ipamd's own warm-pool logic and "
        "report ENIs, addresses taken from each subnet (ENI primaries included), assigned, "
        "warm, waste, and max pods. See docs/planning.md.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (JSON/YAML), - = stdin")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people, json for tools"
    )
    parser.add_argument(
        "--compat",
        choices=COMPAT_NAMES,
        help="give the EKS subnet calculator workbook's figures (real ones under 'real')",
    )
    parser.add_argument("--xlsx", type=Path, metavar="FILE", help="also write a workbook")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also draw addresses vs pods per setting"
    )
    parser.set_defaults(run=run)


def load_scenario(name: str) -> Scenario:
    """Read, decode and validate a scenario file (``-``: standard input)."""
    if name == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise InvalidInput(
                f"cannot read the scenario {name}: {reason}; give a readable JSON or YAML file"
            ) from None
    return parse_scenario(decode_scenario(text, name), load_instance_table().get)


def run(args: argparse.Namespace) -> str:
    scenario = load_scenario(args.scenario)
    result = plan(scenario)
    document = compare(result) if args.compat else result.to_json()
    if args.xlsx is not None:
        from vpccni.capacity.xlsx import write_xlsx

        write_xlsx(args.xlsx, scenario, document)
    if args.plot is not None:
        from vpccni.capacity.plot import write_tradeoff

        write_tradeoff(args.plot, scenario)
    if args.format == "json":
        return to_json(document)
    return render_compat(document) if args.compat else render_plan(document)
