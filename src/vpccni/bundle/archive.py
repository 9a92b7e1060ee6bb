"""The bundle file: a ``tar.gz`` of capped sections and an index saying what is in it.

Every file is capped (:data:`CAPS` by section, the tail kept for logs, the head for the rest)
and the whole bundle too (:data:`TOTAL_CAP`, before compression): a cut file or a skipped one is
named in the index with its full size. What could not be collected at all (the daemon was down,
a command is missing) is listed under ``missing`` with the reason. The archive is written to a
temporary file beside the target (mode 0600: it describes the node's network) and renamed into
place, so a half-written bundle is never left under the asked name.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from vpccni.errors import VpccniError

MIB = 1 << 20
CAPS = {
    "logs": 4 * MIB,
    "introspection": 2 * MIB,
    "metrics": 1 * MIB,
    "status": 256 * 1024,
    "checkpoint": 4 * MIB,
    "network": 2 * MIB,
    "cni": 256 * 1024,
    "kubelet": 64 * 1024,
    "daemon": 256 * 1024,
}
"""The most one file of each section may hold, uncompressed."""
TOTAL_CAP = 32 * MIB
"""The most the whole bundle may hold, uncompressed."""
TAIL_SECTIONS = ("logs",)
"""Sections whose files keep their end when cut (the newest log lines)."""


@dataclass(frozen=True)
class Entry:
    """One file in the bundle: its size in the bundle and before it was cut."""

    path: str
    size: int
    original: int
    note: str = ""

    @property
    def truncated(self) -> bool:
        return self.size < self.original


@dataclass
class BundleWriter:
    """Adds capped files to a ``tar.gz`` and writes the index last."""

    target: Path
    top: str
    total_cap: int = TOTAL_CAP
    caps: dict[str, int] = field(default_factory=lambda: dict(CAPS))
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    _written: int = 0
    _temporary: Path | None = None
    _tar: tarfile.TarFile | None = None
    _file: BinaryIO | None = None

    def __enter__(self) -> BundleWriter:
        self._temporary = self.target.with_name(f".{self.target.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as error:
            raise VpccniError(
                f"cannot write the bundle at {self.target}: {error.strerror or error}; give "
                "--output a writable path (e.g. /tmp/vpccni-support.tar.gz)"
            ) from None
        self._file = os.fdopen(descriptor, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w:gz")
        return self

    def __exit__(self, *exc: object) -> None:
        """On an error before :meth:`finish`, nothing is left behind."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temporary is not None and self._temporary.exists():
            self._temporary.unlink()

    def add(self, path: str, data: bytes, note: str = "", original: int | None = None) -> Entry:
        """Add ``data`` as ``<section>/<name>``, cut to its section's cap and the total's;
        ``original``: the size of what ``data`` was already cut from (a log's tail)."""
        section = path.split("/", 1)[0]
        cap = self.caps.get(section, 256 * 1024)
        whole = max(original or 0, len(data))
        kept = data
        if len(kept) > cap:
            kept = kept[-cap:] if section in TAIL_SECTIONS else kept[:cap]
        if self._written + len(kept) > self.total_cap:
            left_out = f"left out: the bundle reached its {self.total_cap // MIB} MiB cap"
            entry = Entry(path, 0, whole, left_out)
            self.skipped.append(entry)
            return entry
        if len(kept) < whole:
            where = "last" if section in TAIL_SECTIONS else "first"
            note = (note + "; " if note else "") + (
                f"cut to the {where} {_size(len(kept))} of {_size(whole)}"
            )
        self._put(path, kept)
        entry = Entry(path, len(kept), whole, note)
        self.entries.append(entry)
        return entry

    def add_json(self, path: str, value: Any, note: str = "") -> Entry:
        return self.add(path, (json.dumps(value, indent=1, default=str) + "\n").encode(), note)

    def lack(self, what: str, why: str) -> None:
        """Something that could not be collected, and why."""
        self.missing[what] = why

    def _put(self, path: str, data: bytes) -> None:
        assert self._tar is not None
        info = tarfile.TarInfo(f"{self.top}/{path}")
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._written += len(data)

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write ``index.json`` and ``index.txt``, close, rename into place; the index."""
        index = {
            **summary,
            "files": [_entry_json(e) for e in self.entries],
            "left_out": [_entry_json(e) for e in self.skipped],
            "missing": self.missing,
            "caps": {"per_file": self.caps, "total": self.total_cap},
        }
        self._put("index.json", (json.dumps(index, indent=1) + "\n").encode())
        self._put("index.txt", render_index(index).encode())
        assert self._tar is not None
        assert self._file is not None
        assert self._temporary is not None
        self._tar.close()
        self._tar = None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._temporary, self.target)
        return index


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "size": entry.size,
        "original_size": entry.original,
        "truncated": entry.truncated,
        "note": entry.note,
    }


def _size(count: int) -> str:
    if count >= MIB:
        return f"{count / MIB:.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count} bytes"


def render_index(index: dict[str, Any]) -> str:
    """The index as a person reads it (also what the command prints)."""
    lines = [
        f"vpccni {index.get('vpccni')} support bundle, {index.get('created')}, host "
        f"{index.get('host')}",
        f"daemon: {index.get('daemon')}",
        f"pod names: {index.get('pod_names')}",
        "",
        "files:",
    ]
    for item in index["files"]:
        note = f"  ({item['note']})" if item["note"] else ""
        lines.append(f"  {item['path']}  {_size(item['size'])}{note}")
    for item in index["left_out"]:
        lines.append(f"  {item['path']}  {item['note']} ({_size(item['original_size'])})")
    if index["missing"]:
        lines += ["", "not collected:"]
        lines += [f"  {what}: {why}" for what, why in index["missing"].items()]
    return "\n".join(lines) + "\n"
