"""A fake ``vpccni ipamd`` for the plugin's tests: docs/plugin-api.md version 1 over a Unix socket.

Stdlib only, in a thread, with the pod map in memory: ``add`` hands out addresses from a small
pool (the same one again for a pod that already holds one) in the daemon's result shapes
(``vpccni.daemon.rpc.result_interfaces``: upstream's dummy entry, or with ``"resultStyle":
"plain"`` the pod's MAC and no dummy; the pod on device 0), ``del`` is idempotent, ``check``
compares with ``prevResult``, ``gc`` releases what ``cni.dev/valid-attachments`` does not list,
``status`` says ready. It records every request it decodes, so a test can assert that the plugin
refused an input without asking, and it can be told to misbehave: reply with an error, close
without replying, or never reply. The benchmark uses it too.

As the real daemon, it reads each request with ``recvmsg`` and takes the file descriptors that
come with it (``SCM_RIGHTS``): for every decoded request ``passed`` records what they were
(``/proc/self/fd`` names, e.g. ``/run/netns/pod1`` and ``socket:[81]``, whether each is a
network namespace, and each netlink socket's family, protocol, type and namespace), and ADD and
CHECK are refused with 4, like the daemon refuses them, unless they pass exactly the pod's
namespace and a ``NETLINK_ROUTE`` datagram socket living in it. Every descriptor is closed once
the request is answered.
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import json
import os
import socket
import socketserver
import threading
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

MAX_REQUEST = 1 << 20
MAX_FDS = 8
GATEWAY = "169.254.1.1"
HOST_MAC, POD_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
SIOCGSKNS = 0x894C
NS_GET_NSTYPE = 0xB703
CLONE_NEWNET = 0x40000000
PodKey = tuple[str, str, str]


class FakeDaemon:
    """The daemon's side of the plugin API, in memory."""

    def __init__(self, socket_path: Path, pool: str = "10.0.1.0/24") -> None:
        self.socket_path = socket_path
        self.free = [str(address) for address in IPv4Network(pool).hosts()]
        self.pods: dict[PodKey, str] = {}
        self.requests: list[Any] = []
        self.passed: list[list[dict[str, Any]]] = []  # per decoded request: its descriptors
        self.ready = True
        self.behaviour = "serve"  # or "close" (no reply) or "hang" (never replies)
        self.error: dict[str, Any] | None = None  # the next reply's error, when set
        self.lock = threading.Lock()
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._release = threading.Event()

    # --- lifecycle ---

    def start(self) -> FakeDaemon:
        """Listen on the socket (mode 0600) and serve in a daemon thread."""
        daemon = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                daemon.serve_connection(self)

        server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        server.daemon_threads = True
        os.chmod(self.socket_path, 0o600)
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.socket_path.unlink(missing_ok=True)

    def state(self) -> dict[PodKey, str]:
        """A copy of the pod map."""
        with self.lock:
            return dict(self.pods)

    # --- one connection ---

    def serve_connection(self, handler: socketserver.StreamRequestHandler) -> None:
        handler.connection.settimeout(10)
        fds: list[int] = []
        try:
            line = receive_line(handler.connection, fds)
            if self.behaviour == "close":
                return
            if self.behaviour == "hang":
                self._release.wait(30)
                return
            if len(line) > MAX_REQUEST:
                reply = error(101, "request larger than 1 MiB")
            else:
                try:
                    request = json.loads(line)
                except ValueError as problem:
                    reply = error(101, f"request is not JSON: {problem}")
                else:
                    with self.lock:
                        self.requests.append(request)
                        self.passed.append([describe(fd) for fd in fds])
                        reply = self.reply(request)
            handler.connection.sendall(json.dumps(reply).encode() + b"\n")
        finally:
            for fd in fds:
                os.close(fd)

    def reply(self, request: Any) -> dict[str, Any]:
        """The reply to one decoded request (called with the lock held)."""
        if self.error is not None:
            injected, self.error = self.error, None
            return {"version": 1, "ok": False, "error": injected}
        if not isinstance(request, dict) or request.get("version") != 1:
            return error(100, "unsupported plugin API version", "this daemon speaks version 1")
        op, cni, config = request.get("op"), request.get("cni"), request.get("config")
        if not isinstance(cni, dict) or not isinstance(config, dict):
            return error(101, "request needs the objects cni and config")
        handler = {
            "status": self.status,
            "add": self.add,
            "del": self.delete,
            "check": self.check,
            "gc": self.collect,
        }.get(str(op))
        if handler is None:
            return error(101, f"unknown op {op!r}")
        key = (config.get("name", ""), cni.get("container_id", ""), cni.get("ifname", ""))
        if op in ("add", "check"):
            refused = refuse_passed(request.get("fds"), self.passed[-1])
            if refused:
                return error(4, refused)
        return handler(key, cni, config)

    def status(self, key: PodKey, cni: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        if not self.ready:
            return error(50, "ipamd is not ready yet")
        return ok({"ready": True, "available": len(self.free)})

    def delete(self, key: PodKey, cni: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        address = self.pods.pop(key, None)
        if address is not None:
            self.free.append(address)
        return ok({})

    def add(self, key: PodKey, cni: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        address = self.pods.get(key)
        if address is None:
            if not self.free:
                return error(11, "no IP address available yet", "the warm pool is empty")
            address = self.pods[key] = self.free.pop(0)
        host = {"name": "eni" + key[1][:11], "mac": HOST_MAC}
        if config.get("resultStyle") == "plain":
            interfaces = [host, {"name": key[2], "mac": POD_MAC, "sandbox": cni["netns"]}]
        else:
            pod = {"name": key[2], "sandbox": cni["netns"]}
            interfaces = [host, pod, upstream_dummy(cni.get("args", ""))]
        return ok(
            {
                "interfaces": interfaces,
                "ips": [{"address": f"{address}/32", "gateway": GATEWAY, "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
                "dns": {},
            }
        )

    def check(self, key: PodKey, cni: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        previous = config.get("prevResult")
        held = self.pods.get(key)
        if held is None:
            return error(102, f"{key} holds no address")
        ips = previous.get("ips", []) if isinstance(previous, dict) else []
        expected = {str(ip.get("address", "")).split("/")[0] for ip in ips}
        if held not in expected:
            return error(102, f"{key} holds {held}, prevResult says {sorted(expected)}")
        return ok({})

    def collect(self, key: PodKey, cni: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        valid = config.get("cni.dev/valid-attachments", [])
        keep = {(item.get("containerID"), item.get("ifname")) for item in valid}
        released = []
        for pod, address in list(self.pods.items()):
            if pod[0] == key[0] and (pod[1], pod[2]) not in keep:
                del self.pods[pod]
                self.free.append(address)
                released.append({"container_id": pod[1], "ifname": pod[2], "address": address})
        return ok({"released": released})


def upstream_dummy(args: str) -> dict[str, str]:
    """The daemon's bookkeeping entry for upstream's DEL (vpccni.daemon.rpc.upstream_dummy): the
    pod on the primary ENI (device 0), named from K8S_POD_NAMESPACE and K8S_POD_NAME."""
    values = dict(pair.partition("=")[::2] for pair in args.split(";"))
    seed = f"{values.get('K8S_POD_NAMESPACE', '')}.{values.get('K8S_POD_NAME', '')}"
    name = "dummy" + hashlib.sha1(seed.encode()).hexdigest()[:11]
    return {"name": name, "mac": "0", "sandbox": "0"}


def receive_line(connection: socket.socket, fds: list[int]) -> bytes:
    """One request line (or what came before EOF), collecting the descriptors sent with it."""
    data = b""
    room = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
    while b"\n" not in data and len(data) <= MAX_REQUEST:
        chunk, ancillary, _, _ = connection.recvmsg(65536, room, socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\n")[0] + (b"\n" if b"\n" in data else b"")


def describe(fd: int) -> dict[str, Any]:
    """What a passed descriptor is: its /proc name, whether it is a network namespace (and its
    inode), and for a socket its family, protocol, type and (netlink) its namespace's inode."""
    found: dict[str, Any] = {"name": os.readlink(f"/proc/self/fd/{fd}")}
    try:
        found["netns"] = fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        found["netns"] = False  # not a namespace (ENOTTY)
    if found["netns"]:
        found["netns_inode"] = os.fstat(fd).st_ino
    elif found["name"].startswith("socket:["):
        probe = socket.socket(fileno=fd)
        try:
            found["family"] = probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
            found["protocol"] = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
            found["type"] = probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
            if found["family"] == socket.AF_NETLINK:
                namespace = fcntl.ioctl(fd, SIOCGSKNS)
                found["netns_inode"] = os.fstat(namespace).st_ino
                os.close(namespace)
        finally:
            probe.detach()
    return found


def refuse_passed(declared: Any, passed: list[dict[str, Any]]) -> str:
    """Why ADD/CHECK's descriptors are not the pod's namespace and a netlink socket in it."""
    if declared != ["netns", "netlink"] or len(passed) != 2:
        return f"expected fds [netns, netlink], got {declared!r} with {len(passed)} descriptors"
    netns, netlink = passed
    if not netns["netns"]:
        return f"the first descriptor is {netns['name']}, not a network namespace"
    if (netlink.get("family"), netlink.get("protocol"), netlink.get("type")) != (
        socket.AF_NETLINK,
        socket.NETLINK_ROUTE,
        socket.SOCK_DGRAM,
    ):
        return f"the second descriptor is {netlink}, not a NETLINK_ROUTE datagram socket"
    if netlink["netns_inode"] != netns["netns_inode"]:
        return "the netlink socket lives in another network namespace"
    return ""


def ok(result: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "ok": True, "result": result}


def error(code: int, msg: str, details: str = "") -> dict[str, Any]:
    return {"version": 1, "ok": False, "error": {"code": code, "msg": msg, "details": details}}
