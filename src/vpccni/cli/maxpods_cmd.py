"""``vpccni max-pods``: how many pods fit on a node, as the EKS max-pods calculator says.

By default the figure is uncapped (what ``eni-max-pods.txt`` gives nodes); ``--recommended``
applies the calculator's vCPU cap. ``--all`` maps every known type to its figure.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.output import FORMATS, columns, key_values, to_json
from vpccni.core.maxpods import (
    MaxPods,
    MaxPodsOptions,
    compute_max_pods,
    parse_cni_version,
)
from vpccni.errors import InvalidInput


def register(subparsers: Any) -> None:
    """Add the ``max-pods`` subcommand."""
    parser = subparsers.add_parser(
        "max-pods",
        help="max pods per node for an instance type",
        description="Max pods for an instance type with the EKS calculator's semantics. Prints "
        "the uncapped figure nodes get from eni-max-pods.txt unless --recommended is given.",
    )
    parser.add_argument(
        "instance_type", nargs="?", metavar="INSTANCE_TYPE", help="e.g. m5.large (or --all)"
    )
    parser.add_argument("--all", action="store_true", help="every known instance type")
    parser.add_argument(
        "--prefix-delegation", action="store_true", help="ENABLE_PREFIX_DELEGATION=true (/28s)"
    )
    parser.add_argument(
        "--custom-networking", action="store_true", help="pods use no address of the primary ENI"
    )
    parser.add_argument("--max-eni", type=int, metavar="N", help="MAX_ENI: use at most N ENIs")
    parser.add_argument(
        "--cni-version",
        metavar="X.Y.Z",
        help="VPC CNI version (prefix delegation needs 1.9.0 or later; default: current)",
    )
    parser.add_argument(
        "--recommended",
        action="store_true",
        help="apply the calculator's vCPU cap (110 for <= 30 vCPUs, 250 above)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people, json for tools"
    )
    parser.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> MaxPodsOptions:
    """Validated calculator options from the parsed flags."""
    version = None if args.cni_version is None else parse_cni_version(args.cni_version)
    return MaxPodsOptions(
        prefix_delegation=args.prefix_delegation,
        custom_networking=args.custom_networking,
        max_eni=args.max_eni,
        cni_version=version,
    )


def run(args: argparse.Namespace) -> str:
    """Compute and render max pods for one type or for all."""
    options = options_from(args)
    if args.all == (args.instance_type is not None):
        raise InvalidInput("vpccni max-pods: give exactly one of INSTANCE_TYPE or --all")
    table = load_instance_table()
    if args.all:
        results = [compute_max_pods(limits, options) for limits in table]
        return render_all(results, args.recommended, args.format)
    result = compute_max_pods(table.get(args.instance_type), options)
    figure = result.figure(recommended=args.recommended)
    if args.format == "json":
        return to_json(
            {
                "instance_type": result.instance_type,
                "max_pods": figure,
                "uncapped": result.uncapped,
                "recommended": result.recommended,
                "vcpus": result.vcpus,
                "note": result.note,
            }
        )
    return render_one(result, figure)


def render_one(result: MaxPods, figure: int) -> str:
    """One type as aligned text: both figures and why a cap or fallback applied."""
    if result.prefix_delegation_applied:
        mode = f"prefix delegation: {result.pod_slots_per_eni} /28 slots per ENI x 16 addresses"
    else:
        mode = f"secondary IPs: {result.pod_slots_per_eni} per ENI"
    recommended = "unknown (no vCPU count)" if result.recommended is None else result.recommended
    vcpus = "unknown" if result.vcpus is None else result.vcpus
    rows: list[tuple[str, object]] = [
        ("instance type", f"{result.instance_type} ({vcpus} vCPUs)"),
        ("mode", mode),
        ("ENIs for pods", result.enis_for_pods),
        ("max pods", figure),
        ("uncapped", f"{result.uncapped}  (eni-max-pods.txt figure)"),
        ("recommended", f"{recommended}  (calculator's vCPU cap)"),
        ("why", result.note or "no cap or fallback applied"),
    ]
    return key_values(rows)


def render_all(results: list[MaxPods], recommended: bool, output_format: str) -> str:
    """Every type: a JSON object of type -> figure, or a table of both figures."""
    if output_format == "json":
        mapping: dict[str, int | None] = {}
        for result in results:
            mapping[result.instance_type] = result.recommended if recommended else result.uncapped
        unknown = [name for name, value in mapping.items() if value is None]
        if unknown:
            print(
                f"vpccni max-pods: no vCPU count for {len(unknown)} types, shown as null: "
                + ", ".join(unknown),
                file=sys.stderr,
            )
        return to_json(mapping)
    rows = [
        [r.instance_type, r.uncapped, "-" if r.recommended is None else r.recommended]
        for r in results
    ]
    return columns(["instance type", "uncapped", "recommended"], rows)
