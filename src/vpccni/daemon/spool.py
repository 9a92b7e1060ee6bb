"""Replay of the DEL records the plugin spooled while the daemon was down.

Format and naming: ``docs/plugin-api.md``. Each record is released (by key, else by address)
and its file removed only after the release is durable; a record that cannot be read is moved
to ``bad/`` beside it and reported, never dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from vpccni.core.model import PodKey
from vpccni.daemon.service import IpamService

log = logging.getLogger("vpccni.ipamd")


@dataclass(frozen=True)
class SpoolReplay:
    """What a replay did."""

    released: int
    unknown: int
    bad: tuple[str, ...]


Release = Callable[[PodKey, list[IPv4Address]], bool]


def replay_spool(
    directory: Path, service: IpamService, release: Release | None = None
) -> SpoolReplay:
    """Release every spooled DEL; returns counts and the names of unreadable records.

    ``release`` (key, addresses) -> whether something was released; default: the service's
    delete. The running daemon passes its full DEL (unwire, then release).
    """
    if release is None:

        def release(key: PodKey, addresses: list[IPv4Address]) -> bool:
            return service.delete(key, addresses) is not None

    if not directory.is_dir():
        return SpoolReplay(0, 0, ())
    released = unknown = 0
    bad: list[str] = []
    for path in sorted(directory.glob("*.json")):
        try:
            key, addresses = _parse(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("spooled DEL %s is unreadable (%s); moved to bad/", path.name, error)
            (directory / "bad").mkdir(exist_ok=True)
            path.replace(directory / "bad" / path.name)
            bad.append(path.name)
            continue
        if not release(key, addresses):
            unknown += 1
        else:
            released += 1
        path.unlink()
    _fsync_dir(directory)
    return SpoolReplay(released, unknown, tuple(bad))


def _parse(data: bytes) -> tuple[PodKey, list[IPv4Address]]:
    record = json.loads(data)
    if not isinstance(record, dict) or record.get("version") != 1:
        raise ValueError("not a version 1 DEL record")
    key = PodKey(str(record["network"]), str(record["container_id"]), str(record["ifname"]))
    addresses = [IPv4Address(str(ip).split("/")[0]) for ip in record.get("ips", [])]
    return key, addresses


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
