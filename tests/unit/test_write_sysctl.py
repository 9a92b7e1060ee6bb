"""``write_sysctl``'s one fallback: a read-only /proc/sys (EROFS, or EACCES) sends a ``net/`` key
through the host's /proc/sys/net mounted at ``HOST_PROC_SYS_NET``, when that mount exists.

The paths are redirected into a temporary directory and the read-only answer is played by a
stand-in ``open`` (a real read-only /proc/sys is the DaemonSet's, shown end to end in
tests/e2e/test_daemonset.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vpccni.adapters import netlink_kit
from vpccni.adapters.netlink_kit import write_sysctl

KEY = "net/ipv6/conf/eni0123456789a/accept_ra"


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(own /proc/sys, host /proc/sys/net mount), each with the key's file, holding "1"."""
    own, host = tmp_path / "proc-sys", tmp_path / "host-proc-sys-net"
    for file in (own / KEY, host / KEY.removeprefix("net/")):
        file.parent.mkdir(parents=True)
        file.write_text("1\n")
    monkeypatch.setattr(netlink_kit, "PROC_SYS", str(own))
    monkeypatch.setattr(netlink_kit, "HOST_PROC_SYS_NET", str(host))
    return own, host


def refusing(under: Path, code: int) -> Callable[..., Any]:
    """``open`` that answers ``code`` for writes under ``under``, as a read-only mount does."""

    def fake_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and path.startswith(str(under)):
            raise OSError(code, os.strerror(code), path)
        return open(path, mode, *args, **kwargs)

    return fake_open


def test_writable_proc_sys_is_written_and_the_mount_left_alone(paths: tuple[Path, Path]) -> None:
    own, host = paths
    assert write_sysctl(KEY, "0") is True
    assert (own / KEY).read_text() == "0\n"
    assert (host / KEY.removeprefix("net/")).read_text() == "1\n"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_proc_sys_writes_through_the_host_mount(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    own, host = paths
    monkeypatch.setattr(netlink_kit, "open", refusing(own, code), raising=False)
    assert write_sysctl(KEY, "0") is True
    assert (host / KEY.removeprefix("net/")).read_text() == "0\n"
    assert (own / KEY).read_text() == "1\n"


def test_read_only_and_no_mount_raises_for_the_callers_one_warning(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, host = paths
    monkeypatch.setattr(netlink_kit, "HOST_PROC_SYS_NET", str(host.parent / "absent"))
    monkeypatch.setattr(netlink_kit, "open", refusing(own, errno.EROFS), raising=False)
    with pytest.raises(OSError, match="Read-only") as raised:
        write_sysctl(KEY, "0")
    assert raised.value.errno == errno.EROFS


def test_other_failures_and_other_keys_do_not_fall_back(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, host = paths
    monkeypatch.setattr(netlink_kit, "open", refusing(own, errno.EINVAL), raising=False)
    with pytest.raises(OSError, match="Invalid argument") as raised:
        write_sysctl(KEY, "0")
    assert raised.value.errno == errno.EINVAL
    assert (host / KEY.removeprefix("net/")).read_text() == "1\n"
    (own / "kernel").mkdir()
    (own / "kernel" / "x").write_text("1\n")
    monkeypatch.setattr(netlink_kit, "open", refusing(own, errno.EROFS), raising=False)
    with pytest.raises(OSError, match="Read-only"):
        write_sysctl("kernel/x", "0")  # only net/ is mounted


def test_a_key_missing_on_either_path_is_false(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, _ = paths
    assert write_sysctl("net/ipv6/conf/gone/accept_ra", "0") is False  # IPv6 off: nothing to set
    monkeypatch.setattr(netlink_kit, "open", refusing(own, errno.EROFS), raising=False)
    assert write_sysctl("net/ipv6/conf/gone/accept_ra", "0") is False
