"""Every ``vpccni`` command and every option or positional in ``--help`` has a description.

Walks the parser ``vpccni.cli.main.build_parser`` builds, through every subcommand (and their
own subcommands, e.g. ``config check``), so a new flag without ``help=`` fails here.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from vpccni.cli.main import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _commands_without_help(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest: choice.help for choice in action._choices_actions}
            for name in action.choices:
                if not (described.get(name) or "").strip():
                    yield f"{path} {name}"


def _arguments_without_help(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(
            action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
        ):
            continue
        if action.help == argparse.SUPPRESS:
            continue  # deliberately hidden from --help
        if not (action.help or "").strip():
            name = "/".join(action.option_strings) or (action.metavar or action.dest)
            yield f"{path}: {name}"


def test_the_walk_reaches_every_command() -> None:
    paths = [path for path, _ in _parsers(build_parser(), "vpccni")]
    for expected in ("vpccni plan", "vpccni simulate", "vpccni demo", "vpccni config check"):
        assert expected in paths
    assert len(paths) > 15


def test_every_option_and_positional_has_help() -> None:
    missing = [
        name
        for path, parser in _parsers(build_parser(), "vpccni")
        for name in _arguments_without_help(parser, path)
    ]
    assert missing == [], "options without help text: " + ", ".join(missing)


def test_every_command_has_a_summary_in_the_command_list() -> None:
    missing = [
        name
        for path, parser in _parsers(build_parser(), "vpccni")
        for name in _commands_without_help(parser, path)
    ]
    assert missing == [], "commands without a summary: " + ", ".join(missing)


def test_every_help_page_renders_and_shows_each_description() -> None:
    for path, parser in _parsers(build_parser(), "vpccni"):
        text = parser.format_help()  # a stray % in a help string would raise here
        assert text.startswith("usage: "), path
        for action in parser._actions:
            if action.help and action.help != argparse.SUPPRESS and action.option_strings:
                assert action.option_strings[0] in text, (path, action.option_strings)
