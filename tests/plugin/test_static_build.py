"""The static plugin's build: scripts/build-plugin.sh makes a static, reproducible executable
for amd64 and arm64 from plugin-static/ (Go standard library only, offline), and the tables it
takes from Python (tables.go) are current for the interpreter install-cni puts in the Python
plugin's shebang."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.plugin.conftest import BUILD_PLUGIN, ROOT, _require
from tests.plugin.runtime import ALL_VERSIONS, exec_plugin
from vpccni.cli import install_cni_cmd

SOURCE = ROOT / "plugin-static"
PT_DYNAMIC, PT_INTERP = 2, 3
EM_X86_64, EM_AARCH64 = 62, 183


def program_headers(path: Path) -> tuple[int, list[int]]:
    """(e_machine, the type of every program header) of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert data[4:6] == b"\x02\x01", f"{path} is not 64-bit little-endian ELF"
    machine = struct.unpack_from("<H", data, 18)[0]
    offset = struct.unpack_from("<Q", data, 32)[0]
    size, count = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, offset + i * size)[0] for i in range(count)]
    return machine, types


def build(out: Path, *arch: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["bash", str(BUILD_PLUGIN), str(out), *arch],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.split()[0]
    assert len(digest) == 64, done.stdout
    return digest


@pytest.fixture(scope="module")
def go() -> str:
    path = shutil.which("go")
    _require(path is not None, "go is missing (apt-get install -y golang-go)")
    assert path is not None
    return path


def test_the_plugin_is_a_static_executable(static_plugin: Path) -> None:
    machine, types = program_headers(static_plugin)
    assert machine == {"x86_64": EM_X86_64, "aarch64": EM_AARCH64}[os.uname().machine]
    assert PT_INTERP not in types  # no dynamic loader: runs on a host without libc or Python
    assert PT_DYNAMIC not in types
    assert static_plugin.stat().st_mode & 0o111
    outcome = exec_plugin(static_plugin, {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.json()["supportedVersions"] == list(ALL_VERSIONS)


def test_the_build_is_reproducible_and_needs_no_home(
    go: str, static_plugin: Path, tmp_path: Path
) -> None:
    env = {"PATH": os.environ.get("PATH", os.defpath)}  # no HOME, GOCACHE or GOPATH, as in CI
    digest = build(tmp_path / "again", env=env)
    assert (tmp_path / "again").read_bytes() == static_plugin.read_bytes()
    assert digest == hashlib.sha256(static_plugin.read_bytes()).hexdigest()


def test_the_arm64_build_is_static_too(go: str, tmp_path: Path) -> None:
    build(tmp_path / "vpccni-cni-arm64", "arm64")
    machine, types = program_headers(tmp_path / "vpccni-cni-arm64")
    assert machine == EM_AARCH64
    assert PT_INTERP not in types
    assert PT_DYNAMIC not in types


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "usage:"), (("/tmp/x", "mips"), "GOARCH mips is not supported")],
)
def test_bad_build_arguments_are_one_line_errors(args: tuple[str, ...], message: str) -> None:
    done = subprocess.run(
        ["bash", str(BUILD_PLUGIN), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert message in done.stderr


def test_tables_go_is_current_for_the_plugins_interpreter() -> None:
    interpreter = install_cni_cmd.choose_interpreter(None)
    done = subprocess.run(
        [interpreter, str(SOURCE / "gen_tables.py")], capture_output=True, check=True
    )
    assert done.stdout == (SOURCE / "tables.go").read_bytes(), (
        f"plugin-static/tables.go is stale: run {interpreter} plugin-static/gen_tables.py "
        "> plugin-static/tables.go"
    )


def test_the_go_source_is_formatted_and_vetted(go: str, tmp_path: Path) -> None:
    gofmt = Path(go).resolve().parent / "gofmt"
    unformatted = subprocess.run(
        [str(gofmt if gofmt.exists() else "gofmt"), "-l", str(SOURCE)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert unformatted.stdout == ""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path),
        "GOCACHE": str(tmp_path / "cache"),
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }
    vet = subprocess.run(
        [go, "vet", "."], cwd=SOURCE, env=env, capture_output=True, text=True, check=False
    )
    assert vet.returncode == 0, vet.stderr
