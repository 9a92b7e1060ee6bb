"""Fixtures for the plugin's tests: the plugin as install-cni installs it, and a daemon.

``plugin`` is parametrized over both plugins, so every test that runs it as a process runs
against each: ``python`` (src/vpccni/plugin/cni.py behind its shebang, the reference) and
``static`` (plugin-static/, built once per session by scripts/build-plugin.sh). A test marked
``python_plugin_only`` gets only the Python one (say why where it is marked).

``daemon_socket`` is the fake daemon's socket, or - to run the same contract tests against the
real daemon - the socket named by ``VPCCNI_TEST_DAEMON_SOCKET`` (with ``VPCCNI_TEST_NETNS`` naming
a network namespace path the daemon accepts).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import Runtime
from vpccni.cli import install_cni_cmd

ROOT = Path(__file__).resolve().parents[2]
BUILD_PLUGIN = ROOT / "scripts" / "build-plugin.sh"
PLUGIN_KINDS = ("python", "static")
_netns_counter = itertools.count()


def _require(condition: bool, reason: str) -> None:
    """Skip without ``condition``; under CI a missing dependency fails loudly instead."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the plugin tests, but {reason}")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "python_plugin_only: runs against the Python plugin only (the reason is noted)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``plugin`` (directly or through ``runtime``) runs per plugin kind."""
    if "plugin" in metafunc.fixturenames:
        only_python = metafunc.definition.get_closest_marker("python_plugin_only") is not None
        kinds = ("python",) if only_python else PLUGIN_KINDS
        metafunc.parametrize("plugin", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def python_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vpccni-cni`` written by install-cni: the verbatim source behind a fast interpreter."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    return install_cni_cmd.install_plugin(bin_dir, install_cni_cmd.choose_interpreter(None))


@pytest.fixture(scope="session")
def static_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static Go plugin, built once by scripts/build-plugin.sh (needs Debian's golang-go)."""
    _require(shutil.which("go") is not None, "go is missing (apt-get install -y golang-go)")
    path = tmp_path_factory.mktemp("cni-static") / "vpccni-cni"
    done = subprocess.run(
        ["bash", str(BUILD_PLUGIN), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"scripts/build-plugin.sh failed:\n{done.stderr}"
    return path


@pytest.fixture(scope="session")
def plugin(request: pytest.FixtureRequest) -> Path:
    """The installed plugin of the kind this test instance runs against."""
    name = "python_plugin" if request.param == "python" else "static_plugin"
    path: Path = request.getfixturevalue(name)
    return path


@pytest.fixture(scope="session")
def loaded_plugin(python_plugin: Path) -> ModuleType:
    """The installed file loaded as a module, to call ``main`` in-process for bulk fuzzing."""
    loader = importlib.machinery.SourceFileLoader("vpccni_cni_installed", str(python_plugin))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path (AF_UNIX socket paths must fit in 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vpccni-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_daemon(short_dir: Path) -> Iterator[FakeDaemon]:
    """A running fake daemon (tests that inspect it skip when a real daemon is under test)."""
    if os.environ.get("VPCCNI_TEST_DAEMON_SOCKET"):
        pytest.skip("inspects the fake daemon; a real daemon is under test")
    daemon = FakeDaemon(short_dir / "ipamd.sock").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def daemon_socket(request: pytest.FixtureRequest) -> Path:
    """The socket of the daemon under test: the real one if named, else the fake."""
    real = os.environ.get("VPCCNI_TEST_DAEMON_SOCKET")
    if real:
        return Path(real)
    daemon: FakeDaemon = request.getfixturevalue("fake_daemon")
    return daemon.socket_path


@pytest.fixture(scope="session")
def netns() -> Iterator[str]:
    """A network namespace path the daemon accepts: ADD and CHECK enter it and pass it to the
    daemon (docs/plugin-api.md), so it is a real one (``ip netns add vt-...``; needs root)."""
    real = os.environ.get("VPCCNI_TEST_NETNS")
    if real:
        yield real
        return
    _require(os.geteuid() == 0, "ADD and CHECK enter the pod's network namespace: they need root")
    _require(shutil.which("ip") is not None, "the 'ip' command (iproute2) is missing")
    name = f"vt-plugin-{os.getpid()}-{next(_netns_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def spool(short_dir: Path) -> Path:
    """The DEL spool directory (created by the plugin when needed)."""
    return short_dir / "del-spool"


@pytest.fixture
def runtime(plugin: Path, daemon_socket: Path, spool: Path, netns: str) -> Runtime:
    """A container runtime calling the installed plugin against the daemon under test."""
    return Runtime(plugin, daemon_socket, spool, netns)


@pytest.fixture
def runtime_daemon_down(plugin: Path, short_dir: Path, spool: Path, netns: str) -> Runtime:
    """The same runtime, with no daemon behind the socket path."""
    return Runtime(plugin, short_dir / "no-daemon.sock", spool, netns)
