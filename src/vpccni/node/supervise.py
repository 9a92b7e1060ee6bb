"""``vpccni node-run``: the main container's process, in upstream's entrypoint order.

The caller has already validated every setting (a bad one exits 1 before anything here runs).
Then: install the plugin into ``HOST_CNI_BIN_PATH``; start ``vpccni ipamd`` as a child; wait
until it answers ``status`` ready over its socket; only then write the conflist into
``HOST_CNI_CONFDIR_PATH`` (its appearance tells the kubelet the node's network is ready) and move
upstream's ``10-aws.conflist``, which would sort first, aside (``plugin_install``); stay
in the foreground until ipamd exits. SIGTERM and SIGINT are forwarded to ipamd, and node-run
then exits with ipamd's status; an ipamd that exits by itself makes node-run exit non-zero (its
status, or 1 if it was 0), so the kubelet restarts the container.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from vpccni.errors import VpccniError
from vpccni.node import plugin_install
from vpccni.node.env import NodeSettings

FORWARDED = (signal.SIGTERM, signal.SIGINT)


class ExitStatus(VpccniError):
    """node-run ends with ``exit_code`` (ipamd's status, or 1 when it stopped by itself)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunPlan:
    """What node-run does: the ipamd command line and environment, and where things go."""

    ipamd: Sequence[str]
    socket: Path
    spool_dir: Path
    node: NodeSettings
    choice: plugin_install.PluginChoice
    env: Mapping[str, str] | None = None


@dataclass
class _Child:
    process: subprocess.Popen[bytes] | None = None
    signalled: int | None = None
    handlers: dict[int, object] = field(default_factory=dict)

    def forward(self, number: int, frame: FrameType | None) -> None:
        self.signalled = number
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(number)


def status_of(returncode: int) -> int:
    """A process exit status as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def node_run(plan: RunPlan, say: Callable[[str], None]) -> str:
    """Run the node until ipamd exits; returns the last line, or raises :class:`ExitStatus`."""
    bin_dir = plugin_install.existing_directory(plan.node.bin_dir, "HOST_CNI_BIN_PATH")
    conf_dir = plugin_install.existing_directory(plan.node.conf_dir, "HOST_CNI_CONFDIR_PATH")
    child = _Child()
    for forwarded in FORWARDED:
        child.handlers[forwarded] = signal.signal(forwarded, child.forward)
    try:
        path = plugin_install.install(plan.choice, bin_dir)
        say(plugin_install.describe_plugin(path, plan.choice))
        if child.signalled is not None:
            return f"signal {child.signalled} before ipamd started; nothing to stop"
        child.process = subprocess.Popen(list(plan.ipamd), env=plan.env)
        if child.signalled is not None:  # arrived while ipamd was being started
            child.process.send_signal(child.signalled)
        say(f"started ipamd (pid {child.process.pid}); waiting for it to answer on {plan.socket}")
        if _wait_ready(plan, child):
            conflist = plugin_install.render_conflist(
                plan.node.network_name,
                str(plan.socket),
                str(plan.spool_dir),
                plan.node.pod_mtu,
                bandwidth=plan.node.bandwidth,
                log_file=plan.node.plugin_log_file,
                log_level=plan.node.plugin_log_level,
            )
            written = plugin_install.install_conflist(conf_dir, conflist)
            say(plugin_install.describe_conflist(written, conflist, str(plan.socket)))
            try:
                for line in plugin_install.retire_upstream_conflists(conf_dir):
                    say(line)
            except VpccniError as error:  # ours is in place and ipamd serves: say it, go on
                say(f"error: {error}")
        code = child.process.wait()
    finally:
        if child.process is not None and child.process.poll() is None:
            child.process.kill()  # only on an error of our own: never leave ipamd behind
            child.process.wait()
        for signum, handler in child.handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
    status = status_of(code)
    if child.signalled is not None:
        if status != 0:
            raise ExitStatus(
                f"ipamd exited with status {status} after signal {child.signalled}", status
            )
        return f"ipamd stopped after signal {child.signalled} (exit 0)"
    raise ExitStatus(
        f"ipamd exited by itself with status {status}; exiting so the kubelet restarts the "
        "container",
        status or 1,
    )


def _wait_ready(plan: RunPlan, child: _Child) -> bool:
    """True once ipamd answers ready; False when a signal or ipamd's exit ends the wait."""
    process = child.process
    assert process is not None

    def keep_waiting() -> str | None:
        if child.signalled is not None:
            return f"signal {child.signalled}"
        if process.poll() is not None:
            return f"ipamd exited with status {status_of(process.returncode)}"
        return None

    try:
        plugin_install.wait_for_daemon(str(plan.socket), plan.node.network_name, None, keep_waiting)
    except VpccniError:
        return False
    return child.signalled is None
