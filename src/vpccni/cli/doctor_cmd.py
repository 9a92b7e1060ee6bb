"""``vpccni doctor``: check the node against the operating guidance (``vpccni.doctor``).

Each check prints pass / warn / fail (or skip, saying why it could not apply), the evidence, and
the one-line fix; ``--format json`` gives the same as one document. The exit status is the
worst verdict: 0 pass, 1 warn, 2 fail (then the totals also go to stderr, as ``vpccni config
check`` reports). Read-only: nothing on the node, in the daemon or in EC2
is changed (EC2 sees Describe* calls and ``DryRun`` calls only).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vpccni import __version__
from vpccni.cli.config_cmd import ReportStatus
from vpccni.cli.output import FORMATS, to_json
from vpccni.configcheck.source import load
from vpccni.doctor.probes.netns import check_netns
from vpccni.doctor.result import Result, Status, counts, worst
from vpccni.doctor.run import DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, DoctorOptions, diagnose
from vpccni.errors import InvalidInput
from vpccni.settings import BIND_ACCEPTED, DaemonSettings, parse_introspection_bind


def register(subparsers: Any) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser(
        "doctor",
        help="check the node against the operating guidance (pass / warn / fail, evidence, fix)",
        description="Check the host's forwarding, the CNI conf and plugin, the daemon and its "
        "checkpoint, the pool against its subnets and kubelet's max pods, IMDS from the daemon "
        "and from pods, the daemon's credentials and each EC2 action it needs (DryRun), and a "
        "DaemonSet. Read-only. Exit status: 0 all pass, 1 a warning, 2 a failure.",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default) or json"
    )
    parser.add_argument(
        "--netns",
        metavar="NAME",
        help="run the host checks inside this network namespace (the lab's node; root)",
    )
    parser.add_argument(
        "--pod-netns",
        metavar="NAME",
        help="a pod's network namespace to test IMDS reachability from (name or path)",
    )
    parser.add_argument(
        "--manifest", metavar="FILE", help="a DaemonSet YAML to check (e.g. kubectl get -o yaml)"
    )
    add_node_options(parser)
    parser.set_defaults(run=run)


def add_node_options(parser: argparse.ArgumentParser) -> None:
    """Where the node's daemon and CNI files are (doctor and support-bundle read the same)."""
    defaults = DaemonSettings()
    parser.add_argument(
        "--introspection",
        metavar="ADDR",
        help="the daemon's introspection address, host:port or unix:PATH (default: the "
        "running daemon's own setting, else 127.0.0.1:61679)",
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR",
        help="the daemon's /metrics address host:port (default: its own setting)",
    )
    parser.add_argument(
        "--socket",
        default=str(defaults.socket_path),
        metavar="PATH",
        help=f"the daemon's plugin socket (default {defaults.socket_path})",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=str(defaults.checkpoint_dir),
        metavar="DIR",
        help=f"the daemon's checkpoint directory (default {defaults.checkpoint_dir})",
    )
    parser.add_argument(
        "--conf-dir",
        default=str(DEFAULT_CONF_DIR),
        metavar="DIR",
        help=f"the CNI conf dir (default {DEFAULT_CONF_DIR})",
    )
    parser.add_argument(
        "--bin-dir",
        default=str(DEFAULT_BIN_DIR),
        metavar="DIR",
        help=f"the CNI bin dir (default {DEFAULT_BIN_DIR})",
    )
    parser.add_argument(
        "--kubelet-config",
        metavar="FILE",
        help="kubelet's config file to read maxPods from (default: the running kubelet's)",
    )


def options(args: argparse.Namespace) -> DoctorOptions:
    """The checked options, or a one-line error naming the bad one."""
    for flag, value in (("--introspection", args.introspection), ("--metrics", args.metrics)):
        if value is None:
            continue
        try:
            parse_introspection_bind(value)
        except ValueError as error:
            raise InvalidInput(f"{flag}={value!r} {error}; accepted: {BIND_ACCEPTED}") from None
    if args.metrics is not None and args.metrics.startswith("unix:"):
        raise InvalidInput(f"--metrics={args.metrics!r}: /metrics is served on TCP host:port")
    manifest = load(Path(args.manifest)) if args.manifest else None
    return DoctorOptions(
        socket=Path(args.socket),
        checkpoint_dir=Path(args.checkpoint_dir),
        introspection=args.introspection,
        metrics=args.metrics,
        conf_dir=Path(args.conf_dir),
        bin_dir=Path(args.bin_dir),
        netns=check_netns(args.netns, "--netns") if args.netns else None,
        pod_netns=check_netns(args.pod_netns, "--pod-netns") if args.pod_netns else None,
        manifest=manifest,
        kubelet_config=Path(args.kubelet_config) if args.kubelet_config else None,
    )


def run(args: argparse.Namespace) -> str:
    """Run every check; print the report; end with the worst verdict's status."""
    checked = options(args)
    logging.getLogger("vpccni").addHandler(logging.NullHandler())  # checkpoint repair notes
    results = diagnose(checked)
    verdict = worst(results)
    if args.format == "json":
        report = to_json(
            {
                "vpccni": __version__,
                "status": verdict.value,
                "exit_status": verdict.exit_status,
                "summary": counts(results),
                "checks": [result.to_json() for result in results],
            }
        )
    else:
        report = render(results)
    if verdict.exit_status == 0:
        return report
    print(report, flush=True)
    raise ReportStatus(f"doctor: {summary(results)}", verdict.exit_status)


LABELS = {Status.PASS: "pass", Status.SKIP: "skip", Status.WARN: "WARN", Status.FAIL: "FAIL"}


def render(results: list[Result]) -> str:
    """Each check as a person reads it, then the totals."""
    lines = []
    for result in results:
        lines.append(f"[{LABELS[result.status]}] {result.check}: {result.title}")
        lines.append(f"       {result.evidence}")
        if result.fix:
            lines.append(f"       fix: {result.fix}")
    lines += ["", summary(results)]
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """``N checks: a pass, b skip, c warn, d fail; exit status S``."""
    found = ", ".join(f"{n} {status}" for status, n in counts(results).items() if n)
    return f"{len(results)} checks: {found}; exit status {worst(results).exit_status}"
