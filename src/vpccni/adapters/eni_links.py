"""A secondary ENI's host networking over netlink: set up, remove, converge (pyroute2).

Set-up (the link found by MAC by the caller): up with the MTU, only its primary address, table
``device + 1`` with a link route to the subnet gateway and a default route via it, the kernel's
connected route of the subnet dropped from main, rule ``from <ENI primary> lookup <table>``
(32765). The connected route is deleted as it was listed, with its link scope: a delete without
the scope does not match it (ESRCH), which once left it in place while the error was ignored.
Removal deletes the rule, the table's routes (unless another ENI now uses the table), the
connected route and the primary address, and goes on past a failed deletion: each failure is
returned ("what: why") for the caller to log, count and retry. Start-up convergence deletes the
32765 rules (and their tables' routes) of ENIs the pool no longer has.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from functools import partial
from ipaddress import IPv4Network
from typing import Any

from vpccni.adapters.netlink_kit import AF_INET, SCOPE_LINK, Attempts, ignoring
from vpccni.adapters.pyroute2_lean import NetlinkError
from vpccni.core.naming import MAIN_TABLE, RULE_FROM_ENI, route_table
from vpccni.errors import VpccniError
from vpccni.ports import EniLink, HostChanges

RESERVED_TABLES = frozenset({0, 253, MAIN_TABLE, 255})  # unspec, default, main, local


class HostNetworkError(VpccniError):
    """The node's routes, rules or iptables could not be set up."""


def setup_eni_link(ipr: Any, eni: EniLink, index: int, mtu: int) -> None:
    """Configure a secondary ENI's link ``index``; raises NetlinkError or HostNetworkError."""
    table = route_table(eni.device_index)
    ipr.link("set", index=index, state="up", mtu=mtu)
    for address in ipr.get_addr(index=index, family=AF_INET):
        if address.get_attr("IFA_ADDRESS") != str(eni.primary_ip):
            ipr.addr(
                "del",
                index=index,
                address=address.get_attr("IFA_ADDRESS"),
                prefixlen=address["prefixlen"],
            )
    with ignoring(errno.EEXIST):
        ipr.addr("add", index=index, address=str(eni.primary_ip), prefixlen=eni.subnet.prefixlen)
    gateway = str(eni.subnet.network_address + 1)
    ipr.route("replace", dst=f"{gateway}/32", oif=index, scope=SCOPE_LINK, table=table)
    ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, table=table)
    attempts = Attempts()
    for what, delete in connected_routes(ipr, index, eni):
        if not attempts.attempt(what, delete):
            raise HostNetworkError(f"deleting the {attempts.failed[0]}")
    with ignoring(errno.EEXIST):
        ipr.rule(
            "add",
            family=AF_INET,
            priority=RULE_FROM_ENI,
            src=str(eni.primary_ip),
            src_len=32,
            table=table,
        )


def remove_eni_link(ipr: Any, eni: EniLink, index: int | None, flush_table: bool) -> HostChanges:
    """Delete what ``setup_eni_link`` made (``index`` None: the link is gone already)."""
    attempts = Attempts()
    if eni.device_index == 0:
        return HostChanges()
    table = route_table(eni.device_index)
    source = str(eni.primary_ip)
    for rule in _listed(attempts, "rules", partial(ipr.get_rules, family=AF_INET)):
        if (
            rule.get_attr("FRA_PRIORITY") == RULE_FROM_ENI
            and rule.get_attr("FRA_SRC") == source
            and rule.get_attr("FRA_TABLE") == table
        ):
            attempts.attempt(
                f"rule 'from {source} lookup {table}' ({RULE_FROM_ENI})",
                partial(_delete_rule, ipr, source, table),
            )
    if flush_table:
        flush_table_routes(ipr, attempts, table)
    if index is not None:
        for what, delete in connected_routes(ipr, index, eni):
            attempts.attempt(what, delete)
        listing = partial(ipr.get_addr, index=index, family=AF_INET)
        for address in _listed(attempts, f"addresses of {eni.mac}", listing):
            if address.get_attr("IFA_ADDRESS") == source:
                prefixlen = address["prefixlen"]
                attempts.attempt(
                    f"address {source}/{prefixlen} of {eni.mac}",
                    partial(ipr.addr, "del", index=index, address=source, prefixlen=prefixlen),
                )
    return HostChanges(tuple(attempts.done), tuple(attempts.failed))


def converge_eni_rules(ipr: Any, enis: Sequence[EniLink]) -> HostChanges:
    """Delete 32765 rules not of ``enis`` (the pool's ENIs), and their tables' routes when no
    ENI of the pool uses the table."""
    attempts = Attempts()
    wanted = {(str(e.primary_ip), route_table(e.device_index)) for e in enis}
    used = {table for _, table in wanted}
    stale_tables: set[int] = set()
    for rule in _listed(attempts, "rules", partial(ipr.get_rules, family=AF_INET)):
        source, table = rule.get_attr("FRA_SRC"), rule.get_attr("FRA_TABLE")
        if rule.get_attr("FRA_PRIORITY") != RULE_FROM_ENI or source is None:
            continue
        if (source, table) in wanted:
            continue
        removed = attempts.attempt(
            f"stale rule 'from {source} lookup {table}' ({RULE_FROM_ENI})",
            partial(_delete_rule, ipr, source, table),
        )
        if removed and table not in used and table not in RESERVED_TABLES:
            stale_tables.add(table)
    for table in sorted(stale_tables):
        flush_table_routes(ipr, attempts, table)
    return HostChanges(tuple(attempts.done), tuple(attempts.failed))


def flush_table_routes(ipr: Any, attempts: Attempts, table: int) -> None:
    """Delete every IPv4 route of ``table``, each as listed."""
    listing = partial(ipr.get_routes, family=AF_INET, table=table)
    for route in _listed(attempts, f"routes of table {table}", listing):
        dst = f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"
        attempts.attempt(
            f"route {dst} in table {table}",
            partial(
                ipr.route,
                "del",
                table=table,
                dst=dst,
                oif=route.get_attr("RTA_OIF"),
                gateway=route.get_attr("RTA_GATEWAY"),
                scope=route["scope"],
                proto=route["proto"],
            ),
        )


def connected_routes(ipr: Any, index: int, eni: EniLink) -> list[tuple[str, Callable[[], object]]]:
    """The kernel's connected route(s) of the ENI's subnet via link ``index`` in main, each
    with its exact deletion (scope and protocol as listed)."""
    subnet: IPv4Network = eni.subnet
    found: list[tuple[str, Callable[[], object]]] = []
    for route in ipr.get_routes(family=AF_INET, table=MAIN_TABLE, oif=index):
        if route.get_attr("RTA_DST") != str(subnet.network_address):
            continue
        if route["dst_len"] != subnet.prefixlen:
            continue
        delete = partial(
            ipr.route,
            "del",
            table=MAIN_TABLE,
            dst=str(subnet),
            oif=index,
            scope=route["scope"],
            proto=route["proto"],
        )
        found.append((f"connected route {subnet} of {eni.mac} in main", delete))
    return found


def _delete_rule(ipr: Any, source: str, table: int) -> object:
    return ipr.rule(
        "del", family=AF_INET, priority=RULE_FROM_ENI, src=source, src_len=32, table=table
    )


def _listed(attempts: Attempts, what: str, listing: Callable[[], Any]) -> list[Any]:
    try:
        return list(listing())
    except (NetlinkError, OSError) as error:
        attempts.failed.append(f"listing {what}: {error}")
        return []
