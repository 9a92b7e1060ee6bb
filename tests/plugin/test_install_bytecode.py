"""The Python plugin as install-cni installs it: a launcher, the source and its bytecode.

Python never caches the bytecode of a script, so ``cni.py`` verbatim behind a shebang was
compiled on every pod's ADD (~8 ms of ~20). install-cni writes instead ``vpccni-cni`` (a small
launcher), ``vpccni-cni.d/cni.py`` (the source, verbatim) and the bytecode the *plugin's own*
interpreter compiled at install time (hash-checked, in ``vpccni-cni.d/__pycache__``). Held
here, on the interpreter install-cni chooses and on every installed 3.8 (the floor): the plugin
runs from that bytecode and compiles nothing; an interpreter it was not compiled for, a pyc
whose magic number differs and a pyc that no longer matches the source all run the source; the
plugin writes nothing at run time; a symlink to the launcher works; a missing directory is a CNI
error, not a traceback; the launcher keeps the verbatim script's behaviour when loaded as a
module; the doctor's comparison (``is_shipped_python_plugin``) tells ours from a changed one; a
failed compile changes nothing. Timing is benchmarks/bench_plugin.py's job, never a test's.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin.test_python_floor import floor_interpreters
from vpccni.errors import VpccniError
from vpccni.node import plugin_install
from vpccni.plugin import cni

CHOSEN = plugin_install.choose_interpreter(None)
INTERPRETERS = list(dict.fromkeys([CHOSEN, *floor_interpreters()]))
VERSION_ENV = {"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}


def ask(interpreter: str, expression: str) -> str:
    """``expression`` evaluated by ``interpreter`` (run as the plugin runs: -IS)."""
    done = subprocess.run(
        [interpreter, "-IS", "-c", f"import importlib.util, sys; print({expression})"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run_verbose(interpreter: str, plugin: Path) -> subprocess.CompletedProcess[str]:
    """The plugin's VERSION under ``interpreter -IS -v``: stderr says where each code object
    came from (``# code object from ...``)."""
    return subprocess.run(
        [interpreter, "-IS", "-v", str(plugin)],
        env=VERSION_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def loaded_from(verbose: subprocess.CompletedProcess[str], directory: Path) -> list[str]:
    """The plugin's code objects: the lines naming a file under ``directory``."""
    return [
        line
        for line in verbose.stderr.splitlines()
        if line.startswith("# code object from") and "vpccni-cni.d" in line
    ]


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(params=INTERPRETERS, ids=[Path(path).name for path in INTERPRETERS])
def interpreter(request: pytest.FixtureRequest) -> str:
    path: str = request.param
    return path


def test_the_plugin_runs_from_bytecode_its_interpreter_compiled(
    short_dir: Path, interpreter: str
) -> None:
    plugin = plugin_install.install_plugin(short_dir, interpreter)
    tag = ask(interpreter, "sys.implementation.cache_tag")
    bytecode = short_dir / "vpccni-cni.d" / "__pycache__" / f"cni.{tag}.pyc"
    assert sorted(files(short_dir)) == [
        "vpccni-cni",
        "vpccni-cni.d/__pycache__/" + bytecode.name,
        "vpccni-cni.d/cni.py",
    ]
    assert sorted(path.name for path in short_dir.iterdir()) == ["vpccni-cni", "vpccni-cni.d"]
    magic = ask(interpreter, "importlib.util.MAGIC_NUMBER.hex()")
    header = bytecode.read_bytes()[:16]
    assert header[:4].hex() == magic  # compiled by the plugin's interpreter, not the installer's
    assert int.from_bytes(header[4:8], "little") == 0b11  # hash-based, checked against source
    before = files(short_dir)
    verbose = run_verbose(interpreter, plugin)
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == cni.VERSION_REPLY
    (line,) = loaded_from(verbose, short_dir)
    assert line == f"# code object from '{short_dir}/vpccni-cni.d/__pycache__/{bytecode.name}'"
    assert files(short_dir) == before  # nothing written at run time


def test_anything_but_matching_bytecode_runs_the_source(short_dir: Path) -> None:
    """Another interpreter (its cache tag has no pyc), a pyc of another magic number, and a pyc
    that no longer matches the source (a reinstall cut short between the two files): the source
    beside the launcher runs, compiled in memory; nothing is written."""
    plugin = plugin_install.install_plugin(short_dir, CHOSEN)
    directory = short_dir / "vpccni-cni.d"
    (bytecode,) = (directory / "__pycache__").iterdir()
    source_line = f"# code object from {directory}/cni.py"
    for other in INTERPRETERS[1:]:  # every installed 3.8 that is not the chosen interpreter
        before = files(short_dir)
        verbose = run_verbose(other, plugin)
        assert (verbose.returncode, verbose.stdout) == (0, cni.VERSION_REPLY), verbose.stderr
        assert loaded_from(verbose, short_dir) == [source_line]
        assert files(short_dir) == before
    original = bytecode.read_bytes()
    bytecode.write_bytes(b"\x00\x00\r\n" + original[4:])  # another magic number
    verbose = run_verbose(CHOSEN, plugin)
    assert (verbose.returncode, verbose.stdout) == (0, cni.VERSION_REPLY), verbose.stderr
    assert loaded_from(verbose, short_dir) == [source_line]
    bytecode.write_bytes(original)
    source = directory / "cni.py"
    text = source.read_text()
    assert text.count("\nVERSION_REPLY = (\n") == 1
    source.write_text(text.replace("\nVERSION_REPLY = (\n", '\nVERSION_REPLY = "{}\\n" or (\n'))
    before = files(short_dir)
    verbose = run_verbose(CHOSEN, plugin)
    assert (verbose.returncode, verbose.stdout) == (0, "{}\n"), verbose.stderr
    assert loaded_from(verbose, short_dir) == [source_line]
    assert files(short_dir) == before


def test_a_symlink_to_the_launcher_finds_the_plugin_beside_its_target(short_dir: Path) -> None:
    bin_dir = short_dir / "bin"
    bin_dir.mkdir()
    plugin = plugin_install.install_plugin(bin_dir, CHOSEN)
    elsewhere = short_dir / "libexec"
    elsewhere.mkdir()
    (elsewhere / "absolute").symlink_to(plugin)
    (elsewhere / "relative").symlink_to(Path("..") / "bin" / "vpccni-cni")
    (short_dir / "chained").symlink_to(Path("libexec") / "relative")
    for link in ("libexec/absolute", "libexec/relative", "chained"):
        done = subprocess.run(
            [str(short_dir / link)], env=VERSION_ENV, capture_output=True, text=True, check=False
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, cni.VERSION_REPLY, ""), link


def test_a_missing_plugin_directory_is_a_cni_error_not_a_traceback(short_dir: Path) -> None:
    plugin = plugin_install.install_plugin(short_dir, CHOSEN)
    (short_dir / "vpccni-cni.d" / "cni.py").unlink()
    done = subprocess.run(
        [str(plugin)], env=VERSION_ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr == ""
    error = json.loads(done.stdout)
    assert (error["code"], error["msg"]) == (11, "vpccni-cni cannot load its code")
    assert error["details"].startswith("FileNotFoundError: ")
    assert str(short_dir / "vpccni-cni.d" / "cni.py") in error["details"]
    assert error["details"].endswith("; reinstall it: vpccni install-cni")


def test_the_launcher_loaded_as_a_module_is_the_plugin_module(short_dir: Path) -> None:
    """As the verbatim script did: loading the file as a module (tests/plugin/conftest.py's
    ``loaded_plugin``) gives the plugin's ``main``; only running it as ``__main__`` calls it or
    changes ``sys``."""
    plugin = plugin_install.install_plugin(short_dir, CHOSEN)
    loader = importlib.machinery.SourceFileLoader("vpccni_cni_launcher_test", str(plugin))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    writes = sys.dont_write_bytecode
    loader.exec_module(module)
    assert sys.dont_write_bytecode is writes
    assert module.main.__module__ == "vpccni_cni"
    assert module.main.__globals__["VERSION_REPLY"] == cni.VERSION_REPLY


def test_the_launcher_is_python_3_8() -> None:
    """The floor holds for the launcher too (it also runs on each 3.8 in the tests above)."""
    ast.parse(plugin_install.LAUNCHER_BODY, feature_version=(3, 8))


def test_the_doctor_tells_the_shipped_plugin_from_a_changed_one(short_dir: Path) -> None:
    plugin = plugin_install.install_plugin(short_dir, CHOSEN)
    assert plugin_install.is_shipped_python_plugin(short_dir, plugin.read_bytes())
    assert not plugin_install.is_shipped_python_plugin(short_dir, plugin.read_bytes() + b"#\n")
    verbatim = f"#!{CHOSEN} -IS\n".encode() + plugin_install.plugin_source()  # the old form
    assert not plugin_install.is_shipped_python_plugin(short_dir, verbatim)
    (short_dir / "vpccni-cni.d" / "cni.py").write_bytes(plugin_install.plugin_source() + b"#\n")
    assert not plugin_install.is_shipped_python_plugin(short_dir, plugin.read_bytes())


def test_a_failed_compile_changes_nothing(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin_install.install_plugin(short_dir, CHOSEN)
    before = files(short_dir)
    monkeypatch.setattr(
        plugin_install, "COMPILE_SCRIPT", "import sys; sys.exit('SyntaxError: nope')"
    )
    with pytest.raises(VpccniError, match=r"could not compile the plugin \(SyntaxError: nope\)"):
        plugin_install.install_plugin(short_dir, CHOSEN)
    assert files(short_dir) == before
    assert sorted(path.name for path in short_dir.iterdir()) == ["vpccni-cni", "vpccni-cni.d"]


def test_reinstalling_for_another_interpreter_leaves_only_its_bytecode(short_dir: Path) -> None:
    for interpreter in [*INTERPRETERS, CHOSEN]:
        plugin_install.install_plugin(short_dir, interpreter)
        tag = ask(interpreter, "sys.implementation.cache_tag")
        cache = short_dir / "vpccni-cni.d" / "__pycache__"
        assert [path.name for path in cache.iterdir()] == [f"cni.{tag}.pyc"]


def test_something_in_the_way_of_the_directory_is_a_one_line_error(short_dir: Path) -> None:
    (short_dir / "vpccni-cni.d").write_text("")
    with pytest.raises(VpccniError, match=r"vpccni-cni.d is in the way \(not a directory\)"):
        plugin_install.install_plugin(short_dir, CHOSEN)
    assert not (short_dir / "vpccni-cni").exists()


@pytest.mark.parametrize("depth", [992, 993, 994])
def test_json_nesting_is_bounded_as_for_the_verbatim_script(short_dir: Path, depth: int) -> None:
    """Python's recursion limit bounds how deep a JSON document decodes (and the static plugin
    mirrors the verbatim script's bounds): the launcher calls ``main`` from its top level, so it
    adds no frame."""
    plugin = plugin_install.install_plugin(short_dir, CHOSEN)
    verbatim = short_dir / "verbatim"
    verbatim.write_bytes(f"#!{CHOSEN} -IS\n".encode() + plugin_install.plugin_source())
    verbatim.chmod(0o755)
    stdin = b"[" * depth + b"]" * depth
    env = {**VERSION_ENV, "CNI_COMMAND": "ADD", "VPCCNI_SOCKET": str(short_dir / "none.sock")}
    seen = [
        subprocess.run([str(path)], env=env, input=stdin, capture_output=True, check=False)
        for path in (plugin, verbatim)
    ]
    assert (seen[0].returncode, seen[0].stdout) == (seen[1].returncode, seen[1].stdout)
