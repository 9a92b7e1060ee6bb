"""``vpccni config check|convert FILE``: an ``aws-node`` (or vpccni) DaemonSet's settings judged
with the daemon's own parser, and carried over to ``vpccni manifests``.

``check`` prints every finding (``vpccni.configcheck.check``) as a report or JSON and exits
with the worst one's status: 0 (passes, notes only), 1 (warnings), 2 (errors). ``convert``
prints the ``vpccni manifests`` values (``--set`` lines, an ``--env-file`` or JSON; ``--output
FILE`` writes them instead), the notes on what it did not carry on stderr, and exits 1 when a
setting is lost, 2 when the result would not render. The report goes to stdout either way; a
non-zero status adds one line on stderr. See docs/migration.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.output import FORMATS, to_json
from vpccni.configcheck import convert as conversion
from vpccni.configcheck.check import CheckOptions, check
from vpccni.configcheck.findings import Finding, Severity, counts, ordered, render, worst
from vpccni.configcheck.source import DaemonSetFile, load
from vpccni.errors import InvalidInput, VpccniError

CONVERT_FORMATS = ("set", "env-file", "json")


class ReportStatus(VpccniError):
    """The report was printed; the command ends with the status its worst finding calls for."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(subparsers: Any) -> None:
    """Add ``config`` with its ``check`` and ``convert`` subcommands."""
    parser = subparsers.add_parser(
        "config",
        help="check an aws-node (or vpccni) DaemonSet's settings, or convert them for vpccni",
        description="Read a DaemonSet from a file (kubectl get -o yaml/json, kubectl apply "
        "view-last-applied, or a multi-document stream such as upstream's aws-k8s-cni.yaml) "
        "and check or convert the settings of its CNI containers. See docs/migration.md.",
    )
    parser.set_defaults(run=_missing_command)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    checker = commands.add_parser(
        "check",
        help="validate every variable with vpccni's parser; list changes, upstream's silent "
        "replacements, unknown names, inert and impossible combinations, managed fields",
        description="Validate the DaemonSet's CNI settings with the daemon's own strict parser "
        "and report, worst first: values vpccni refuses (and what upstream does with them "
        "instead), unknown variables, upstream variables vpccni does not read, settings that "
        "do nothing or cannot work together, fields the EKS managed add-on writes back, and "
        "every value that differs from the shipped default. Exit status: 0 passes, 1 "
        "warnings, 2 errors.",
    )
    checker.add_argument("file", type=Path, metavar="FILE", help="the DaemonSet (YAML or JSON)")
    checker.add_argument(
        "--instance-type",
        metavar="TYPE",
        help="also judge the settings on this instance type (e.g. prefix delegation needs "
        "Nitro; targets beyond the node's capacity), from the shipped instance table",
    )
    checker.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: a report for people (default); json: one object with every finding",
    )
    checker.set_defaults(run=run_check)
    converter = commands.add_parser(
        "convert",
        help="turn an aws-node DaemonSet's settings into vpccni manifests values",
        description="Turn the settings of an aws-node DaemonSet into the values of 'vpccni "
        "manifests' (--set lines or an --env-file), checked with what that command runs; "
        "notes on stderr say what could not be carried (upstream variables vpccni does not "
        "read, invalid values, images, resources, extra containers, custom volumes). Exit "
        "status: 0 nothing lost, 1 a setting is lost, 2 the values would not render.",
    )
    converter.add_argument("file", type=Path, metavar="FILE", help="the DaemonSet (YAML or JSON)")
    converter.add_argument(
        "--format",
        choices=CONVERT_FORMATS,
        default="set",
        help="set: one '--set NAME=VALUE' per line, shell-quoted (default); env-file: NAME=VALUE "
        "lines for 'vpccni manifests --env-file'; json: the values and the notes",
    )
    converter.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the values to FILE (replaced atomically) instead of printing them",
    )
    converter.set_defaults(run=run_convert)


def _missing_command(args: argparse.Namespace) -> str:
    raise InvalidInput("vpccni config: give check or convert (see 'vpccni config --help')")


def run_check(args: argparse.Namespace) -> str:
    """Check the file; print the report; exit with the worst finding's status."""
    options = CheckOptions()
    if args.instance_type is not None:
        options = CheckOptions(load_instance_table().get(args.instance_type))
    daemon_set = load(args.file)
    findings = check(daemon_set, options)
    if args.format == "json":
        report = to_json(_check_json(daemon_set, findings, args.instance_type))
    else:
        report = render(_title(daemon_set, args.instance_type), findings)
    return _finish(report, worst(findings), f"config check: {counts(findings)}")


def run_convert(args: argparse.Namespace) -> str:
    """Convert the file; print or write the values; notes on stderr."""
    daemon_set = load(args.file)
    result = conversion.convert(daemon_set)
    status = result.worst
    if args.format == "json":
        text = to_json(
            {
                "source": str(args.file),
                "daemonset": f"{daemon_set.namespace}/{daemon_set.name}",
                "variables": {a.name: a.value for a in result.assignments},
                "notes": [
                    {"severity": n.severity.label, "subject": n.subject, "message": n.message}
                    for n in result.notes
                ],
                "exit_status": int(status),
            }
        )
    else:
        text = (
            result.env_file(str(args.file)).rstrip("\n")
            if args.format == "env-file"
            else result.set_lines()
        )
        for note in sorted(result.notes, key=lambda n: -n.severity):
            print(f"note ({note.severity.label}): {note.subject}: {note.message}", file=sys.stderr)
    if args.output is not None:
        _write(args.output, text + "\n")
        text = f"wrote {len(result.assignments)} variables to {args.output}"
    lost = sum(1 for n in result.notes if n.severity >= Severity.WARN)
    return _finish(text, status, f"config convert: {lost} setting(s) not carried (see the notes)")


def _finish(report: str, status: Severity, summary: str) -> str:
    """Return the report when it passes; else print it and end with its status."""
    if status == Severity.INFO:
        return report
    print(report, flush=True)
    raise ReportStatus(f"{summary}; exit status {int(status)}", int(status))


def _title(daemon_set: DaemonSetFile, instance_type: str | None) -> str:
    kind = "vpccni's DaemonSet" if daemon_set.flavour == "vpccni" else "upstream's aws-node"
    containers = ", ".join(c.name for c in daemon_set.cni)
    on = f", judged on {instance_type}" if instance_type else ""
    return (
        f"vpccni config check {daemon_set.source}: DaemonSet {daemon_set.namespace}/"
        f"{daemon_set.name} ({kind}; CNI containers {containers}{on})"
    )


def _check_json(
    daemon_set: DaemonSetFile, findings: list[Finding], instance_type: str | None
) -> dict[str, Any]:
    status = worst(findings)
    return {
        "source": daemon_set.source,
        "daemonset": f"{daemon_set.namespace}/{daemon_set.name}",
        "flavour": daemon_set.flavour,
        "containers": [c.name for c in daemon_set.cni],
        "instance_type": instance_type,
        "findings": [f.as_json() for f in ordered(findings)],
        "worst": status.label,
        "exit_status": int(status),
    }


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InvalidInput(
            f"cannot write --output {path}: {error.strerror}; choose a file you can write"
        ) from None
