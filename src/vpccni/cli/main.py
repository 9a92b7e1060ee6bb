"""Entry point of the ``vpccni`` command: one parser, subcommands, and one error policy.

Every subcommand's ``run(args)`` returns the text to print. Errors a person can cause become a
one-line message on stderr with a non-zero exit; an unexpected failure is reported as such with
a hint to re-run with ``VPCCNI_DEBUG=1`` for the traceback. No traceback reaches the user
otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from vpccni import __version__
from vpccni.errors import InvalidInput, VpccniError

COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("limits_cmd", ("limits",)),
    ("maxpods_cmd", ("max-pods",)),
    ("explain_cmd", ("explain",)),
    ("emulator_cmd", ("emulator",)),
    ("ipamd_cmd", ("ipamd",)),
    ("demo_cmd", ("demo",)),
    ("status_cmd", ("status",)),
    ("install_cni_cmd", ("install-cni",)),
    ("node_cmd", ("node-init", "node-run")),
    ("plan_cmd", ("plan",)),
    ("simulate_cmd", ("simulate",)),
    ("manifests_cmd", ("manifests",)),
    ("doctor_cmd", ("doctor",)),
    ("support_bundle_cmd", ("support-bundle",)),
    ("config_cmd", ("config",)),
)
"""Each subcommand's module in ``vpccni.cli`` (in ``--help`` order) and the commands it
registers. Running a command imports its module only: ``vpccni ipamd`` never loads the planner,
the simulator, the emulator or the doctor (~4 MiB and ~0.2 s of imports)."""

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``vpccni`` parser: every command, or, when ``command`` is one of them, only the
    commands of its module (the other modules are not imported)."""
    parser = _Parser(
        prog="vpccni",
        description="vpccni: Amazon VPC CNI in Python - node daemon, CNI plugin, EC2 emulator "
        "and capacity planning.",
    )
    parser.add_argument("--version", action="version", version=f"vpccni {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    modules = [module for module, names in COMMANDS if command in names]
    for module in modules or [module for module, _ in COMMANDS]:
        importlib.import_module(f"vpccni.cli.{module}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        given = sys.argv[1:] if argv is None else list(argv)
        command = given[0] if given and not given[0].startswith("-") else None
        args = build_parser(command).parse_args(given)
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
