"""``vpccni node-init``: what the privileged init container does to the host, as upstream's
``aws-vpc-cni-init``.

1. The primary interface: IMDS ``meta-data/mac``, then the link with that MAC (5 tries, 3 s
   apart, as upstream looks for the primary link).
2. ``net.ipv4.conf.<primary>.rp_filter=2`` (loose: replies to pods on secondary ENIs leave by
   another interface than the one they came in on), ``net.ipv4.ip_forward=1``,
   ``net.ipv4.tcp_early_demux`` 0 with ``DISABLE_TCP_EARLY_DEMUX`` else 1 (only where the
   kernel has the key).
3. The plugin binary into ``HOST_CNI_BIN_PATH`` (never the conflist: that is node-run's, once
   ipamd answers).

Every sysctl goes through :class:`~vpccni.node.sysctl.Sysctl`; every step returns a line saying
what it did (and what the value was before).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vpccni.core.aws_types import CloudError
from vpccni.errors import VpccniError
from vpccni.node import plugin_install
from vpccni.node.env import NodeSettings
from vpccni.node.links import SYS_CLASS_NET, link_with_mac
from vpccni.node.sysctl import Sysctl, dotted
from vpccni.ports import Imds

LINK_ATTEMPTS = 5
LINK_RETRY_SECONDS = 3.0


@dataclass
class HostView:
    """Where node-init reads and writes the host: sysctls, links, and how long it waits."""

    sysctl: Sysctl = field(default_factory=Sysctl)
    links: Path = SYS_CLASS_NET
    attempts: int = LINK_ATTEMPTS
    retry_seconds: float = LINK_RETRY_SECONDS
    sleep: Callable[[float], None] = time.sleep


def primary_interface(imds: Imds, host: HostView) -> tuple[str, str]:
    """(link name, MAC) of the primary ENI, found by IMDS's ``mac``."""
    try:
        mac = imds.identity().primary_mac
    except CloudError as error:
        raise VpccniError(
            f"cannot read the primary MAC from IMDS: {error}; check "
            "AWS_EC2_METADATA_SERVICE_ENDPOINT and that the node reaches IMDS"
        ) from None
    for attempt in range(host.attempts):
        name = link_with_mac(mac, host.links)
        if name is not None:
            return name, mac
        if attempt + 1 < host.attempts:
            host.sleep(host.retry_seconds)
    raise VpccniError(
        f"no network link has the primary ENI's MAC {mac} (IMDS) after {host.attempts} tries; "
        "node-init must run in the host's network namespace (hostNetwork: true)"
    )


def set_sysctl(sysctl: Sysctl, key: tuple[str, ...], value: str) -> str:
    """Set one key; the line says the old value."""
    before = sysctl.read(key)
    sysctl.write(key, value)
    after = sysctl.read(key)
    if after != value:
        raise VpccniError(f"{dotted(key)} reads {after} after setting it to {value}")
    return f"set {dotted(key)}={value} (was {before})"


def host_sysctls(sysctl: Sysctl, primary: str, tcp_early_demux: bool) -> list[str]:
    """Upstream's init sysctls, one line each."""
    lines = [
        set_sysctl(sysctl, ("net", "ipv4", "conf", primary, "rp_filter"), "2"),
        set_sysctl(sysctl, ("net", "ipv4", "ip_forward"), "1"),
    ]
    demux = ("net", "ipv4", "tcp_early_demux")
    if sysctl.exists(demux):
        lines.append(set_sysctl(sysctl, demux, "1" if tcp_early_demux else "0"))
    else:
        lines.append(f"{dotted(demux)}: not on this kernel; left alone")
    return lines


def node_init(
    imds: Imds,
    node: NodeSettings,
    choice: plugin_install.PluginChoice,
    host: HostView,
    say: Callable[[str], None],
) -> None:
    """Find the primary interface, set the sysctls, install the plugin; ``say`` each step."""
    bin_dir = plugin_install.existing_directory(node.bin_dir, "HOST_CNI_BIN_PATH")
    primary, mac = primary_interface(imds, host)
    say(f"primary interface {primary} (MAC {mac} from IMDS)")
    for line in host_sysctls(host.sysctl, primary, node.tcp_early_demux):
        say(line)
    path = plugin_install.install(choice, bin_dir)
    say(plugin_install.describe_plugin(path, choice))
