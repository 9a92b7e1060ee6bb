"""The node's network links as ``/sys/class/net`` shows them (that of the reader's network
namespace: ``ip netns exec`` remounts ``/sys`` for the namespace it enters)."""

from __future__ import annotations

from pathlib import Path

SYS_CLASS_NET = Path("/sys/class/net")


def link_with_mac(mac: str, root: Path = SYS_CLASS_NET) -> str | None:
    """The name of the link whose hardware address is ``mac`` (any case), or None."""
    wanted = mac.strip().lower()
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            address = (entry / "address").read_text().strip().lower()
        except OSError:
            continue
        if address == wanted:
            return entry.name
    return None
