"""The emulator's model stays pure: standard library only, no I/O modules, no clock reads.

import-linter keeps the model away from the HTTP front (pyproject.toml); this checks what it
cannot see: third-party and I/O imports. ``random`` is allowed because the model only uses a
seeded ``random.Random`` handed to it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import vpccni.emulator

PACKAGE = Path(vpccni.emulator.__file__).parent
EDGE_MODULES = {"server", "admin", "wire", "statefile", "clock"}
IO_MODULES = {"os", "socket", "subprocess", "time", "shutil", "pathlib", "io", "http", "urllib"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pure_modules_import_only_stdlib_core_and_each_other() -> None:
    pure = [p for p in PACKAGE.glob("*.py") if p.stem not in EDGE_MODULES]
    assert len(pure) >= 14
    for path in pure:
        for name in imported(path):
            top = name.split(".")[0]
            if top == "vpccni":
                assert name.startswith(("vpccni.core", "vpccni.errors", "vpccni.emulator")), (
                    path.name,
                    name,
                )
                assert name.split(".")[-1] not in EDGE_MODULES, (path.name, name)
            else:
                assert top in sys.stdlib_module_names, (path.name, name)
                assert top not in IO_MODULES, (path.name, name)


def test_botocore_is_loaded_only_by_the_wire() -> None:
    for path in PACKAGE.glob("*.py"):
        uses_botocore = any(n.split(".")[0] in ("botocore", "boto3") for n in imported(path))
        assert uses_botocore == (path.stem == "wire"), path.name


def test_modules_stay_small_and_say_what_they_own() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(text)), path.name
        assert text.count("\n") <= 420, path.name
