"""Running one ``vpccni`` command imports that command's module only: the daemon's process
(``vpccni ipamd``) never loads the planner, the simulator, the emulator or the doctor, and
``vpccni node-run`` (a long-lived supervisor beside it) never loads the daemon."""

from __future__ import annotations

import argparse
import subprocess
import sys

from vpccni.cli.main import COMMANDS, build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_table_names_every_command_its_module_registers() -> None:
    registered = [
        (sub.get_default("run").__module__.rsplit(".", 1)[1], name)
        for name, sub in _commands(build_parser()).items()
    ]
    assert registered == [(module, name) for module, names in COMMANDS for name in names]


def test_a_command_parses_and_helps_the_same_alone() -> None:
    full = _commands(build_parser())
    for _, names in COMMANDS:
        alone = _commands(build_parser(names[0]))
        assert sorted(alone) == sorted(names)
        for name in names:
            assert alone[name].format_help() == full[name].format_help()
    assert sorted(_commands(build_parser("no-such-command"))) == sorted(full)


def _loaded(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_daemon_loads_no_other_command() -> None:
    loaded = _loaded(
        "from vpccni.cli.main import build_parser\n"
        "build_parser('ipamd').parse_args(['ipamd'])\n"
        "import vpccni.daemon.runner"
    )
    others = ("emulator", "capacity", "sim", "doctor", "configcheck", "deploy", "bundle")
    assert not {m for m in loaded if m.split(".")[:2] in (["vpccni", o] for o in others)}
    assert not {m for m in loaded if m.split(".")[0] in ("boto3", "s3transfer", "yaml")}


def test_node_run_does_not_load_the_daemon() -> None:
    loaded = _loaded(
        "from vpccni.cli.main import build_parser\n"
        "build_parser('node-run').parse_args(['node-run'])"
    )
    assert "vpccni.daemon.runner" not in loaded
    heavy = ("pyroute2", "botocore", "boto3", "prometheus_client")
    assert not {m for m in loaded if m.split(".")[0] in heavy}
