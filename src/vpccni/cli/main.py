"""Entry point of the ``vpccni`` command: one parser, subcommands, and one error policy.

Every subcommand's ``run(args)`` returns the text to print. Errors a person can cause become a
one-line message on stderr with a non-zero exit; an unexpected failure is reported as such with
a hint to re-run with ``VPCCNI_DEBUG=1`` for the traceback. No traceback reaches the user
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from vpccni import __version__
from vpccni.cli import (
    config_cmd,
    demo_cmd,
    doctor_cmd,
    emulator_cmd,
    explain_cmd,
    install_cni_cmd,
    ipamd_cmd,
    limits_cmd,
    manifests_cmd,
    maxpods_cmd,
    node_cmd,
    plan_cmd,
    simulate_cmd,
    status_cmd,
    support_bundle_cmd,
)
from vpccni.errors import InvalidInput, VpccniError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The full ``vpccni`` parser."""
    parser = _Parser(
        prog="vpccni",
        description="vpccni: Amazon VPC CNI in Python - node daemon, CNI plugin, EC2 emulator "
        "and capacity planning.",
    )
    parser.add_argument("--version", action="version", version=f"vpccni {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    limits_cmd.register(subparsers)
    maxpods_cmd.register(subparsers)
    explain_cmd.register(subparsers)
    emulator_cmd.register(subparsers)
    ipamd_cmd.register(subparsers)
    demo_cmd.register(subparsers)
    status_cmd.register(subparsers)
    install_cni_cmd.register(subparsers)
    node_cmd.register(subparsers)
    plan_cmd.register(subparsers)
    simulate_cmd.register(subparsers)
    manifests_cmd.register(subparsers)
    doctor_cmd.register(subparsers)
    support_bundle_cmd.register(subparsers)
    config_cmd.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
        if not hasattr(args, "run"):
            raise InvalidInput("vpccni: give a command (see 'vpccni --help')")
        output: str = args.run(args)
        print(output)
    except VpccniError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if os.environ.get("VPCCNI_DEBUG"):
            raise
        print(
            f"internal error: {type(error).__name__}: {error}; this is a vpccni bug - "
            "re-run with VPCCNI_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
