"""Plain-text tables for ``vpccni plan`` and ``vpccni simulate`` reports (the JSON documents).

Nodes of a group with identical figures are shown on one row with a count, so a 1,000-node
cluster prints a few lines. Subnets, totals and - for simulate - EC2 calls, throttling and
time-to-IP follow. Works on the JSON document, so what the table says is what the JSON says.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

NODE_COLUMNS = (
    ("nodes", "nodes"),
    ("type", "instance_type"),
    ("ENIs", "enis"),
    ("secondary IPs", "secondary_ips"),
    ("prefixes", "prefixes"),
    ("subnet addrs", "subnet_addresses"),
    ("pods", "pods"),
    ("assigned", "assigned"),
    ("warm", "warm"),
    ("waste", "waste"),
    ("max pods", "max_pods"),
)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header), *[["-" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


POD_SUBNET_COLUMNS = (
    ("AZ", "availability_zone"),
    ("ENIConfig", "eniconfig"),
    ("node subnet addrs", "node_subnet_addresses"),
    ("pod subnet addrs", "pod_subnet_addresses"),
)


def node_rows(
    nodes: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] = NODE_COLUMNS
) -> list[list[object]]:
    """One row per set of identical nodes of a group: 'web-1..3 (3)', 'web-1, web-3, .. (2)'."""
    runs: dict[tuple[object, ...], list[str]] = {}
    for node in nodes:
        key = (node["group"], *(_cell(node, field) for _, field in columns[1:]))
        runs.setdefault(key, []).append(node["name"])
    rows: list[list[object]] = []
    for key, names in runs.items():
        rows.append([_label(names), *key[1:]])
    return rows


def _label(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    numbers = [name.rsplit("-", 1)[-1] for name in names]
    ordinals = [int(n) if n.isdigit() else None for n in numbers]
    consecutive = all(
        a is not None and b is not None and b == a + 1 for a, b in itertools.pairwise(ordinals)
    )
    if consecutive:
        return f"{names[0]}..{numbers[-1]} ({len(names)})"
    return f"{names[0]}, {names[1]}{', ..' if len(names) > 2 else ''} ({len(names)})"


def _cell(node: Mapping[str, Any], field: str) -> object:
    """A column's value; the subnet split is computed from the node's ENIs."""
    if field not in ("node_subnet_addresses", "pod_subnet_addresses"):
        return node.get(field)
    enis = [e for e in [node.get("primary_eni"), *node.get("pod_enis", [])] if e]
    if field == "node_subnet_addresses":
        return sum(e["addresses"] for e in enis if e["subnet"] == node.get("subnet"))
    others: dict[str, int] = {}
    for eni in enis:
        if eni["subnet"] != node.get("subnet") and eni["subnet"] is not None:
            others[eni["subnet"]] = others.get(eni["subnet"], 0) + eni["addresses"]
    return ", ".join(f"{count} in {cidr}" for cidr, count in others.items()) or "0"


def node_columns(document: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The node table's columns: the AZ and the node/pod subnet split when pods have their own
    subnets (custom networking or subnet discovery), the ENIConfig with custom networking."""
    subnets = document.get("subnets", [])
    if not any(s.get("role") in ("pod", "cni") for s in subnets) and not document.get(
        "custom_networking"
    ):
        return NODE_COLUMNS
    extra = [
        c for c in POD_SUBNET_COLUMNS if c[1] != "eniconfig" or document.get("custom_networking")
    ]
    return (NODE_COLUMNS[0], NODE_COLUMNS[1], *extra, *NODE_COLUMNS[2:])


def render_nodes(document: Mapping[str, Any]) -> str:
    columns = node_columns(document)
    header = [label for label, _ in columns]
    header[0] = "node"
    return table(header, node_rows(document["nodes"], columns))


def render_subnets(document: Mapping[str, Any]) -> str:
    lines = []
    for subnet in document.get("subnets", []):
        verdict = "fits" if subnet["fits"] else "DOES NOT FIT"
        where = ", ".join(
            str(part) for part in (subnet.get("availability_zone"), _role(subnet)) if part
        )
        lines.append(
            f"subnet {subnet['cidr']}{f' ({where})' if where else ''}: {subnet['used']} of "
            f"{subnet['usable']} usable addresses used (AWS reserves 5), {subnet['free']} free: "
            f"{verdict}"
        )
    return "\n".join(lines) or "no subnet given: subnet fit not checked"


def _role(subnet: Mapping[str, Any]) -> str:
    role = subnet.get("role")
    if role == "node":
        return "node subnet"
    if role == "cni":
        return "tagged for subnet discovery"
    return "pod subnet" if role == "pod" else ""


def render_warnings(document: Mapping[str, Any]) -> str:
    return "\n".join(f"WARNING {w['message']}" for w in document.get("warnings", []))


def render_totals(totals: Mapping[str, Any]) -> str:
    parts = [
        f"{totals['nodes']} nodes, {totals['enis']} ENIs",
        f"{totals['subnet_addresses_used']} subnet addresses used",
        f"{totals['assigned']} assigned, {totals['warm']} warm, {totals['waste']} not used by pods",
    ]
    if totals.get("subnet_addresses_free") is not None:
        parts.append(f"{totals['subnet_addresses_free']} free")
    text = "totals: " + "; ".join(parts)
    if totals.get("pods_over_max_pods"):
        text += (
            f"\n{totals['pods_over_max_pods']} pods exceed max pods (the kubelet would not run "
            "them; max pods counts 2 host-network pods)"
        )
    if totals.get("pods_without_ip"):
        text += (
            f"\n{totals['pods_without_ip']} pods have no address (their node cannot hold more: "
            "its ENI limit, or no subnet it may create an ENI in)"
        )
    return text


def render_plan(document: Mapping[str, Any]) -> str:
    lines = [f"plan: mode {document['mode']}, steady state ipamd reaches", render_nodes(document)]
    if document.get("custom_networking"):
        lines.append(
            "custom networking: each node's primary ENI holds only the node's own address (no "
            "pod addresses); pod ENIs are created in the subnet of the node's ENIConfig"
        )
    lines += [render_subnets(document), render_totals(document["totals"])]
    if document.get("warnings"):
        lines.append(render_warnings(document))
    if document.get("unsettled_nodes"):
        lines.append("did not settle: " + ", ".join(document["unsettled_nodes"]))
    return "\n\n".join(lines)


def render_compat(document: Mapping[str, Any]) -> str:
    totals = document["totals"]
    real = document["real"]["totals"]
    free = totals["subnet_addresses_free"]
    lines = [
        f"EKS subnet calculator ({document['tab']} tab): {totals['subnet_addresses_used']} "
        f"addresses used"
        + ("" if free is None else f", {free} of {totals['subnet_addresses_available']} left"),
        f"real (ipamd's steady state): {real['subnet_addresses_used']} addresses used"
        + (
            ""
            if real["subnet_addresses_free"] is None
            else f", {real['subnet_addresses_free']} of {real['subnet_addresses_available']} left"
        ),
        "",
        table(
            ["what differs", "workbook", "real", "why"],
            [[d["what"], d["workbook"], d["real"], d["why"]] for d in document["differences"]],
        ),
    ]
    return "\n".join(lines)


def render_simulation(document: Mapping[str, Any]) -> str:
    minutes = document["duration_seconds"] / 60.0
    head = f"simulate: mode {document['mode']}, {minutes:.1f} virtual minutes"
    lines = [
        f"{head}, seed {document['seed']}",
        "final state:\n" + render_nodes(document),
        render_subnets(document),
        render_totals(document["totals"]),
        *([render_warnings(document)] if document.get("warnings") else []),
        _peaks(document),
        _time_to_ip(document),
        _ec2(document["ec2"]),
    ]
    exhaustion = document["subnet_exhaustion"]
    if exhaustion["events"]:
        lines.append(
            f"subnet exhaustion: {exhaustion['events']} refusals on {exhaustion['nodes']} nodes, "
            f"first at {exhaustion['first_at']:.0f} s; growth paused 120 s each time"
        )
    return "\n\n".join(lines)


def _peaks(document: Mapping[str, Any]) -> str:
    peaks = document["peaks"]
    return (
        f"peaks: {peaks['subnet_addresses']} subnet addresses, {peaks['assigned']} assigned, "
        f"{peaks['warm']} warm, {peaks['waiting_pods']} pods waiting, {peaks['enis']} ENIs"
    )


def _time_to_ip(document: Mapping[str, Any]) -> str:
    ttl = document["time_to_ip"]
    pods = document["pods"]
    if not ttl["pods"]:
        return "time to IP: no pod got an address"
    return (
        f"time to IP (s): p50 {ttl['p50']}, p90 {ttl['p90']}, p99 {ttl['p99']}, max {ttl['max']} "
        f"over {ttl['pods']} pods; {pods['waited']} waited, {pods['failed']} still without an "
        f"address, {pods['over_max_pods']} over max pods"
    )


def _ec2(ec2: Mapping[str, Any]) -> str:
    rows = [
        [
            api,
            body["calls"],
            body["throttled"],
            body["per_minute_mean"],
            body["per_minute_max"],
            body["throttled_per_minute_max"],
        ]
        for api, body in ec2["apis"].items()
    ]
    head = f"EC2: {ec2['calls']} calls, {ec2['throttled']} throttled (RequestLimitExceeded)"
    return (
        head
        + "\n"
        + table(
            ["API", "calls", "throttled", "per min (mean)", "per min (max)", "throttled/min max"],
            rows,
        )
    )
