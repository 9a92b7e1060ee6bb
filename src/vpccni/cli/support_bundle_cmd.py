"""``vpccni support-bundle``: one ``tar.gz`` for a support case (``vpccni.bundle``).

Like upstream's ``aws-cni-support.sh`` but complete and safe: the daemon's introspection,
``/v1/explain``, metrics, status, logs and checkpoint; ``ip`` and ``iptables-save`` output;
sysctls; the CNI conf dir and plugin; kubelet's max pods. Pod names are redacted unless
``--include-pod-names``; credentials never get in (the daemon's own log redaction is applied to
every text); every file and the whole bundle are capped. It works with the daemon down and then
says so in the bundle's index. Read-only. Prints where the file is and what is inside.
"""

from __future__ import annotations

import argparse
import logging
import socket
import time
from pathlib import Path
from typing import Any

from vpccni.bundle.archive import BundleWriter, render_index
from vpccni.bundle.collect import BundleOptions, Collector
from vpccni.bundle.redact import Redactor
from vpccni.cli import status_cmd
from vpccni.cli.doctor_cmd import add_node_options
from vpccni.cli.doctor_cmd import options as doctor_options
from vpccni.cli.ipamd_cmd import RedactingFormatter
from vpccni.errors import InvalidInput

_SECRETS = RedactingFormatter("%(message)s")


def redact_secrets(text: str) -> str:
    """``text`` through the daemon's log redaction (tokens, keys, signatures out)."""
    return _SECRETS.format(logging.makeLogRecord({"msg": text, "args": None}))


def register(subparsers: Any) -> None:
    """Add the ``support-bundle`` subcommand."""
    parser = subparsers.add_parser(
        "support-bundle",
        help="collect one tar.gz for a support case (logs, state, network, config; redacted)",
        description="Collect the daemon's introspection, /v1/explain, metrics, status, logs and "
        "checkpoint, ip addr/link/rule/route (every table)/neigh, iptables-save, sysctls, the "
        "CNI conf dir and plugin, and kubelet's max pods into one capped tar.gz. Works with the "
        "daemon down. Pod names are redacted unless --include-pod-names; credentials never "
        "get in.",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="where to write the tar.gz (default: ./vpccni-support-HOST-TIME.tar.gz)",
    )
    parser.add_argument(
        "--include-pod-names",
        action="store_true",
        help="keep pod names (and add the raw checkpoint files); redacted by default",
    )
    parser.add_argument(
        "--netns",
        metavar="NAME",
        help="collect the host's network state inside this namespace (the lab's node; root)",
    )
    parser.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="FILE",
        help="a log file to add (repeatable), e.g. the output of kubectl logs",
    )
    add_node_options(parser)
    parser.set_defaults(run=run, pod_netns=None, manifest=None)


def default_output(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return Path(f"vpccni-support-{socket.gethostname()}-{stamp}.tar.gz")


def run(args: argparse.Namespace) -> str:
    """Collect, write, and say where the bundle is and what is in it."""
    where = doctor_options(args)
    logs = tuple(Path(path) for path in args.log)
    for path in logs:
        if not path.is_file():
            raise InvalidInput(f"--log {path}: not a readable file")
    target = Path(args.output) if args.output else default_output()
    if target.is_dir():
        raise InvalidInput(f"--output {target} is a directory; give a file name")
    if not target.name.endswith((".tar.gz", ".tgz")):
        raise InvalidInput(f"--output {target}: the bundle is a .tar.gz; end the name so")
    logging.getLogger("vpccni").addHandler(logging.NullHandler())  # checkpoint repair notes
    top = target.name.removesuffix(".tgz").removesuffix(".tar.gz")
    redactor = Redactor(redact_secrets, keep_names=args.include_pod_names)
    with BundleWriter(target, top) as writer:
        collector = Collector(
            BundleOptions(where, logs, args.include_pod_names),
            writer,
            redactor,
            render_status=status_cmd.render,
        )
        index = writer.finish(collector.collect())
    size = target.stat().st_size
    return (
        f"wrote {target.resolve()} ({size} bytes compressed, {len(index['files'])} files)\n\n"
        + render_index(index).rstrip("\n")
    )
