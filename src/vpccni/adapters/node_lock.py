"""One daemon per node: ``flock``ed lock files beside the checkpoint and the plugin socket.

Owns :func:`lock_node` and :class:`AlreadyRunning`. ``vpccni ipamd`` takes an exclusive,
non-blocking ``flock`` on ``<checkpoint dir>/ipamd.lock`` and on ``<socket>.lock`` before it
reads the checkpoint or touches the socket, writes its PID into each, and holds them until the
process ends (the kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a crash
never leaves a stale lock). A second daemon with the same checkpoint directory or the same socket
finds a lock taken and exits with an error naming the running daemon's PID, having changed
nothing: it never unlinks the first one's socket nor opens its checkpoint. Lock files are never
deleted (deleting one would let two daemons lock two different files of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from vpccni.errors import VpccniError

LOCK_NAME = "ipamd.lock"


class AlreadyRunning(VpccniError):
    """Another daemon holds this node's checkpoint directory or plugin socket."""


@dataclass
class NodeLock:
    """The lock files this daemon holds, open for its lifetime."""

    paths: tuple[Path, ...]
    _fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        """Unlock (the files stay); the process exiting does the same."""
        while self._fds:
            os.close(self._fds.pop())


def lock_node(checkpoint_dir: Path, socket_path: Path) -> NodeLock:
    """Lock the checkpoint directory and the socket for this process, or raise AlreadyRunning."""
    wanted = (
        ("checkpoint directory", checkpoint_dir, checkpoint_dir / LOCK_NAME),
        ("plugin socket", socket_path, socket_path.with_name(socket_path.name + ".lock")),
    )
    lock = NodeLock(tuple(path for _, _, path in wanted))
    try:
        for what, target, path in wanted:
            lock._fds.append(_take(what, target, path))
    except BaseException:
        lock.release()
        raise
    return lock


def _take(what: str, target: Path, path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise AlreadyRunning(
            f"cannot open the lock file {path} for the {what} {target} ({error.strerror}); "
            "nothing was started; check the directory's permissions (ipamd runs as root)"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise AlreadyRunning(
            f"another vpccni ipamd (PID {holder}) is running with the {what} {target} (it holds "
            f"{path}); this one exits without touching its socket or checkpoint - stop that "
            f"daemon first (kill {holder}), or give this one its own --socket and "
            "--checkpoint-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return "unknown"
