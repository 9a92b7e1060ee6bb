"""Start-up guard: the installed plugin loads only builtin modules on its common paths.

Tests never assert on wall-clock time (benchmarks/bench_plugin.py measures it); they assert on
what is imported. ``json``, ``socket`` and ``os`` pull in ``re``, ``enum`` and friends - about
12 ms on every pod's ADD and DEL - so VERSION, ADD, DEL and their error paths must do without.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin.runtime import Runtime, network_config
from vpccni.plugin import cni

# Python-only: these tests read the Python plugin's shebang and its imports (-X importtime);
# the static plugin has no interpreter start-up to guard.
pytestmark = pytest.mark.python_plugin_only

HEAVY = {"json", "socket", "os", "re", "enum", "ipaddress", "typing", "collections", "functools"}


def imported(plugin: Path, env: dict[str, str], stdin: bytes) -> set[str]:
    """Modules the plugin imports, read from ``-X importtime`` under its own shebang."""
    interpreter, flags = plugin.read_text().splitlines()[0][2:].split()
    done = subprocess.run(
        [interpreter, flags, "-X", "importtime", str(plugin)],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.decode().splitlines()
    return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}


def test_version_loads_no_heavy_module(plugin: Path) -> None:
    assert imported(plugin, {"CNI_COMMAND": "VERSION"}, b"") & HEAVY == set()


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_verbs_against_the_daemon_load_no_heavy_module(runtime: Runtime, command: str) -> None:
    result = json.loads(runtime.call("ADD", network_config("1.0.0")).stdout)
    config = json.dumps(network_config("1.0.0", prevResult=result)).encode()
    modules = imported(runtime.plugin, runtime.env(command), config)
    assert "_socket" in modules
    assert modules & HEAVY == set()


def test_a_config_error_loads_no_heavy_module(runtime: Runtime) -> None:
    config = json.dumps(network_config("0.3.1")).encode()
    assert imported(runtime.plugin, runtime.env("ADD"), config) & HEAVY == set()


def test_every_import_anywhere_in_the_plugin_is_standard_library() -> None:
    """Lazy imports included: the installed file must run with nothing but the stdlib."""
    source = Path(cni.__file__).read_text()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            names.add((node.module or "").split(".")[0])
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)
    assert "vpccni" not in names
