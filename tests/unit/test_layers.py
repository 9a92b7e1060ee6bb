"""Layer rules import-linter cannot see: the core and the plugin use the standard library only.

The core must stay pure (no I/O libraries, no third-party code) so that the daemon, the simulator
and the planner run the same logic; the plugin must stay stdlib-only because its start-up time is
paid on every pod ADD/DEL.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vpccni

PACKAGE = Path(vpccni.__file__).parent
IO_MODULES = {"os", "socket", "subprocess", "time", "random", "shutil", "pathlib", "io"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module)
    return roots


def test_core_imports_only_pure_stdlib_and_itself() -> None:
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for name in imported_roots(path):
            top = name.split(".")[0]
            if top == "vpccni":
                assert name.startswith(("vpccni.core", "vpccni.errors")), (path, name)
            else:
                assert top in sys.stdlib_module_names, (path, name)
                assert top not in IO_MODULES, (path, name)


def test_plugin_loads_nothing_but_stdlib_and_itself() -> None:
    probe = (
        "import sys; before = set(sys.modules); import vpccni.plugin.cni; "
        "print('\\n'.join(m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    outside = {name for name in done.stdout.split() if not name.startswith("vpccni")}
    assert outside == set()
    assert set(done.stdout.split()) <= {
        "vpccni",
        "vpccni.plugin",
        "vpccni.plugin.cni",
    }
