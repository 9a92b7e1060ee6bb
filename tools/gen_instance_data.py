#!/usr/bin/env python3
"""Generate ``src/vpccni/data/instance_limits.json``, the instance table vpccni ships.

Inputs (read at generation time only; the program never reads them):

* the resource controller's limits table, as converted into ``instance-limits.json`` (ENIs per
  network card, IPv4 addresses per ENI, hypervisor, bare metal, trunking and branch ENIs);
* the EC2 instance-type data that the ``moto`` package ships (``moto/ec2/resources/
  instance_types.json.gz``), from which only the default vCPU count is taken: its network
  figures disagree with the limits table on a few types, and it has no entry for some types.

The ENI limit that matters to the CNI is the default network card's ``max_interfaces``
(``enis``); ``enis_all_cards`` is kept for display. Run::

    .venv/bin/pip install moto==5.2.5
    .venv/bin/python tools/gen_instance_data.py ../shared/data/instance-limits.json
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "src" / "vpccni" / "data" / "instance_limits.json"
FORMAT_VERSION = 1


def moto_instance_types() -> tuple[dict[str, Any], str]:
    """Return moto's EC2 instance-type data and moto's version, without importing moto."""
    spec = importlib.util.find_spec("moto")
    if spec is None or spec.origin is None:
        sys.exit("moto is not installed: pip install moto==5.2.5 (only its data file is used)")
    path = Path(spec.origin).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data, importlib.metadata.version("moto")


def convert(name: str, raw: dict[str, Any], moto: dict[str, Any]) -> dict[str, Any]:
    """One instance type in vpccni's shape; the default card is picked by array position."""
    cards = raw["network_cards"]
    default_index = raw["default_network_card_index"]
    default_card = cards[default_index]
    if default_card["index"] != default_index:
        raise ValueError(f"{name}: network cards are not ordered by index")
    vcpus = moto.get(name, {}).get("VCpuInfo", {}).get("DefaultVCpus")
    return {
        "enis": default_card["max_interfaces"],
        "enis_all_cards": raw["interfaces"],
        "ipv4_per_eni": raw["ipv4_per_interface"],
        "default_network_card_index": default_index,
        "network_cards": [[card["index"], card["max_interfaces"]] for card in cards],
        "hypervisor": raw["hypervisor_type"],
        "bare_metal": raw["is_bare_metal"],
        "trunking": raw["is_trunking_compatible"],
        "branch_interfaces": raw["branch_interfaces"],
        "vcpus": vcpus,
    }


def render(provenance: dict[str, Any], types: dict[str, dict[str, Any]]) -> str:
    """Stable text: one instance type per line, so regenerations diff cleanly."""
    lines = ["{", f'"format_version": {FORMAT_VERSION},']
    lines.append(f'"provenance": {json.dumps(provenance, sort_keys=True)},')
    lines.append('"instance_types": {')
    names = sorted(types)
    for position, name in enumerate(names):
        comma = "," if position < len(names) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(types[name])}{comma}")
    lines.extend(["}", "}"])
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("limits", type=Path, help="path to instance-limits.json")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    source = json.loads(args.limits.read_text(encoding="utf-8"))
    limits_source = source.pop("_source")
    moto, moto_version = moto_instance_types()
    types = {name: convert(name, raw, moto) for name, raw in source.items()}
    without_vcpus = sorted(name for name, entry in types.items() if entry["vcpus"] is None)
    provenance = {
        "limits": {
            "repository": limits_source["repository"],
            "path": limits_source["path"],
            "commit": limits_source["commit"],
            "upstream_generated_at": limits_source["upstream_generated_at"],
            "license": limits_source["license"],
            "taken": "ENIs per network card, IPv4 per ENI, hypervisor, bare metal, trunking, "
            "branch ENIs",
        },
        "vcpus": {
            "package": f"moto=={moto_version}",
            "file": "moto/ec2/resources/instance_types.json.gz (VCpuInfo.DefaultVCpus)",
            "license": "Apache-2.0",
            "taken": "the default vCPU count only",
            "types_without_vcpus": without_vcpus,
        },
        "generator": "tools/gen_instance_data.py",
        "eni_rule": "enis = max_interfaces of the default network card (the CNI's per-node limit); "
        "enis_all_cards = sum over all cards",
        "instance_type_count": len(types),
    }
    args.output.write_text(render(provenance, types), encoding="utf-8")
    print(f"wrote {args.output}: {len(types)} instance types, {len(without_vcpus)} without vCPUs")


if __name__ == "__main__":
    main()
