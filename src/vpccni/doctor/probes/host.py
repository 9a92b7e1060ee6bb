"""The host's forwarding set-up, read in its network namespace (``--netns`` in the lab):
the iptables FORWARD chain, ``ip_forward``, and ``rp_filter`` of the primary interface.
"""

from __future__ import annotations

import json

from vpccni.doctor.evidence import ForwardChain, Missing, RpFilter
from vpccni.doctor.probes.netns import CommandFailed, command, in_netns
from vpccni.errors import VpccniError
from vpccni.node.sysctl import Sysctl, dotted

IP_FORWARD = ("net", "ipv4", "ip_forward")


def forward_chain(netns: str | None) -> ForwardChain | Missing:
    """``iptables -S FORWARD`` (the filter table): the policy and the rules."""
    try:
        lines = command(["iptables", "-w", "5", "-S", "FORWARD"], netns).splitlines()
    except CommandFailed as error:
        return Missing(str(error))
    policy = next((line.split()[2] for line in lines if line.startswith("-P FORWARD ")), "")
    if not policy:
        return Missing("`iptables -S FORWARD` printed no policy line")
    return ForwardChain(policy, tuple(line for line in lines if line.startswith("-A ")))


def sysctl(netns: str | None, key: tuple[str, ...]) -> str | Missing:
    """One ``net.*`` sysctl as the namespace sees it."""
    try:
        return in_netns(netns, lambda: Sysctl().read(key))
    except VpccniError as error:
        return Missing(str(error))


def primary_interface(netns: str | None, mac: str | None) -> str | Missing:
    """The link with the primary ENI's MAC (IMDS), else the one holding the default route."""
    try:
        links = json.loads(command(["ip", "-j", "link", "show"], netns) or "[]")
        if mac:
            for link in links:
                if str(link.get("address", "")).lower() == mac.lower():
                    return str(link["ifname"])
        routes = json.loads(command(["ip", "-j", "-4", "route", "show", "default"], netns) or "[]")
    except (CommandFailed, ValueError) as error:
        return Missing(f"cannot list links and routes: {error}")
    for route in routes:
        if route.get("dev"):
            return str(route["dev"])
    return Missing(
        "no link has the primary ENI's MAC" + (f" {mac}" if mac else "") + " and no default route"
    )


def rp_filter(netns: str | None, interface: str | Missing) -> RpFilter | Missing:
    """``rp_filter`` of ``interface`` and of ``all``."""
    if isinstance(interface, Missing):
        return interface
    values = []
    for name in (interface, "all"):
        key = ("net", "ipv4", "conf", name, "rp_filter")
        found = sysctl(netns, key)
        if isinstance(found, Missing):
            return found
        if not found.isdigit():
            return Missing(f"{dotted(key)} reads {found!r}")
        values.append(int(found))
    return RpFilter(interface, values[0], values[1])
