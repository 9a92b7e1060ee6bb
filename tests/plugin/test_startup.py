"""Start-up guard: the installed plugin loads only builtin modules on its common paths.

Tests never assert on wall-clock time (benchmarks/bench_plugin.py measures it); they assert on
what is imported. ``json``, ``socket`` and ``os`` pull in ``re``, ``enum`` and friends - about
12 ms on every pod's ADD and DEL - so VERSION, ADD, DEL and their error paths must do without.

One exception, by design: ADD and CHECK enter the pod's namespace, and an interpreter whose
``posix`` has no ``setns`` (Python < 3.12) calls libc's through ``ctypes``, which imports ``os``.
Only those two verbs, only on such an interpreter, and only what ``ctypes`` itself loads (the
modules nested under it in ``-X importtime``'s tree) are let through.
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


def import_tree(plugin: Path, env: dict[str, str], stdin: bytes) -> list[tuple[int, str]]:
    """(depth, module) per ``-X importtime`` line, in its order (a module's imports come just
    before it, one level deeper), run under the plugin's own shebang."""
    interpreter, flags = plugin.read_text().splitlines()[0][2:].split()
    done = subprocess.run(
        [interpreter, flags, "-X", "importtime", str(plugin)],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    tree = []
    for line in done.stderr.decode().splitlines():
        if line.startswith("import time:") and not line.endswith("| imported package"):
            name = line.rsplit("|", 1)[1]
            tree.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip()))
    return tree


def imported(plugin: Path, env: dict[str, str], stdin: bytes) -> set[str]:
    """Modules the plugin imports."""
    return {name for _, name in import_tree(plugin, env, stdin)}


def loaded_by(tree: list[tuple[int, str]], module: str) -> set[str]:
    """``module`` and every module first imported while importing it ({} if never imported)."""
    for index, (depth, name) in enumerate(tree):
        if name == module:
            found = {name}
            for inner_depth, inner in reversed(tree[:index]):
                if inner_depth <= depth:
                    break
                found.add(inner)
            return found
    return set()


def interpreter_has_setns(plugin: Path) -> bool:
    """Whether the plugin's interpreter offers ``posix.setns`` (Python 3.12+)."""
    interpreter, flags = plugin.read_text().splitlines()[0][2:].split()
    done = subprocess.run(
        [interpreter, flags, "-c", "import posix; print(hasattr(posix, 'setns'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip() == "True"


def test_version_loads_no_heavy_module(plugin: Path) -> None:
    assert imported(plugin, {"CNI_COMMAND": "VERSION"}, b"") & HEAVY == set()


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_verbs_against_the_daemon_load_no_heavy_module(runtime: Runtime, command: str) -> None:
    result = json.loads(runtime.call("ADD", network_config("1.0.0")).stdout)
    config = json.dumps(network_config("1.0.0", prevResult=result)).encode()
    tree = import_tree(runtime.plugin, runtime.env(command), config)
    modules = {name for _, name in tree}
    assert "_socket" in modules
    through_ctypes = loaded_by(tree, "ctypes")
    if command in ("ADD", "CHECK") and not interpreter_has_setns(runtime.plugin):
        assert "ctypes" in through_ctypes, "setns without posix.setns goes through ctypes"
    else:
        assert through_ctypes == set(), f"{command} must not load ctypes"
    assert (modules - through_ctypes) & HEAVY == set()


def test_loaded_by_takes_only_what_is_nested_under_the_module() -> None:
    tree = [(0, "_socket"), (2, "_stat"), (1, "stat"), (1, "os"), (1, "_ctypes"), (0, "ctypes")]
    tree += [(0, "re")]
    assert loaded_by(tree, "ctypes") == {"ctypes", "_ctypes", "os", "stat", "_stat"}
    assert loaded_by(tree, "stat") == {"stat", "_stat"}
    assert loaded_by(tree, "enum") == set()


def test_a_config_error_loads_no_heavy_module(runtime: Runtime) -> None:
    config = json.dumps(network_config("0.5.0")).encode()  # no such version: error 1
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
