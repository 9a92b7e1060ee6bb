"""Fixtures for the plugin's tests: the plugin as install-cni installs it, and a daemon.

``daemon_socket`` is the fake daemon's socket, or - to run the same contract tests against the
real daemon - the socket named by ``VPCCNI_TEST_DAEMON_SOCKET`` (with ``VPCCNI_TEST_NETNS`` naming
a network namespace path the daemon accepts).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import Runtime
from vpccni.cli import install_cni_cmd


@pytest.fixture(scope="session")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vpccni-cni`` written by install-cni: the verbatim source behind a fast interpreter."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    return install_cni_cmd.install_plugin(bin_dir, install_cni_cmd.choose_interpreter(None))


@pytest.fixture(scope="session")
def loaded_plugin(plugin: Path) -> ModuleType:
    """The installed file loaded as a module, to call ``main`` in-process for bulk fuzzing."""
    loader = importlib.machinery.SourceFileLoader("vpccni_cni_installed", str(plugin))
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


@pytest.fixture
def netns(short_dir: Path) -> str:
    """A network namespace path the daemon accepts (the fake only checks that it exists)."""
    real = os.environ.get("VPCCNI_TEST_NETNS")
    if real:
        return real
    path = short_dir / "netns-pod1"
    path.touch()
    return str(path)


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
