"""The plugin API server: version-1 JSON over a Unix socket (``docs/plugin-api.md``).

``handle_request`` turns one decoded request into one reply (pure apart from the service it
calls and the checks of what came with it); :class:`PluginApi` decodes the request line
strictly (bounded integers and nesting, no NaN) and always answers; ``RpcServer`` serves it on
a ``0600`` Unix socket through a bounded :class:`~vpccni.daemon.listeners.Listener`: at most
``MAX_CONNECTIONS`` open connections (beyond: 11 "busy"), ``WORKERS`` threads, a whole-request
deadline of ``REQUEST_SECONDS`` and 1 MiB per request - each refusal is a structured error.
Container ids, interface and network names are checked with the CNI plugin's own rules. A
daemon that wires pods reaches a pod's namespace only through the descriptors the plugin passes
with ADD and CHECK (:mod:`vpccni.daemon.pod_fds`), never by its path; without a datapath the
descriptors are ignored (the listener closes them) and ``CNI_NETNS`` only has to exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from vpccni.core.datastore import NoAvailableAddress
from vpccni.core.model import PodKey, PodMeta
from vpccni.core.no_address import NoAddress
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.listeners import Limits, Listener, Passed, unix_listener
from vpccni.daemon.pod_fds import MAX_FDS, PodFdsRefused, pod_namespace
from vpccni.daemon.service import IpamService
from vpccni.errors import VpccniError
from vpccni.plugin.cni import (
    MAX_NETWORK_NAME,
    RESULT_STYLE_HELP,
    is_cni_name,
    pod_mtu,
    result_style,
    why_invalid_variable,
)
from vpccni.ports import PodNamespace, WiredInterfaces

log = logging.getLogger("vpccni.ipamd")

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 1024 * 1024
REQUEST_SECONDS = 10.0  # the whole request, however it trickles in
MAX_CONNECTIONS = 128
WORKERS = 8
MAX_INTEGER_DIGITS = 20  # a 64-bit integer; no field of the protocol needs more
MAX_POD_NAME = 253  # a Kubernetes object name (namespaces: 63)
GATEWAY = "169.254.1.1"
OPS = ("add", "del", "check", "gc", "status")

CODE_INVALID_ENV = 4
CODE_INVALID_CONFIG = 7
CODE_TRY_AGAIN = 11
CODE_NOT_READY = 50
CODE_BAD_VERSION = 100
CODE_MALFORMED = 101
CODE_CHECK_FAILED = 102
CODE_INTERNAL = 103
CODE_NO_ADDRESS_NEEDS_CHANGE = 110
"""ADD: no address, and none comes without a change (node full, MAX_ENI, max pods, IAM)."""


NOTHING_PASSED = Passed()


class RpcError(Exception):
    """An error reply: a CNI error code, a message and details."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


@dataclass
class RpcHooks:
    """Observers of the pod path (metrics), and whether the daemon is ready."""

    ready: Callable[[], bool] = lambda: True
    on_add: Callable[[float, bool], None] = lambda seconds, ok: None
    on_del: Callable[[], None] = lambda: None
    on_no_address: Callable[[str], None] = lambda reason: None
    why_no_address: Callable[[], NoAddress | None] = lambda: None
    waiting: set[PodKey] = field(default_factory=set)
    datapath: Datapath | None = None


def error_reply(error: RpcError) -> dict[str, Any]:
    body = {"code": error.code, "msg": error.msg}
    if error.details:
        body["details"] = error.details
    return {"version": PROTOCOL_VERSION, "ok": False, "error": body}


def handle_request(
    request: Any, service: IpamService, hooks: RpcHooks, passed: Passed = NOTHING_PASSED
) -> dict[str, Any]:
    """One reply for one decoded request; never raises. ``passed``: the descriptors that came
    with it (the caller closes them)."""
    try:
        if not isinstance(request, dict):
            raise RpcError(CODE_MALFORMED, "request is not a JSON object")
        version = request.get("version")
        if type(version) is not int or version != PROTOCOL_VERSION:
            raise RpcError(
                CODE_BAD_VERSION,
                f"unsupported plugin API version {version!r}",
                f"this daemon speaks version {PROTOCOL_VERSION} (the JSON integer); install the "
                "matching vpccni-cni",
            )
        op = request.get("op")
        if op not in OPS:
            raise RpcError(CODE_MALFORMED, f"unknown op {op!r}; expected one of {', '.join(OPS)}")
        result = _dispatch(str(op), request, service, hooks, passed)
        return {"version": PROTOCOL_VERSION, "ok": True, "result": result}
    except RpcError as error:
        return error_reply(error)
    except VpccniError as error:
        return error_reply(RpcError(CODE_INTERNAL, str(error)))
    except Exception as error:
        log.exception("plugin API request failed")
        return error_reply(
            RpcError(CODE_INTERNAL, f"internal error: {type(error).__name__}: {error}")
        )


def _dispatch(
    op: str, request: dict[str, Any], service: IpamService, hooks: RpcHooks, passed: Passed
) -> Any:
    if op == "status":
        if not hooks.ready():
            raise RpcError(CODE_NOT_READY, "ipamd is not ready yet")
        stats = [v for v in service.views() if not v.info.excluded]
        mode_prefix = service.datastore.mode.uses_prefixes
        ready_addresses = sum(
            c.size - c.assigned - c.cooling
            for v in stats
            for c in v.cidrs
            if c.prefix == mode_prefix
        )
        return {"ready": True, "available": ready_addresses}
    cni = _object(request.get("cni"), "cni")
    config = _object(request.get("config"), "config")
    network = config.get("name")
    if not isinstance(network, str) or not network:
        raise RpcError(CODE_INVALID_CONFIG, "network configuration has no name")
    if len(network) > MAX_NETWORK_NAME or not is_cni_name(network):
        raise RpcError(
            CODE_INVALID_CONFIG,
            f"invalid network name {network[:80]!r}",
            "letters, digits, '_', '.', '-' starting with a letter or digit, at most "
            f"{MAX_NETWORK_NAME} characters (the CNI spec's rule)",
        )
    if op == "gc":
        return _gc(network, config, service)
    key = PodKey(network, _cni_value(cni, "container_id"), _cni_value(cni, "ifname"))
    if op == "del":
        hooks.on_del()
        hooks.waiting.discard(key)
        delete_pod(key, _meta(cni.get("args")), config, service, hooks.datapath)
        return {}
    if not hooks.ready():
        raise RpcError(CODE_TRY_AGAIN, "ipamd is starting; try again shortly")
    netns, pod = _pod(cni.get("netns"), request.get("fds"), passed, hooks.datapath)
    if op == "check":
        return _check(key, netns, pod, config=config, service=service, datapath=hooks.datapath)
    _veth_prefix(config, hooks.datapath)
    return _add(
        key,
        _meta(cni.get("args")),
        netns=netns,
        pod=pod,
        mtu=_mtu(config),
        style=_result_style(config),
        service=service,
        hooks=hooks,
    )


def _pod(
    netns: Any, declared: Any, passed: Passed, datapath: Datapath | None
) -> tuple[str, PodNamespace | None]:
    """ADD and CHECK: ``CNI_NETNS`` (a label) and, with a datapath, the pod's checked
    descriptors; without one, the descriptors are ignored and the path only has to exist."""
    if not isinstance(netns, str) or not netns:
        raise RpcError(CODE_INVALID_ENV, "CNI_NETNS is missing")
    if datapath is None:
        if not os.path.exists(netns):
            raise RpcError(CODE_INVALID_ENV, f"network namespace {netns!r} does not exist")
        return netns, None
    try:
        pod = pod_namespace(declared, passed.fds, passed.overflow, netns, datapath.node_netns_id())
    except PodFdsRefused as refused:
        raise RpcError(CODE_INVALID_ENV, refused.msg, refused.details) from None
    return netns, pod


def _add(
    key: PodKey,
    meta: PodMeta,
    *,
    netns: str,
    pod: PodNamespace | None,
    mtu: int | None,
    style: str,
    service: IpamService,
    hooks: RpcHooks,
) -> dict[str, Any]:
    started = time.monotonic()
    try:
        outcome = service.add(key, meta)
    except NoAvailableAddress:
        hooks.waiting.add(key)
        cause = hooks.why_no_address()
        hooks.on_no_address(cause.reason if cause is not None else "growing")
        hooks.on_add(time.monotonic() - started, False)
        raise no_address_error(cause) from None
    hooks.waiting.discard(key)
    address = outcome.assignment.address
    ip: dict[str, Any] = {"address": f"{address}/32", "gateway": GATEWAY}
    interfaces: list[dict[str, str]] = []
    datapath = hooks.datapath
    if datapath is not None:
        wiring = datapath.wiring(
            key, outcome.assignment.meta, netns, address, outcome.eni, mtu=mtu, pod=pod
        )
        try:
            wired = datapath.wire(wiring)
        except VpccniError as error:
            service.delete(key)
            hooks.on_add(time.monotonic() - started, False)
            raise RpcError(CODE_INTERNAL, f"pod wiring failed: {error}") from None
        interfaces = result_interfaces(
            style, wired, key.ifname, netns, meta=meta, device_index=outcome.eni.device_index
        )
        ip["interface"] = 1
    hooks.on_add(time.monotonic() - started, True)
    return {
        "interfaces": interfaces,
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
        "dns": {},
    }


def result_interfaces(
    style: str,
    wired: WiredInterfaces,
    ifname: str,
    netns: str,
    *,
    meta: PodMeta,
    device_index: int,
) -> list[dict[str, str]]:
    """The ADD result's ``interfaces`` in the config's ``resultStyle`` (``docs/plugin-api.md``):
    the host veth, then the pod's interface (index 1, which the IP names). ``upstream`` (the
    default): the pod entry without ``mac`` (upstream's DEL reads one there as a route table) and
    upstream's ``dummy`` entry last, so upstream's plugin can tear the pod down after a rollback
    to aws-node; ``plain``: the pod entry with the pod's MAC, no dummy (a plain CNI result, for
    runtimes that parse the MAC of every interface in a sandbox, as podman does)."""
    host = {"name": wired.host_veth, "mac": wired.host_mac}
    if style == "plain":
        return [host, {"name": ifname, "mac": wired.pod_mac, "sandbox": netns}]
    return [host, {"name": ifname, "sandbox": netns}, upstream_dummy(meta, device_index)]


def upstream_dummy(meta: PodMeta, device_index: int) -> dict[str, str]:
    """The bookkeeping entry upstream's plugin appends to its ADD result and reads back from
    prevResult at DEL when its ipamd cannot answer (``docs/plugin-api.md``, "Rolling back"):
    named ``dummy`` + sha1("<namespace>.<pod name>")[:11] - from CNI_ARGS exactly as upstream
    hashes them, empty names included - with ``mac`` the VLAN id (0: not a branch-ENI pod) and
    ``sandbox`` the ENI's device number (upstream's table is device + 1; 1 means main)."""
    suffix = hashlib.sha1(f"{meta.namespace}.{meta.name}".encode()).hexdigest()[:11]
    return {"name": f"dummy{suffix}", "mac": "0", "sandbox": str(device_index)}


def no_address_error(cause: NoAddress | None) -> RpcError:
    """The ADD error for a pod that got no address: the cause's sentence, what to do, and code
    11 (try again later) when a retry can succeed, else 110 (a change is needed)."""
    if cause is None:  # the pool grew between the refusal and the look at why
        return RpcError(CODE_TRY_AGAIN, "no IP address available yet", "retry now")
    code = CODE_TRY_AGAIN if cause.retryable else CODE_NO_ADDRESS_NEEDS_CHANGE
    return RpcError(code, cause.message, cause.action)


def delete_pod(
    key: PodKey,
    meta: PodMeta,
    config: dict[str, Any],
    service: IpamService,
    datapath: Datapath | None,
) -> None:
    """DEL: unwire what the pod had (if wired here) and release its address durably
    (``Datapath.release_pod``: the host veth goes right after, in the background)."""
    if datapath is None:
        service.delete(key, _prev_addresses(config))
    else:
        datapath.release_pod(service, key, meta, _prev_addresses(config))


def _check(
    key: PodKey,
    netns: str,
    pod: PodNamespace | None,
    *,
    config: dict[str, Any],
    service: IpamService,
    datapath: Datapath | None,
) -> dict[str, Any]:
    held = service.lookup(key)
    if held is None:
        raise RpcError(CODE_CHECK_FAILED, f"{key} holds no address in ipamd")
    expected = _prev_addresses(config)
    if expected and held.address not in expected:
        raise RpcError(
            CODE_CHECK_FAILED,
            f"{key} holds {held.address}, but prevResult says {', '.join(map(str, expected))}",
        )
    if datapath is not None:
        with service.lock:
            eni = service.datastore.eni_of(held.address)
        drift = datapath.check(datapath.wiring(key, held.meta, netns, held.address, eni, pod=pod))
        if drift:
            raise RpcError(CODE_CHECK_FAILED, f"{key}: {drift[0]}", "; ".join(drift))
    return {}


def _result_style(config: dict[str, Any]) -> str:
    """The config's ``resultStyle`` (``upstream`` when absent); the plugin refuses any other
    value, and so does the daemon (7), before anything is allocated."""
    style = result_style(config)
    if style is None:
        raise RpcError(
            CODE_INVALID_CONFIG,
            f"config key resultStyle {config['resultStyle']!r:.40} is not 'upstream' or 'plain'",
            RESULT_STYLE_HELP,
        )
    return style


def _mtu(config: dict[str, Any]) -> int | None:
    """The config's pod MTU (an integer or upstream's string of digits), None when absent; the
    plugin refuses any other value, and so does the daemon (7)."""
    if "mtu" not in config:
        return None
    mtu = pod_mtu(config["mtu"])
    if mtu is None:
        raise RpcError(
            CODE_INVALID_CONFIG,
            f"config key mtu {config['mtu']!r:.40} is not a pod MTU",
            "an integer from 576 to 9001, or a string of its digits",
        )
    return mtu


def _veth_prefix(config: dict[str, Any], datapath: Datapath | None) -> None:
    """A conflist's ``vethPrefix`` (upstream's key) must be the daemon's own prefix: the daemon
    names the host veths (AWS_VPC_K8S_CNI_VETHPREFIX), and its rules match ``<prefix>+``."""
    if "vethPrefix" not in config or datapath is None:
        return
    given = config["vethPrefix"]
    if given != datapath.veth_prefix:
        raise RpcError(
            CODE_INVALID_CONFIG,
            f"config key vethPrefix {given!r:.40} differs from the daemon's "
            f"AWS_VPC_K8S_CNI_VETHPREFIX {datapath.veth_prefix!r}",
            "the daemon names the host veths: set the same prefix in both, or drop vethPrefix "
            "from the conflist",
        )


def _gc(network: str, config: dict[str, Any], service: IpamService) -> dict[str, Any]:
    raw = config.get("cni.dev/valid-attachments")
    if not isinstance(raw, list):
        raise RpcError(
            CODE_INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments as a list (without it every pod would be released)",
        )
    valid = []
    for item in raw:
        if not isinstance(item, dict):
            raise RpcError(CODE_INVALID_CONFIG, "each valid attachment must be an object")
        valid.append((str(item.get("containerID", "")), str(item.get("ifname", ""))))
    released = service.gc(network, valid)
    return {
        "released": [
            {"container_id": a.key.container_id, "ifname": a.key.ifname, "address": str(a.address)}
            for a in released
        ]
    }


def _prev_addresses(config: dict[str, Any]) -> list[IPv4Address]:
    prev = config.get("prevResult")
    if not isinstance(prev, dict) or not isinstance(prev.get("ips"), list):
        return []
    found = []
    for ip in prev["ips"]:
        try:
            found.append(IPv4Address(str(ip.get("address", "")).split("/")[0]))
        except (ValueError, AttributeError):
            continue
    return found


def _meta(args: Any) -> PodMeta:
    values: dict[str, str] = {}
    if isinstance(args, str):
        for pair in args.split(";"):
            name, _, value = pair.partition("=")
            values[name.strip()] = value.strip()
    meta = PodMeta(values.get("K8S_POD_NAMESPACE", ""), values.get("K8S_POD_NAME", ""))
    if len(meta.namespace) > MAX_POD_NAME or len(meta.name) > MAX_POD_NAME:
        raise RpcError(
            CODE_INVALID_ENV,
            "K8S_POD_NAMESPACE or K8S_POD_NAME in CNI_ARGS is too long",
            f"Kubernetes names have at most {MAX_POD_NAME} characters",
        )
    return meta


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcError(CODE_MALFORMED, f"request field {name!r} must be an object")
    return value


_VARIABLES = {"container_id": "CNI_CONTAINERID", "ifname": "CNI_IFNAME"}


def _cni_value(cni: dict[str, Any], name: str) -> str:
    """A pod key part, checked as the CNI spec (and the plugin) define it; it is journaled."""
    value = cni.get(name)
    if not isinstance(value, str) or not value:
        raise RpcError(CODE_INVALID_ENV, f"CNI argument {name} is missing or empty")
    why = why_invalid_variable(_VARIABLES[name], value)
    if why:
        raise RpcError(CODE_INVALID_ENV, f"{_VARIABLES[name]} {why}", repr(value[:80]))
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(
            f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INTEGER_DIGITS})"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_request(line: bytes) -> Any:
    """Strict JSON: bounded integers, finite numbers, nesting within the parser's limit."""
    try:
        return json.loads(
            line,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise RpcError(CODE_MALFORMED, "request is not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise RpcError(CODE_MALFORMED, f"request is not JSON: {str(error)[:200]}") from None


def _line(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply).encode() + b"\n"


class PluginApi:
    """The plugin API as a listener exchange: one JSON line in, one JSON line out."""

    max_fds = MAX_FDS

    def __init__(self, service: IpamService, hooks: RpcHooks) -> None:
        self.service = service
        self.hooks = hooks

    def request_end(self, buffer: bytes) -> int | None:
        end = buffer.find(b"\n")
        return None if end < 0 else end + 1

    def reply(self, request: bytes, connection: socket.socket, passed: Passed) -> bytes:
        try:
            decoded = decode_request(request)
        except RpcError as error:
            return _line(error_reply(error))
        return _line(handle_request(decoded, self.service, self.hooks, passed))

    def too_large(self) -> bytes:
        return _line(error_reply(RpcError(CODE_MALFORMED, "request larger than 1 MiB")))

    def too_slow(self) -> bytes:
        return _line(
            error_reply(
                RpcError(CODE_MALFORMED, f"request not received within {REQUEST_SECONDS:g} s")
            )
        )

    def busy(self, open_connections: int) -> bytes:
        return _line(
            error_reply(
                RpcError(
                    CODE_TRY_AGAIN,
                    "ipamd is busy: too many plugin connections open",
                    f"{open_connections} connections are being served; try again shortly",
                )
            )
        )


class RpcServer(Listener):
    """The plugin API on a ``0600`` Unix socket, bounded (see the module text)."""

    def __init__(self, path: Path, service: IpamService, hooks: RpcHooks) -> None:
        self.path = path
        super().__init__(
            unix_listener(path),
            PluginApi(service, hooks),
            Limits(MAX_REQUEST_BYTES, REQUEST_SECONDS, MAX_CONNECTIONS, WORKERS),
            "plugin-api",
            unix_path=path,
        )


def call(
    path: Path, request: dict[str, Any], timeout: float = 10.0, fds: Sequence[int] = ()
) -> dict[str, Any]:
    """A client call (for ``vpccni`` commands and tests): one request, one reply; ``fds`` go
    with the request's first bytes (``SCM_RIGHTS``), as the plugin passes the pod's namespace."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        data = json.dumps(request).encode() + b"\n"
        if fds:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array("i", fds).tobytes())]
            sent = client.sendmsg([data], rights)
            data = data[sent:]
        if data:
            client.sendall(data)
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
