"""``vpccni limits``: the networking limits of an EC2 instance type, as vpccni knows them."""

from __future__ import annotations

import argparse
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.output import FORMATS, key_values, to_json
from vpccni.core.limits import InstanceLimits
from vpccni.errors import InvalidInput


def register(subparsers: Any) -> None:
    """Add the ``limits`` subcommand."""
    parser = subparsers.add_parser(
        "limits",
        help="ENI and address limits of an instance type",
        description="Show the networking limits of an EC2 instance type: ENIs (default network "
        "card, which the CNI uses, and all cards), IPv4 addresses per ENI, hypervisor, bare metal, "
        "trunking and vCPUs.",
    )
    parser.add_argument(
        "instance_type", nargs="?", metavar="INSTANCE_TYPE", help="e.g. m5.large (see --list)"
    )
    parser.add_argument("--list", action="store_true", help="list every known instance type")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people, json for tools"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> str:
    """Render the limits of one type, or the list of known types."""
    table = load_instance_table()
    if args.list:
        names = [limits.instance_type for limits in table]
        return to_json(names) if args.format == "json" else "\n".join(names)
    if args.instance_type is None:
        raise InvalidInput("vpccni limits: give an INSTANCE_TYPE (e.g. m5.large) or --list")
    limits = table.get(args.instance_type)
    if args.format == "json":
        return to_json(as_json(limits))
    return render_table(limits)


def prefix_delegation_supported(limits: InstanceLimits) -> bool:
    """ipamd allows /28 prefixes on Nitro and on bare metal."""
    return limits.prefixes_allowed


def as_json(limits: InstanceLimits) -> dict[str, Any]:
    """The limits as a JSON object (stable field names)."""
    return {
        "instance_type": limits.instance_type,
        "enis": limits.enis,
        "enis_all_cards": limits.enis_all_cards,
        "ipv4_per_eni": limits.ipv4_per_eni,
        "network_cards": [
            {"index": card.index, "max_interfaces": card.max_interfaces}
            for card in limits.network_cards
        ],
        "default_network_card_index": limits.default_network_card_index,
        "hypervisor": limits.hypervisor,
        "bare_metal": limits.bare_metal,
        "prefix_delegation": prefix_delegation_supported(limits),
        "trunking": limits.trunking,
        "branch_interfaces": limits.branch_interfaces,
        "vcpus": limits.vcpus,
    }


def render_table(limits: InstanceLimits) -> str:
    """The limits as aligned text."""
    cards = len(limits.network_cards)
    trunk = f"yes, {limits.branch_interfaces} branch ENIs" if limits.trunking else "no"
    rows: list[tuple[str, object]] = [
        ("instance type", limits.instance_type),
        ("ENIs (default card)", f"{limits.enis}  <- the CNI's limit"),
        ("ENIs (all cards)", limits.enis_all_cards),
        ("IPv4 per ENI", f"{limits.ipv4_per_eni} (1 primary + {limits.secondary_ipv4_per_eni})"),
        ("network cards", f"{cards} (default: index {limits.default_network_card_index})"),
        ("hypervisor", limits.hypervisor_label),
        ("bare metal", "yes" if limits.bare_metal else "no"),
        ("prefix delegation", "yes" if prefix_delegation_supported(limits) else "no (not Nitro)"),
        ("trunking", trunk),
        ("vCPUs", "unknown" if limits.vcpus is None else limits.vcpus),
    ]
    return key_values(rows)
