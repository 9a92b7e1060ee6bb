"""Taking over a node from upstream's ``aws-node``: its checkpoint imported at the first start.

A node moved from upstream to vpccni without draining keeps running pods that upstream's ipamd
gave addresses to; its checkpoint (``AWS_VPC_K8S_CNI_BACKING_STORE``, by default
``/var/run/aws-node/ipam.json``, mounted read-only) is the only record of which pod holds which
address. At start-up, after reconcile has adopted the ENIs attached to the instance (those
upstream created carry the same tags as ours) and before vpccni's checkpoint is loaded,
:func:`take_over` imports it when vpccni has no checkpoint of its own yet:

* refused (fail closed, nothing written, the daemon does not start) when upstream's ipamd still
  answers on its socket beside the file (two CNIs must never manage one node), when the file is
  not a regular file, is writable by anyone, is larger than any real checkpoint, or does not
  decode as ``vpc-cni-ipam/1`` (``vpccni.core.checkpoint_upstream``: wrong version, bad JSON, an
  address or a pod twice);
* entries whose pod has no host veth are dropped, as upstream's own restore does (with a
  datapath; upstream's veth names are ours: ``eni`` + sha1 of namespace and name), and so are
  entries whose address is on none of the ENIs reconcile adopted (upstream drops those too);
* the rest is written as vpccni's first checkpoint generation (``import_upstream_file``), then
  restored like any checkpoint, and the datapath converges routes and rules to the imported
  pods, which are upstream's already, so the pods keep their networking and a later DEL finds
  them by their CNI key.

What was imported is logged, written beside the checkpoint (``takeover.json``, so later starts
still report it) and shown by ``/v1/explain`` and ``vpccni status``. A node with a vpccni
checkpoint is never imported into again; ``--recover`` never imports (the upstream file is
older than anything it rebuilds).

Upstream's rules are not this module's: the host networking set-up removes upstream's nftables
``table ip aws-cni`` and its stale ``AWS-SNAT-CHAIN-1..n`` / ``AWS-CONNMARK-CHAIN-1..n`` chains at
every start, before anything is imported (``vpccni.adapters.node_rules``), and logs what it
removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import stat
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from vpccni.adapters.checkpoint_file import (
    JOURNAL_NAME,
    SNAPSHOT_NAME,
    import_upstream_file,
    replace_durably,
)
from vpccni.core.checkpoint import CheckpointCorrupt
from vpccni.core.model import Assignment
from vpccni.core.naming import host_veth_name
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.service import IpamService
from vpccni.errors import VpccniError

log = logging.getLogger("vpccni.ipamd")

REPORT_NAME = "takeover.json"
UPSTREAM_SOCKET = "ipamd.sock"
MAX_UPSTREAM_BYTES = 16 * 1024 * 1024
"""Far above a real checkpoint (a few hundred bytes per pod, 250 pods at most on a node)."""
SAMPLE = 20


class TakeoverRefused(VpccniError):
    """Upstream's checkpoint cannot be trusted, or upstream still runs: vpccni does not start."""


@dataclass(frozen=True)
class TakeoverOptions:
    """Where upstream's checkpoint is and where vpccni's goes."""

    upstream_file: Path
    checkpoint_dir: Path


@dataclass(frozen=True)
class TakeoverReport:
    """What a takeover imported and dropped (one line per pod), as logged and shown."""

    source: str
    at: float
    imported: tuple[str, ...]
    dropped: tuple[str, ...]
    warnings: tuple[str, ...]
    veths_checked: bool

    def summary(self) -> str:
        checked = "" if self.veths_checked else " (no datapath: veths not checked)"
        return (
            f"took over from upstream's aws-node ({self.source}): {len(self.imported)} pods "
            f"imported, {len(self.dropped)} dropped (pod gone, or address on no ENI){checked}"
        )

    def lines(self) -> list[str]:
        return [
            self.summary(),
            *(f"imported {line}" for line in self.imported),
            *(f"dropped {line}" for line in self.dropped),
            *self.warnings,
        ]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def has_checkpoint(directory: Path) -> bool:
    """vpccni's own checkpoint exists in ``directory`` (then nothing is imported)."""
    return (directory / SNAPSHOT_NAME).exists() or (directory / JOURNAL_NAME).exists()


def take_over(
    options: TakeoverOptions | None,
    datapath: Datapath | None,
    service: IpamService,
    now: float,
) -> TakeoverReport | None:
    """Import upstream's checkpoint if this is vpccni's first start on a node upstream ran.

    ``service`` holds the ENIs reconcile adopted: an entry whose address is on none of them is
    dropped as stale, as upstream's restore drops it. Returns the report (a previous takeover's
    when vpccni's checkpoint already exists), or None when there is nothing to take over
    (``options`` None: never, e.g. with ``--recover``). Without a datapath no entry is dropped
    for its veth (the node's veths cannot be seen). Raises :class:`TakeoverRefused`.
    """
    if options is None:
        return None
    if has_checkpoint(options.checkpoint_dir):
        return load_report(options.checkpoint_dir)
    upstream = options.upstream_file
    if not upstream.exists() and not upstream.is_symlink():
        return None
    _refuse_if_upstream_runs(upstream.parent / UPSTREAM_SOCKET)
    _refuse_untrusted_file(upstream)
    check = _LiveCheck(datapath, [IPv4Network(c.cidr) for v in service.views() for c in v.cidrs])
    try:
        imported = import_upstream_file(upstream, options.checkpoint_dir, keep=check)
    except CheckpointCorrupt as error:
        raise TakeoverRefused(
            f"upstream's checkpoint {upstream} cannot be trusted: {error.reason}; vpccni did not "
            f"start and wrote nothing. Without a trustworthy record a running pod's address "
            f"could be handed to another pod. If aws-node no longer runs on this node and the "
            f"file is damaged, move it aside (mv {upstream} {upstream}.bad) and start vpccni "
            "again: every address a pod's route still uses is then held for that pod "
            "(docs/migration.md)"
        ) from None
    report = TakeoverReport(
        str(upstream),
        now,
        tuple(sorted(_describe(a) for a in imported.state.assignments.values())),
        tuple(check.dropped),
        imported.warnings,
        check.veths is not None,
    )
    _write_report(options.checkpoint_dir, report)
    for line in report.lines():
        log.warning("takeover: %s", line)
    return report


class _LiveCheck:
    """Upstream's restore rules: keep an entry only while its pod's host veth exists (the name
    is upstream's: the configured prefix and sha1 of "<namespace>.<name>") and its address is on
    an ENI attached to this instance."""

    def __init__(self, datapath: Datapath | None, cidrs: list[IPv4Network]) -> None:
        self.prefix = datapath.veth_prefix if datapath is not None else ""
        self.veths = datapath.host.host_veths() if datapath is not None else None
        self.cidrs = cidrs
        self.dropped: list[str] = []

    def __call__(self, assignment: Assignment) -> bool:
        if not any(assignment.address in cidr for cidr in self.cidrs):
            self.dropped.append(
                f"{_describe(assignment)}: the address is on no ENI attached to this instance"
            )
            return False
        if self.veths is None:
            return True
        key, meta = assignment.key, assignment.meta
        veth = host_veth_name(meta.namespace, meta.name, key.container_id, key.ifname, self.prefix)
        if veth in self.veths:
            return True
        self.dropped.append(f"{_describe(assignment)}: no host veth {veth} (the pod is gone)")
        return False


def _describe(assignment: Assignment) -> str:
    """``10.0.1.5 default/web`` (no container id: introspection never shows one on TCP)."""
    meta = assignment.meta
    pod = f"{meta.namespace}/{meta.name}" if meta.namespace and meta.name else "(no pod name)"
    return f"{assignment.address} {pod}"


def _refuse_if_upstream_runs(path: Path) -> None:
    """Upstream's ipamd (v1.23+) serves gRPC on this socket; an answer means it still runs."""
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except OSError:
            return  # a stale socket: nothing listens
    raise TakeoverRefused(
        f"upstream's ipamd still answers on {path}: aws-node still runs on this node, and two "
        "CNIs must never manage one node; vpccni did not start. Stop aws-node on this node "
        "first (kubectl -n kube-system delete daemonset aws-node, or keep it off this node), "
        "then start vpccni again (docs/migration.md)"
    )


def _refuse_untrusted_file(path: Path) -> None:
    try:
        info = path.lstat()
    except OSError as error:
        raise TakeoverRefused(
            f"upstream's checkpoint {path} cannot be read ({error.strerror}); vpccni did not start"
        ) from None
    why = ""
    if not stat.S_ISREG(info.st_mode):
        why = "it is not a regular file (a symlink, directory or device)"
    elif info.st_mode & stat.S_IWOTH:
        why = f"anyone on the host may write it (mode {stat.S_IMODE(info.st_mode):o})"
    elif info.st_size > MAX_UPSTREAM_BYTES:
        why = f"it is {info.st_size} bytes, far more than any ipamd checkpoint"
    if why:
        raise TakeoverRefused(
            f"upstream's checkpoint {path} cannot be trusted: {why}; vpccni did not start and "
            "wrote nothing. Check the file; if it is not upstream's, move it aside and start "
            "vpccni again (docs/migration.md)"
        )


def _write_report(directory: Path, report: TakeoverReport) -> None:
    data = (json.dumps(report.as_json(), indent=2) + "\n").encode()
    replace_durably(directory / REPORT_NAME, data)


def load_report(directory: Path) -> TakeoverReport | None:
    """The report a previous start wrote (None when there is none or it is unreadable)."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        body = json.loads((directory / REPORT_NAME).read_text())
        return TakeoverReport(
            str(body["source"]),
            float(body["at"]),
            tuple(str(x) for x in body["imported"]),
            tuple(str(x) for x in body["dropped"]),
            tuple(str(x) for x in body["warnings"]),
            bool(body["veths_checked"]),
        )
    return None
