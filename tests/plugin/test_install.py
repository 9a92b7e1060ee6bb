"""``vpccni install-cni``: the plugin file, the conflist, the wait for the daemon, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import ALL_VERSIONS, exec_plugin
from vpccni.cli import install_cni_cmd
from vpccni.errors import InvalidInput
from vpccni.node import plugin_install

SOURCE = (Path(install_cni_cmd.__file__).parent.parent / "plugin" / "cni.py").read_bytes()


def install(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "install-cni", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def dirs(short_dir: Path) -> tuple[Path, Path]:
    bin_dir, conf_dir = short_dir / "bin", short_dir / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    return bin_dir, conf_dir


def test_installs_the_plugin_with_its_bytecode_and_the_conflist(dirs: tuple[Path, Path]) -> None:
    bin_dir, conf_dir = dirs
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait", "--plugin", "python")
    assert done.returncode == 0, done.stderr
    plugin = bin_dir / "vpccni-cni"
    shebang, _, launcher = plugin.read_bytes().partition(b"\n")
    interpreter = install_cni_cmd.choose_interpreter(None)
    major, minor = plugin_install.python_version(interpreter)[:2]
    assert shebang == f"#!{interpreter} -IS".encode()
    assert launcher == plugin_install.LAUNCHER_BODY.encode()
    assert (bin_dir / "vpccni-cni.d" / "cni.py").read_bytes() == SOURCE
    (bytecode,) = (bin_dir / "vpccni-cni.d" / "__pycache__").iterdir()
    assert bytecode.name.startswith("cni.cpython-")
    assert bytecode.name.endswith(".pyc")
    assert plugin.stat().st_mode & 0o777 == 0o755
    assert bytecode.stat().st_mode & 0o777 == 0o644
    assert done.stdout.splitlines()[0] == (
        f"installed {plugin}: Python plugin with {interpreter} {major}.{minor} "
        f"(launcher #!{interpreter} -IS; cni.py and its bytecode __pycache__/{bytecode.name} "
        f"in {bin_dir / 'vpccni-cni.d'})"
    )
    assert json.loads((conf_dir / "10-vpccni.conflist").read_text()) == {
        "cniVersion": "1.0.0",
        "cniVersions": ["1.0.0", "1.1.0"],
        "name": "aws-cni",
        "plugins": [
            {
                "type": "vpccni-cni",
                "mtu": 9001,
                "socket": "/run/vpccni/ipamd.sock",
                "spoolDir": "/var/lib/vpccni/del-spool",
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }
    assert sorted(path.name for path in [*bin_dir.iterdir(), *conf_dir.iterdir()]) == [
        "10-vpccni.conflist",
        "vpccni-cni",
        "vpccni-cni.d",
    ]
    assert "10-vpccni.conflist" in done.stdout


def test_options_reach_the_conflist(dirs: tuple[Path, Path], short_dir: Path) -> None:
    bin_dir, conf_dir = dirs
    socket, spool = short_dir / "d.sock", short_dir / "spool"
    done = install(
        *("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait", "--bandwidth"),
        *("--network-name", "pods", "--mtu", "1500", "--socket", socket, "--spool-dir", spool),
    )
    assert done.returncode == 0, done.stderr
    conflist = json.loads((conf_dir / "10-vpccni.conflist").read_text())
    assert conflist["name"] == "pods"
    assert [plugin["type"] for plugin in conflist["plugins"]] == [
        "vpccni-cni",
        "portmap",
        "bandwidth",
    ]
    assert conflist["plugins"][0] == {
        "type": "vpccni-cni",
        "mtu": 1500,
        "socket": str(socket),
        "spoolDir": str(spool),
    }
    assert conflist["plugins"][2] == {"type": "bandwidth", "capabilities": {"bandwidth": True}}


def test_reinstalling_replaces_the_files(dirs: tuple[Path, Path]) -> None:
    bin_dir, conf_dir = dirs
    installed = []
    for mtu in ("9001", "1400"):
        done = install(
            *("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait", "--plugin", "python"),
            *("--mtu", mtu),
        )
        assert done.returncode == 0, done.stderr
        installed.append({path: path.read_bytes() for path in bin_dir.rglob("*") if path.is_file()})
    conflist = json.loads((conf_dir / "10-vpccni.conflist").read_text())
    assert conflist["plugins"][0]["mtu"] == 1400
    assert installed[0] == installed[1]  # idempotent: the same three files, byte for byte
    assert len(installed[1]) == 3
    assert len(list(conf_dir.iterdir())) == 1


def test_the_venv_interpreter_works_too(dirs: tuple[Path, Path]) -> None:
    bin_dir, conf_dir = dirs
    args = ("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait")
    done = install(*args, "--interpreter", sys.executable)
    assert done.returncode == 0, done.stderr
    outcome = exec_plugin(bin_dir / "vpccni-cni", {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.json()["supportedVersions"] == list(ALL_VERSIONS)


def test_the_conflist_waits_until_the_daemon_is_ready(
    dirs: tuple[Path, Path], fake_daemon: FakeDaemon
) -> None:
    bin_dir, conf_dir = dirs
    fake_daemon.ready = False
    command = [sys.executable, "-m", "vpccni.cli.main", "install-cni"]
    args = ["--bin-dir", bin_dir, "--conf-dir", conf_dir, "--socket", fake_daemon.socket_path]
    with subprocess.Popen([*command, *map(str, args)], stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 60
        while not any(
            request.get("op") == "status" for request in list(fake_daemon.requests)
        ):  # the plugin is in place before the daemon is asked
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (bin_dir / "vpccni-cni").exists()
        time.sleep(1.2)
        assert process.poll() is None
        assert not (conf_dir / "10-vpccni.conflist").exists()
        fake_daemon.ready = True
        assert process.wait(timeout=30) == 0
    assert (conf_dir / "10-vpccni.conflist").exists()


def test_a_daemon_that_never_answers_leaves_no_conflist(
    dirs: tuple[Path, Path], short_dir: Path
) -> None:
    bin_dir, conf_dir = dirs
    done = install(
        *("--bin-dir", bin_dir, "--conf-dir", conf_dir),
        *("--socket", short_dir / "none.sock", "--wait-seconds", "0.6"),
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "did not answer ready within 0.6 s" in done.stderr
    assert "--no-wait" in done.stderr
    assert (bin_dir / "vpccni-cni").exists()
    assert list(conf_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--bin-dir", "missing"), "does not exist"),
        (("--conf-dir", "a-file"), "is not a directory"),
        (("--interpreter", "python3"), "absolute path"),
        (("--interpreter", "/nonexistent/python3"), "not an executable file"),
        (("--interpreter", "script"), "is a script"),
        (("--mtu", "100"), "outside 576-9001"),
        (("--network-name", "-bad"), "--network-name"),
        (("--socket", "relative.sock"), "absolute path"),
        (("--socket", "/" + "s" * 200), "longer than 107 bytes"),
        (("--spool-dir", "spool"), "absolute path"),
    ],
)
def test_bad_options_are_one_line_errors(
    dirs: tuple[Path, Path], short_dir: Path, change: tuple[str, str], message: str
) -> None:
    bin_dir, conf_dir = dirs
    (short_dir / "a-file").write_text("")
    script = short_dir / "script"
    script.write_text('#!/bin/sh\nexec python3 "$@"\n')
    script.chmod(0o755)
    values = {"--bin-dir": str(bin_dir), "--conf-dir": str(conf_dir)}
    flag, value = change
    local = {"missing": short_dir / "missing", "a-file": short_dir / "a-file", "script": script}
    values[flag] = str(local.get(value, value))
    done = install(*[item for pair in values.items() for item in pair], "--no-wait")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
    assert list(conf_dir.iterdir()) == []


# --- the static plugin: picked when available, installed as it is, said so --------------------


@pytest.fixture
def static_binary(static_plugin: Path) -> Path:
    """The static Go plugin, as tests/plugin/conftest.py builds it once per session."""
    return static_plugin


def test_a_given_static_plugin_is_installed_as_it_is(
    dirs: tuple[Path, Path], static_binary: Path
) -> None:
    bin_dir, conf_dir = dirs
    done = install(
        *("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait"),
        *("--plugin-binary", static_binary),
    )
    assert done.returncode == 0, done.stderr
    plugin = bin_dir / "vpccni-cni"
    assert plugin.read_bytes() == static_binary.read_bytes()
    assert plugin.stat().st_mode & 0o777 == 0o755
    assert done.stdout.splitlines()[0] == (
        f"installed {plugin}: static plugin (no interpreter needed)"
    )
    outcome = exec_plugin(plugin, {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.json()["supportedVersions"] == list(ALL_VERSIONS)
    # forcing the Python plugin replaces it, and says why
    done = install(
        *("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait"), "--plugin", "python"
    )
    assert done.returncode == 0, done.stderr
    assert plugin.read_bytes().startswith(b"#!")
    assert ": Python plugin with " in done.stdout.splitlines()[0]
    assert (bin_dir / "vpccni-cni.d" / "cni.py").read_bytes() == SOURCE
    # and the static plugin again takes the Python plugin's directory away with it
    done = install(
        *("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait"),
        *("--plugin-binary", static_binary),
    )
    assert done.returncode == 0, done.stderr
    assert [path.name for path in bin_dir.iterdir()] == ["vpccni-cni"]


def test_auto_takes_the_default_static_plugin_when_it_exists(
    static_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin_install, "STATIC_PLUGIN", static_binary)
    assert plugin_install.choose_plugin("auto").kind == "static"
    assert plugin_install.choose_plugin("auto", interpreter=sys.executable).kind == "python"
    monkeypatch.setattr(plugin_install, "STATIC_PLUGIN", tmp_path / "absent")
    choice = plugin_install.choose_plugin("auto")
    assert choice.kind == "python"
    assert choice.why.endswith(f"(no static plugin at {tmp_path / 'absent'})")
    with pytest.raises(InvalidInput, match=r"static plugin .* does not exist"):
        plugin_install.choose_plugin("static")


def test_an_interpreter_below_the_floor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_install, "python_version", lambda interpreter: (3, 7, 3))
    with pytest.raises(InvalidInput, match=r"is Python 3\.7\.3; the Python plugin needs 3\.8"):
        plugin_install.choose_plugin("python", interpreter=sys.executable)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--plugin-binary", "not-elf"), "is not an ELF executable"),
        (("--plugin-binary", "missing"), "--plugin-binary"),
        (("--plugin", "static", "--plugin-binary", "missing"), "does not exist"),
        (("--plugin", "python", "--plugin-binary", "not-elf"), "is for the static plugin"),
        (("--plugin", "static", "--interpreter", sys.executable), "is for the Python plugin"),
        (("--plugin-binary", "not-elf", "--interpreter", sys.executable), "give one of them"),
        (("--plugin", "go"), "invalid choice: 'go'"),
    ],
)
def test_bad_plugin_choices_are_one_line_errors(
    dirs: tuple[Path, Path], short_dir: Path, flags: tuple[str, ...], message: str
) -> None:
    bin_dir, conf_dir = dirs
    (short_dir / "not-elf").write_text("#!/bin/sh\n")
    local = {"not-elf": str(short_dir / "not-elf"), "missing": str(short_dir / "missing")}
    given = [local.get(flag, flag) for flag in flags]
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait", *given)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
    assert list(bin_dir.iterdir()) == list(conf_dir.iterdir()) == []
