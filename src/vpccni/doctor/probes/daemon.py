"""The running daemon, read from outside: its process, settings, socket and HTTP endpoints.

The daemon holds an ``flock`` on ``<socket>.lock`` (and ``<checkpoint dir>/ipamd.lock``) for
its lifetime; ``/proc/locks`` names the holder's PID (in this process's PID namespace), so the
daemon is found without taking the lock (which could make a daemon starting at that moment
refuse to run). Its command line and environment then give its real settings through the
daemon's own parser, and ``/proc/PID/ns/net`` the namespace its TCP listeners, IMDS and EC2
calls live in. Secrets in its environment are only ever handed to the cloud probe that runs
with them; nothing here prints a value.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import socket
from pathlib import Path
from typing import Any

from vpccni.core.config import ConfigError
from vpccni.doctor.evidence import DaemonProcess, HttpAnswer, Metrics, Missing
from vpccni.doctor.probes.netns import in_netns, same_netns
from vpccni.errors import VpccniError
from vpccni.plugin import cni
from vpccni.settings import DaemonFlags, Settings, parse_settings

LOCK_SUFFIX = ".lock"
CHECKPOINT_LOCK = "ipamd.lock"
HTTP_TIMEOUT_SECONDS = 5.0
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def lock_holder(lock: Path, locks: Path = Path("/proc/locks")) -> int | None:
    """The PID holding an ``flock`` on ``lock`` (None: nobody, or no such file)."""
    try:
        found = lock.stat()
        table = locks.read_text()
    except OSError:
        return None
    device = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        if fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None


def find_daemon(socket_path: Path, checkpoint_dir: Path) -> DaemonProcess | Missing:
    """The process holding the socket's or the checkpoint's lock, with what /proc says."""
    candidates = (
        socket_path.with_name(socket_path.name + LOCK_SUFFIX),
        checkpoint_dir / CHECKPOINT_LOCK,
    )
    pid = next((p for p in map(lock_holder, candidates) if p is not None), None)
    if pid is None:
        return Missing(
            f"no process holds {candidates[0]} or {candidates[1]}: the daemon is not running "
            "(or uses another --socket / --checkpoint-dir)"
        )
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = tuple(part for part in (proc / "cmdline").read_bytes().decode().split("\0"))
        raw = (proc / "environ").read_bytes().decode(errors="replace")
        netns = f"/proc/{pid}/ns/net"
        os.stat(netns)
    except OSError as error:
        return Missing(
            f"the daemon (pid {pid}) holds the lock but /proc/{pid} cannot be read: "
            f"{error.strerror or error} (run as root, in the host's PID namespace or the "
            "daemon's container)"
        )
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return DaemonProcess(pid, tuple(p for p in cmdline if p), environ, netns, same_netns(netns))


def daemon_flags(cmdline: tuple[str, ...]) -> DaemonFlags:
    """``vpccni ipamd``'s flags as the daemon got them, from its command line."""
    if "ipamd" not in cmdline:
        return DaemonFlags()
    words = list(cmdline[cmdline.index("ipamd") + 1 :])
    fields = {field.name: field for field in dataclasses.fields(DaemonFlags)}
    given: dict[str, Any] = {}
    while words:
        word = words.pop(0)
        if not word.startswith("--"):
            continue
        name, has_value, value = word[2:].partition("=")
        key = name.replace("-", "_")
        key = key if key in fields else key + "s"
        if key not in fields:
            continue
        if fields[key].type in ("bool", bool):
            given[key] = True
            continue
        if not has_value:
            value = words.pop(0) if words else ""
        if str(fields[key].type).startswith("tuple"):
            given[key] = (*given.get(key, ()), value)
        else:
            given[key] = value
    return DaemonFlags(**given)


def daemon_settings(process: DaemonProcess) -> Settings | Missing:
    """The daemon's settings, parsed from its environment and flags by the daemon's parser."""
    try:
        return parse_settings(process.environ, daemon_flags(process.cmdline))
    except (ConfigError, VpccniError, TypeError) as error:
        return Missing(f"the daemon's settings cannot be read back: {error}")


class _Connection(http.client.HTTPConnection):
    """HTTP over a socket made inside a network namespace (TCP) or to a Unix socket path."""

    def __init__(self, address: str, netns: str | None) -> None:
        super().__init__("localhost", timeout=HTTP_TIMEOUT_SECONDS)
        self.address = address
        self.netns = netns

    def connect(self) -> None:
        if self.address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self.address[len("unix:") :])
            return
        host, _, port = self.address.rpartition(":")
        if host in ("", "0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        made = in_netns(self.netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        made.settimeout(self.timeout)
        self.sock = made
        made.connect((host, int(port)))


def http_get(address: str, path: str, netns: str | None = None) -> HttpAnswer | Missing:
    """GET ``path`` from the daemon's listener at ``address`` (``host:port`` or ``unix:PATH``),
    from namespace ``netns`` for TCP."""
    connection = _Connection(address, netns)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return HttpAnswer(response.status, response.read())
    except (OSError, http.client.HTTPException, ValueError, VpccniError) as error:
        return Missing(f"GET {path} at {address}: {error}")
    finally:
        connection.close()


def rpc_status(socket_path: Path, network: str = "aws-cni") -> dict[str, Any] | Missing:
    """The daemon's answer to the plugin's ``status`` request, as the plugin sends it."""
    call = cni.Call("STATUS", cni.SPEC_VERSION, {"cniVersion": cni.SPEC_VERSION, "name": network})
    call.cni = {"container_id": "", "netns": "", "ifname": "", "args": "", "path": ""}
    try:
        line = cni.exchange(str(socket_path), cni.request_bytes(call), cni.TIMEOUTS["STATUS"])
        reply = cni.parse_reply(line)
    except cni.DaemonUnreachable as error:
        return Missing(f"unreachable: {error}")
    except cni.CniError as error:
        return Missing(f"{error.msg} (CNI error {error.code})")
    return reply


def parse_metrics(text: str) -> Metrics:
    """The samples the checks read from Prometheus text."""
    version = ""
    calls: dict[str, float] = {}
    unauthorized: dict[str, float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or line.startswith("#"):
            continue
        name, labels, value = found.group(1), dict(_LABEL.findall(found.group(2) or "")), found[3]
        try:
            number = float(value)
        except ValueError:
            continue
        if name == "awscni_build_info":
            version = labels.get("version", "")
        elif name == "awscni_ec2api_req_count":
            calls[labels.get("fn", "")] = number
        elif name == "vpccni_ec2_unauthorized_total":
            unauthorized[labels.get("action", "")] = number
    return Metrics(version, calls, unauthorized)
