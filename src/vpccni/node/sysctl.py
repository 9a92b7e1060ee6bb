"""Kernel parameters under ``/proc/sys``: the one place vpccni reads and writes sysctls.

A key is given as its parts (``("net", "ipv4", "conf", "eth0", "rp_filter")``), never as a dotted
name, because interface names may contain dots. The root is a parameter so tests can point it at
a directory of their own; ``net.*`` keys under the real ``/proc/sys`` are those of the network
namespace of the process that opens them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vpccni.errors import VpccniError

PROC_SYS = Path("/proc/sys")


def dotted(key: Sequence[str]) -> str:
    """The key as ``sysctl`` prints it (``net.ipv4.conf.eth0.rp_filter``)."""
    return ".".join(part.replace(".", "/") for part in key)


class Sysctl:
    """Reads and writes the sysctls under ``root``."""

    def __init__(self, root: Path = PROC_SYS) -> None:
        self.root = root

    def path(self, key: Sequence[str]) -> Path:
        if not key or any(part in ("", ".", "..") or "/" in part for part in key):
            raise VpccniError(f"not a sysctl key: {key!r}")
        return self.root.joinpath(*key)

    def exists(self, key: Sequence[str]) -> bool:
        return self.path(key).is_file()

    def read(self, key: Sequence[str]) -> str:
        try:
            return self.path(key).read_text().strip()
        except OSError as error:
            raise VpccniError(f"cannot read {dotted(key)}: {error.strerror or error}") from None

    def write(self, key: Sequence[str], value: str) -> None:
        """Set ``key`` to ``value``; a failure names the key and why (read-only /proc/sys: the
        container is not privileged)."""
        try:
            self.path(key).write_text(value + "\n")
        except OSError as error:
            raise VpccniError(
                f"cannot set {dotted(key)}={value}: {error.strerror or error}; node-init needs a "
                "privileged container (or root) in the host's network namespace"
            ) from None
