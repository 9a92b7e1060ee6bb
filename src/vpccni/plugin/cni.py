"""``vpccni-cni``, the CNI plugin: one stdlib-only file that hands every CNI call to the daemon.

The container runtime execs it for each ADD, DEL, CHECK, VERSION, STATUS and GC. The file reads
like a reference plugin (containernetworking/plugins): checking the call, in a fixed order -
CNI_COMMAND, then decode stdin (6), cniVersion (1), network config (7), ``CNI_*`` variables (4);
talking to ``vpccni ipamd`` over a Unix socket (docs/plugin-api.md); one function per verb,
``cmd_add``, ``cmd_del``, ``cmd_check``, ``cmd_version``, ``cmd_status``, ``cmd_gc``; then a
small ``main`` that prints a CNI error for every refusal, never a traceback. ADD prints its result
in the version the config asks for. Daemon down: ADD, CHECK and GC fail with 11, STATUS with 50,
and DEL succeeds after writing a durable DEL record to the spool directory for the daemon to
replay. DEL never fails on input that ADD would have refused (nothing can have been allocated
for it): it does nothing, exit 0. ``vpccni install-cni`` copies this file verbatim behind a
``#!/usr/bin/python3 -IS`` line, so it imports nothing outside the standard library.

ADD and CHECK pass the pod's network namespace to the daemon, which then needs no right to enter
namespaces: the plugin opens ``CNI_NETNS``, enters it (``setns``; this process is short-lived and
single-threaded, so it never goes back), creates a ``NETLINK_ROUTE`` socket there and sends both
descriptors with its request (``SCM_RIGHTS``). The Unix socket of the daemon is reached by path,
which no network namespace hides. DEL, GC and STATUS pass nothing.

Start-up is on every pod's critical path: at start it loads only the builtin ``_json`` and
``posix``; ``_socket`` when it talks to the daemon; never ``json``, ``socket`` or ``os`` on the
common paths (they pull in ``re`` and ``enum``: ~12 ms). Entering the namespace uses
``posix.setns`` (Python 3.12+); older interpreters have no such function, and ADD and CHECK then
load ``ctypes`` to call libc's ``setns`` (~3 ms, and it imports ``os``).

Oldest Python: 3.8 (``:=``, ``from __future__ import annotations``; nothing newer is used, and
``tests/plugin/test_python_floor.py`` holds it there).
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, BinaryIO, Protocol

    class Output(Protocol):
        """Where the plugin writes: a descriptor (``Descriptor``) or, in tests, a StringIO."""

        def write(self, text: str, /) -> int: ...

        def flush(self) -> None: ...


SPEC_VERSION = "1.1.0"
# Upstream's plugin answers VERSION with the CNI library's full list (version.All), so do we.
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
VERSION_REPLY = (
    '{"cniVersion": "1.1.0", "supportedVersions": '
    '["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}\n'
)
LEGACY_VERSIONS = ("0.1.0", "0.2.0")  # results with ip4/ip6 instead of ips
V04_VERSIONS = ("0.3.0", "0.3.1", "0.4.0")  # results with "version" in each IP
PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/vpccni/ipamd.sock"
DEFAULT_SPOOL_DIR = "/var/lib/vpccni/del-spool"
MAX_STDIN = 1 << 20  # bytes of network configuration; also the daemon's request limit
MAX_REPLY = 16 << 20
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
# Seconds to connect and get the reply; past it the daemon counts as down.
TIMEOUTS = {"ADD": 10.0, "DEL": 10.0, "CHECK": 10.0, "GC": 30.0, "STATUS": 3.0}
# Verbs that need a newer cniVersion (as the CNI library's skel enforces).
MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
MTU_RANGE = (576, 9001)  # the pod MTU, as upstream's GetPodMTU bounds it
MAX_VETH_PREFIX = 4
RESERVED_VETH_PREFIXES = ("eth", "lo", "vlan")  # upstream's entrypoint refuses them
# The ADD result's shape, config key resultStyle (docs/plugin-api.md); the first is the default.
RESULT_STYLES = ("upstream", "plain")
RESULT_STYLE_HELP = (
    "'upstream' (the default) keeps the entries upstream's DEL reads, so a node rolled back to "
    "aws-node can tear the pod down; 'plain' gives the pod's MAC and no dummy entry, for "
    "runtimes that parse every MAC (podman)"
)

INCOMPATIBLE_VERSION = 1
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILED = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50

POD_VERBS = ("ADD", "CHECK")  # they pass the pod's namespace to the daemon (docs/plugin-api.md)
PASSED_FDS = ["netns", "netlink"]  # the request's "fds": what the descriptors are, in order
CLONE_NEWNET = 0x40000000
EINVAL = 22

# The CNI_* variables forwarded to the daemon: (name, request field, longest accepted length).
VARIABLES = (
    ("CNI_CONTAINERID", "container_id", 200),  # short enough for a spool file name
    ("CNI_NETNS", "netns", 4096),
    ("CNI_IFNAME", "ifname", 15),  # IFNAMSIZ - 1
    ("CNI_ARGS", "args", 65536),
    ("CNI_PATH", "path", 65536),
)
MAX_NETWORK_NAME = 253
REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
}
FILE_NAME_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
)


class CniError(Exception):
    """A CNI error result: spec code, short message, details; printed as JSON on stdout."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
        self.cni_version = SPEC_VERSION


class DaemonUnreachable(Exception):
    """No complete reply came back: no socket, refused, reset, closed early or timed out."""


class Call:
    """One checked CNI invocation, ready to send."""

    def __init__(self, command: str, version: str, config: dict[str, Any]) -> None:
        self.command = command
        self.version = version
        self.config = config
        self.cni: dict[str, str] = {}
        self.socket_path = DEFAULT_SOCKET
        self.spool_dir = DEFAULT_SPOOL_DIR
        self.payload = b""
        self.outcome = ""
        self.fds: list[int] = []  # the pod's namespace and a netlink socket in it (ADD, CHECK)


# --- JSON: the C accelerator directly (``import json`` costs ~10 ms through ``re``) ---


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _StrictJson:
    """The attributes ``_json.make_scanner`` reads: strict JSON, finite numbers, no NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None
    parse_int = int
    parse_float = staticmethod(_finite_float)
    parse_constant = staticmethod(_refuse_constant)


_CODEC: list[Any] = []


def _codec() -> tuple[Any, Any]:
    """The fast scanner and encoder, built once; (None, None) without the C accelerator."""
    if not _CODEC:
        try:
            import _json

            scanner = _json.make_scanner(_StrictJson())  # type: ignore[arg-type]
            encoder = _json.make_encoder(
                None,
                _not_json,
                _json.encode_basestring_ascii,
                None,
                ": ",
                ", ",
                False,
                False,
                False,
            )
            _CODEC.extend((scanner, encoder))
        except (ImportError, AttributeError, TypeError):
            _CODEC.extend((None, None))
    return _CODEC[0], _CODEC[1]


def _not_json(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def decode_json(text: str) -> Any:
    """Strict JSON (no NaN/Infinity, finite numbers); ValueError or RecursionError if not."""
    scanner, _ = _codec()
    if scanner is not None:
        body = text.strip(" \t\n\r")
        try:
            value, end = scanner(body, 0)
            if end == len(body):
                return value
        except Exception:
            pass  # the full decoder below says precisely what is wrong
    import json

    decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
    return decoder.decode(text)


def encode_json(value: object) -> str:
    """Compact ASCII JSON."""
    _, encoder = _codec()
    if encoder is not None:
        return "".join(encoder(value, 0))
    import json

    return json.dumps(value, allow_nan=False)


# --- checking the call: stdin, cniVersion, config, CNI_* variables ---


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_config(stdin: BinaryIO | None) -> dict[str, Any]:
    """The network configuration on stdin: at most 1 MiB of UTF-8 holding one JSON object."""
    try:
        data = stdin.read(MAX_STDIN + 1) if stdin is not None else b""
    except (OSError, ValueError) as error:
        raise CniError(IO_FAILURE, "cannot read the network config on stdin", str(error)) from None
    if len(data) > MAX_STDIN:
        raise CniError(
            INVALID_CONFIG,
            "the network configuration on stdin is larger than 1 MiB",
            "a CNI network configuration is a few hundred bytes; check what the runtime sends",
        )
    try:
        config = decode_json(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise CniError(
            DECODING_FAILED,
            "cannot decode the network configuration on stdin as JSON",
            str(error)[:200],
        ) from None
    if not isinstance(config, dict):
        raise CniError(
            DECODING_FAILED,
            "the network configuration on stdin is not a JSON object",
            f"got a JSON {type(config).__name__}",
        )
    return config


def check_version(command: str, config: dict[str, Any]) -> str:
    """The config's cniVersion, if this plugin speaks it and it allows the verb."""
    version = config.get("cniVersion")
    if not isinstance(version, str):
        raise CniError(
            INVALID_CONFIG,
            "the network configuration has no cniVersion string",
            f"cniVersion is {_shown(version)}; use one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"incompatible CNI version {_shown(version)}",
            f"vpccni-cni supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    needed = MIN_VERSION.get(command)
    if needed is not None and version < needed:
        error = CniError(
            INCOMPATIBLE_VERSION,
            f"config version {version} does not allow {command}",
            f"{command} needs cniVersion {needed} or later",
        )
        error.cni_version = version
        raise error
    return version


def is_cni_name(value: str) -> bool:
    """The spec's rule for network names and container IDs: [A-Za-z0-9][A-Za-z0-9_.-]*."""
    return (
        value[:1].isascii()
        and value[:1].isalnum()
        and all(character in FILE_NAME_CHARACTERS for character in value)
    )


def bad_path(value: object, limit: int) -> str:
    """Why ``value`` is not an acceptable absolute path ('' when it is)."""
    if not isinstance(value, str) or not value.startswith("/"):
        return "must be an absolute path"
    if not value.isprintable():
        return "contains control or non-printable characters"
    if len(value.encode("utf-8")) > limit:
        return f"is longer than {limit} bytes"
    return ""


def check_config(command: str, config: dict[str, Any]) -> None:
    """The keys this plugin relies on, upstream's ``mtu`` (a string there) and ``vethPrefix``,
    and ``resultStyle``: read, or refused naming the key, never ignored. The daemon checks the
    rest (and these again)."""
    name = config.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NETWORK_NAME or not is_cni_name(name):
        raise CniError(
            INVALID_CONFIG,
            f"invalid network name {_shown(name)}",
            "name must be a string of letters, digits, '_', '.', '-' starting with a letter or "
            "digit, at most 253 characters",
        )
    for key, limit in (("socket", MAX_SOCKET_PATH), ("spoolDir", 4096)):
        if key in config and (why := bad_path(config[key], limit)):
            raise CniError(INVALID_CONFIG, f"config key {key} {why}", _shown(config[key]))
    if "mtu" in config and pod_mtu(config["mtu"]) is None:
        low, high = MTU_RANGE
        raise CniError(
            INVALID_CONFIG,
            f"config key mtu {_shown(config['mtu'], 40)} is not a pod MTU",
            f"give an integer from {low} to {high}, or a string of its digits (upstream's "
            'conflist writes "9001")',
        )
    if "vethPrefix" in config and (why := why_invalid_veth_prefix(config["vethPrefix"])):
        raise CniError(
            INVALID_CONFIG,
            f"config key vethPrefix {_shown(config['vethPrefix'], 40)} {why}",
            "the host-side veth name prefix: 1 to 4 letters, digits, '_', '.', '-', not eth, lo "
            "or vlan (as upstream's AWS_VPC_K8S_CNI_VETHPREFIX)",
        )
    if result_style(config) is None:
        raise CniError(
            INVALID_CONFIG,
            f"config key resultStyle {_shown(config['resultStyle'], 40)} is not 'upstream' or "
            "'plain'",
            RESULT_STYLE_HELP,
        )
    previous = config.get("prevResult")
    if previous is None and command == "CHECK":
        raise CniError(
            INVALID_CONFIG, "CHECK needs prevResult", "the runtime must send the ADD result"
        )
    if previous is not None and (
        not isinstance(previous, dict) or not isinstance(previous.get("ips", []), list)
    ):
        raise CniError(INVALID_CONFIG, "prevResult is not a CNI result", _shown(previous))
    if command == "GC":
        _check_attachments(config.get("cni.dev/valid-attachments"))


def pod_mtu(value: object) -> int | None:
    """The pod MTU a config's ``mtu`` gives: an integer, or - as upstream's conflist writes it -
    a string of at most 10 ASCII digits, within 576-9001; None when it is neither."""
    if isinstance(value, str) and 0 < len(value) <= 10 and value.isascii() and value.isdigit():
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        return None
    return number if MTU_RANGE[0] <= number <= MTU_RANGE[1] else None


def result_style(config: dict[str, Any]) -> str | None:
    """The ADD result's shape the config asks for (``resultStyle``, by default ``upstream``);
    None when the key holds anything but one of ``RESULT_STYLES``."""
    style = config.get("resultStyle", RESULT_STYLES[0])
    return style if isinstance(style, str) and style in RESULT_STYLES else None


def why_invalid_veth_prefix(value: object) -> str:
    """Why ``value`` is no host veth prefix ('' when it is one)."""
    if not isinstance(value, str):
        return "is not a string"
    if not 0 < len(value) <= MAX_VETH_PREFIX:
        return f"must be 1 to {MAX_VETH_PREFIX} characters long"
    if not all(character in FILE_NAME_CHARACTERS for character in value):
        return "may hold only letters, digits, '_', '.' and '-'"
    if value in RESERVED_VETH_PREFIXES:
        return "is reserved (eth, lo and vlan name the node's own links)"
    return ""


def _check_attachments(attachments: object) -> None:
    """GC must list the attachments to keep: without the list, the daemon would release all."""
    if not isinstance(attachments, list) or not all(
        isinstance(item, dict)
        and isinstance(item.get("containerID"), str)
        and isinstance(item.get("ifname"), str)
        for item in attachments
    ):
        raise CniError(
            INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments",
            "a list of {containerID, ifname} objects naming the attachments to keep",
        )


def _bad_variable(name: str, value: str, limit: int) -> str:
    """Why a CNI_* value is unacceptable ('' when it is fine)."""
    if not value.isprintable():
        return "contains control characters or is not valid UTF-8"
    if len(value.encode("utf-8")) > limit:
        return f"is longer than {limit} bytes"
    if name == "CNI_CONTAINERID" and not is_cni_name(value):
        return "must be letters, digits, '_', '.', '-' starting with a letter or digit"
    if name == "CNI_IFNAME" and (value in (".", "..") or any(c in "/: " for c in value)):
        return "is not a valid interface name"
    if name == "CNI_ARGS":
        for pair in value.split(";"):
            key, equals, rest = pair.partition("=")
            if pair and (not key or not equals or "=" in rest):
                return f"has {_shown(pair, 40)}, not KEY=VALUE"
    return ""


def why_invalid_variable(name: str, value: str) -> str:
    """Why ``value`` is unacceptable for the CNI_* variable ``name`` ('' when it is fine).

    The one rule for container ids and interface names; the daemon checks requests with it too.
    """
    limit = next(limit for variable, _, limit in VARIABLES if variable == name)
    return _bad_variable(name, value, limit)


def read_variables(command: str, environ: Mapping[str, str], call: Call) -> None:
    """The CNI_* variables (and VPCCNI_* overrides) into ``call``; every problem in one error."""
    missing = [name for name in REQUIRED[command] if not environ.get(name)]
    if missing:
        raise CniError(
            INVALID_ENVIRONMENT,
            f"required environment variables missing: {', '.join(missing)}",
            f"{command} needs {', '.join(REQUIRED[command])}",
        )
    problems = []
    for name, field, limit in VARIABLES:
        value = environ.get(name, "")
        if value and (why := _bad_variable(name, value, limit)):
            problems.append(f"{name} {why}: {_shown(value, 60)}")
        call.cni[field] = value
    for name, limit in (("VPCCNI_SOCKET", MAX_SOCKET_PATH), ("VPCCNI_SPOOL_DIR", 4096)):
        value = environ.get(name, "")
        if value and (why := bad_path(value, limit)):
            problems.append(f"{name} {why}: {_shown(value, 60)}")
    if problems:
        raise CniError(INVALID_ENVIRONMENT, "invalid environment variables", "; ".join(problems))
    call.socket_path = environ.get("VPCCNI_SOCKET") or call.config.get("socket") or DEFAULT_SOCKET
    call.spool_dir = (
        environ.get("VPCCNI_SPOOL_DIR") or call.config.get("spoolDir") or DEFAULT_SPOOL_DIR
    )


def read_call(command: str, environ: Mapping[str, str], stdin: BinaryIO | None) -> Call:
    """Every check, in order: decode stdin, version, config, variables; then the request."""
    config = read_config(stdin)
    version = check_version(command, config)
    call = Call(command, version, config)
    try:
        check_config(command, config)
        read_variables(command, environ, call)
    except CniError as error:
        error.cni_version = version
        raise
    call.payload = request_bytes(call)
    return call


# --- the daemon: one request, one reply (docs/plugin-api.md) ---


def request_bytes(call: Call) -> bytes:
    """The request line for ``call``; a config too big for the daemon is refused here (7)."""
    request = {
        "version": PROTOCOL_VERSION,
        "op": call.command.lower(),
        "cni": {"command": call.command, **call.cni},
        "config": call.config,
    }
    if call.command in POD_VERBS:
        request["fds"] = PASSED_FDS
    try:
        data = (encode_json(request) + "\n").encode("ascii")
    except (ValueError, TypeError, RecursionError) as error:
        raise CniError(INVALID_CONFIG, "cannot re-encode the network config", str(error)) from None
    if len(data) > MAX_STDIN:
        raise CniError(
            INVALID_CONFIG,
            "the request for the daemon is larger than 1 MiB",
            "the network configuration (escaped as ASCII JSON) or CNI_ARGS is too large",
        )
    return data


def exchange(socket_path: str, data: bytes, timeout: float, fds: list[int] | None = None) -> bytes:
    """Send ``data`` and return the reply line; DaemonUnreachable if none arrives in time.

    ``fds`` go with the first write (``SCM_RIGHTS``), in order.
    """
    import _socket

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        connection.settimeout(timeout)
        connection.connect(socket_path)
        if fds:
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)  # C ints
            sent = connection.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
            data = data[sent:]
        if data:
            connection.sendall(data)
        while size <= MAX_REPLY:
            connection.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if b"\n" in chunk:
                break
    except (TimeoutError, _socket.timeout):  # the same class since 3.10, distinct before
        raise DaemonUnreachable(f"no reply within {timeout:g} s") from None
    except OSError as error:
        raise DaemonUnreachable(error.strerror or str(error)) from None
    finally:
        connection.close()
    if not chunks:
        raise DaemonUnreachable("the connection closed before a reply")
    if size > MAX_REPLY:
        raise CniError(TRY_AGAIN_LATER, "the vpccni daemon's reply is larger than 16 MiB")
    return b"".join(chunks).partition(b"\n")[0]


# --- ADD and CHECK: the pod's network namespace, passed as descriptors ---


def enter_pod_namespace(call: Call) -> None:
    """Open ``CNI_NETNS``, enter it and create a ``NETLINK_ROUTE`` socket there; both
    descriptors go into ``call.fds`` for the daemon. Every failure is CNI error 4."""
    import _socket
    import posix

    path = call.cni["netns"]
    try:
        call.fds.append(posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC))
    except OSError as error:
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_NETNS {path}: cannot open the network namespace: {error.strerror}",
            "CNI_NETNS must name the pod's network namespace (e.g. /var/run/netns/NAME)",
        ) from None
    try:
        _setns(call.fds[0])
    except OSError as error:
        why = "it is not a network namespace" if error.errno == EINVAL else error.strerror
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_NETNS {path}: cannot enter the network namespace: {why}",
            "the plugin enters the pod's namespace to pass it to the daemon; it must run as "
            "root (CAP_SYS_ADMIN), as container runtimes run CNI plugins",
        ) from None
    try:
        netlink = _socket.socket(
            _socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE
        )
    except OSError as error:
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_NETNS {path}: cannot create a netlink socket in the network namespace: "
            f"{error.strerror}",
        ) from None
    call.fds.append(netlink.detach())


def _setns(descriptor: int) -> None:
    """Enter the network namespace ``descriptor`` (posix.setns, or libc's through ctypes)."""
    import posix

    if hasattr(posix, "setns"):  # Python 3.12+
        posix.setns(descriptor, CLONE_NEWNET)
        return
    import ctypes

    setns = getattr(ctypes.CDLL(None, use_errno=True), "setns", None)
    if setns is None:
        raise OSError(38, "this C library has no setns")  # ENOSYS
    if setns(descriptor, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, posix.strerror(number))


def release_fds(call: Call) -> None:
    """Close the descriptors passed to the daemon (it holds its own copies)."""
    import posix

    while call.fds:
        try:  # noqa: SIM105 - contextlib costs an import on every ADD
            posix.close(call.fds.pop())
        except OSError:
            pass


def _invalid_reply(why: str) -> CniError:
    return CniError(
        TRY_AGAIN_LATER,
        f"the vpccni daemon sent an invalid reply: {why}",
        "plugin and daemon disagree on docs/plugin-api.md; check that both are the same release",
    )


def parse_reply(line: bytes) -> dict[str, Any]:
    """The ``result`` of a success reply; a daemon error becomes a CniError with its code."""
    try:
        reply = decode_json(line.decode("utf-8"))
    except (ValueError, RecursionError):
        raise _invalid_reply("not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise _invalid_reply("not an object with a boolean 'ok'")
    if reply["ok"] is False:
        error = reply.get("error")
        error = error if isinstance(error, dict) else {}
        code, msg, details = error.get("code"), error.get("msg"), error.get("details", "")
        if type(code) is not int or code <= 0 or not isinstance(msg, str):
            raise _invalid_reply("an error without an integer code and a message")
        raise CniError(code, msg, details if isinstance(details, str) else encode_json(details))
    result = reply.get("result")
    if reply.get("version") != PROTOCOL_VERSION or not isinstance(result, dict):
        raise _invalid_reply(f"expected protocol version {PROTOCOL_VERSION} with a result object")
    return result


def send(call: Call) -> dict[str, Any]:
    """The result in the daemon's reply to ``call``; DaemonUnreachable if no reply comes."""
    return parse_reply(exchange(call.socket_path, call.payload, TIMEOUTS[call.command], call.fds))


def ask_daemon(call: Call, unreachable: int = TRY_AGAIN_LATER) -> dict[str, Any]:
    """``send``, with an unreachable daemon reported as CNI error ``unreachable``."""
    try:
        return send(call)
    except DaemonUnreachable as down:
        raise CniError(
            unreachable,
            f"the vpccni daemon is unreachable at {call.socket_path}",
            f"{down}; start it (vpccni ipamd) or point VPCCNI_SOCKET / the config key socket "
            "at its socket",
        ) from None


def convert_result(result: dict[str, Any], version: str) -> dict[str, Any]:
    """The daemon's 1.0.0-shaped ADD result in ``version``, with ``cniVersion`` first, as the
    CNI library converts: 0.3.x / 0.4.0 keep the 0.4.0 fields (a ``version`` per IP), 0.1.0 /
    0.2.0 become ``ip4`` / ``ip6``."""
    ips = result.get("ips", [])
    if not isinstance(ips, list) or not all(
        isinstance(ip, dict) and isinstance(ip.get("address"), str) for ip in ips
    ):
        raise _invalid_reply("the ADD result's ips are not a list of addresses")
    for key in ("interfaces", "routes"):
        items = result.get(key, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _invalid_reply(f"the ADD result's {key} is not a list of objects")
    converted: dict[str, Any] = {"cniVersion": version}
    if version in LEGACY_VERSIONS:
        return _legacy_result(result, ips, converted)
    if version not in V04_VERSIONS:
        converted.update(result)
        converted["cniVersion"] = version
        return converted

    def kept(items: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{key: item[key] for key in keys if key in item} for item in items]

    if "interfaces" in result:
        converted["interfaces"] = kept(result["interfaces"], ("name", "mac", "sandbox"))
    converted["ips"] = [
        dict(
            {"version": "6" if ":" in ip["address"] else "4"},
            **{key: ip[key] for key in ("interface", "address", "gateway") if key in ip},
        )
        for ip in ips
    ]
    if "routes" in result:
        converted["routes"] = kept(result["routes"], ("dst", "gw"))
    if "dns" in result:
        converted["dns"] = result["dns"]
    return converted


def _legacy_result(
    result: dict[str, Any], ips: list[dict[str, Any]], converted: dict[str, Any]
) -> dict[str, Any]:
    """0.1.0 / 0.2.0, as the CNI library converts: the first address of each family as ``ip4``
    / ``ip6`` (``ip``, ``gateway``), the routes of that family under it, no interfaces."""
    families: dict[str, dict[str, Any]] = {}
    for ip in ips:
        family = "ip6" if ":" in ip["address"] else "ip4"
        if family not in families:
            families[family] = {"ip": ip["address"]}
            if "gateway" in ip:
                families[family]["gateway"] = ip["gateway"]
    if not families:
        raise _invalid_reply(
            f"the ADD result holds no address, which a {converted['cniVersion']} result needs"
        )
    for route in result.get("routes", []):
        destination = route.get("dst")
        family = "ip6" if isinstance(destination, str) and ":" in destination else "ip4"
        if family in families:
            kept = {key: route[key] for key in ("dst", "gw") if key in route}
            families[family].setdefault("routes", []).append(kept)
    for family in ("ip4", "ip6"):
        if family in families:
            converted[family] = families[family]
    if "dns" in result:
        converted["dns"] = result["dns"]
    return converted


# --- DEL while the daemon is down: a durable record for the daemon to replay ---


def spooled_ips(config: dict[str, Any]) -> list[str]:
    """The addresses in prevResult, without prefix length; whatever is not an address is skipped."""
    import ipaddress

    previous = config.get("prevResult")
    found: list[str] = []
    for ip in previous.get("ips", []) if isinstance(previous, dict) else []:
        address = ip.get("address") if isinstance(ip, dict) else None
        if not isinstance(address, str):
            continue
        try:
            text = str(ipaddress.ip_interface(address).ip)
        except ValueError:
            continue
        if text not in found:
            found.append(text)
    return found


def spool_del(call: Call) -> str:
    """Write the DEL record (temp file, fsync, rename, directory fsync); returns its path."""
    import os

    cni = call.cni
    stem = "".join(
        character if character in FILE_NAME_CHARACTERS else "_"
        for character in f"{cni['container_id']}-{cni['ifname']}"
    )
    record = {
        "version": PROTOCOL_VERSION,
        "network": call.config["name"],
        "container_id": cni["container_id"],
        "ifname": cni["ifname"],
        "ips": spooled_ips(call.config),
        "spooled_at": time.time(),
    }
    path = os.path.join(call.spool_dir, stem + ".json")
    temporary = os.path.join(call.spool_dir, f".{stem}.{os.getpid()}.tmp")
    try:
        os.makedirs(call.spool_dir, mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "wb", closefd=False) as stream:
                stream.write((encode_json(record) + "\n").encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        directory = os.open(call.spool_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise CniError(
            TRY_AGAIN_LATER,
            f"the vpccni daemon is unreachable and the DEL record cannot be written to "
            f"{call.spool_dir}",
            f"{error}; the runtime should retry DEL; check VPCCNI_SPOOL_DIR / spoolDir",
        ) from None
    return path


# --- the verbs: one function each, like cmdAdd, cmdDel, ... in the reference plugins ---


def write_result(stdout: Output, text: str) -> None:
    """Print a result; a stdout that is closed or broken is CNI error 5 (it cannot be printed
    either: main notes it on stderr and exits 1)."""
    try:
        stdout.write(text)
        stdout.flush()
    except (OSError, ValueError) as error:
        raise CniError(
            IO_FAILURE,
            "cannot write the result on stdout",
            f"{error}; the runtime reads the result there: it must keep the plugin's stdout open",
        ) from None


def cmd_add(call: Call, stdout: Output, stderr: Output) -> None:
    """ADD: the daemon assigns an address (and wires the pod it is passed); print its result."""
    enter_pod_namespace(call)
    try:
        result = ask_daemon(call)
    finally:
        release_fds(call)
    text = encode_json(convert_result(result, call.version)) + "\n"
    call.outcome = ", ".join(str(ip.get("address")) for ip in result.get("ips", []))
    write_result(stdout, text)


def cmd_del(call: Call, stdout: Output, stderr: Output) -> None:
    """DEL: the daemon releases the pod's address; while it is down, a spooled record will."""
    try:
        send(call)
    except DaemonUnreachable as down:
        path = spool_del(call)
        stderr.write(
            f"vpccni-cni: daemon unreachable at {call.socket_path} ({down}); "
            f"DEL recorded in {path} for replay when it starts\n"
        )


def cmd_check(call: Call, stdout: Output, stderr: Output) -> None:
    """CHECK: the daemon compares the pod it is passed with prevResult; a difference is its
    error."""
    enter_pod_namespace(call)
    try:
        ask_daemon(call)
    finally:
        release_fds(call)


def cmd_version(stdout: Output) -> None:
    """VERSION: the versions this plugin speaks; needs no stdin and no daemon."""
    write_result(stdout, VERSION_REPLY)


def cmd_status(call: Call, stdout: Output, stderr: Output) -> None:
    """STATUS: the daemon must answer ready; down or not ready is error 50."""
    result = ask_daemon(call, NOT_AVAILABLE)
    if result.get("ready") is not True:
        raise CniError(NOT_AVAILABLE, "the vpccni daemon is not ready", _shown(result, 200))


def cmd_gc(call: Call, stdout: Output, stderr: Output) -> None:
    """GC: the daemon releases this network's addresses not in cni.dev/valid-attachments."""
    ask_daemon(call)


VERBS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}


# --- main: pick the verb, print a CNI error for every refusal ---


def dispatch(
    environ: Mapping[str, str],
    stdin: BinaryIO | None,
    stdout: Output,
    stderr: Output,
    trace: dict[str, Any] | None = None,
) -> None:
    """Run the verb CNI_COMMAND names; raises CniError for every refusal.

    ``trace`` receives the checked call (``"call"``), for the plugin log.
    """
    command = environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        cmd_version(stdout)
        return
    verb = VERBS.get(command)
    if verb is None:
        raise CniError(
            INVALID_ENVIRONMENT,
            f"unknown CNI_COMMAND {_shown(command)}" if command else "CNI_COMMAND is not set",
            "expected one of ADD, DEL, CHECK, VERSION, STATUS, GC",
        )
    try:
        call = read_call(command, environ, stdin)
    except CniError as error:
        if command != "DEL":
            raise
        stderr.write(f"vpccni-cni: DEL of input that ADD refuses: nothing to do ({error.msg})\n")
        return
    if trace is not None:
        trace["call"] = call
    try:
        verb(call, stdout, stderr)
    except CniError as error:
        error.cni_version = call.version
        raise


def print_error(stdout: Output, error: CniError, stderr: Output | None = None) -> int:
    """The CNI error JSON on stdout (if stdout is gone, a one-line note on ``stderr``); returns
    the exit status."""
    body = {
        "cniVersion": error.cni_version,
        "code": error.code,
        "msg": error.msg,
        "details": error.details,
    }
    try:
        text = encode_json(body)
    except Exception:  # the codec itself failed: a fixed text is still valid JSON
        text = f'{{"cniVersion": "{SPEC_VERSION}", "code": {error.code:d}, "msg": "vpccni-cni"}}'
    try:
        stdout.write(text + "\n")
        stdout.flush()
    except (OSError, ValueError) as gone:  # the exit status still tells; stderr says why
        if stderr is not None:
            stderr.write(
                f"vpccni-cni: cannot print the CNI error on stdout ({gone}): "
                f"error {error.code}: {error.msg}\n"
            )
    return 1


# --- the plugin log: one line per call, never a reason for the call to fail ---

LOG_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


def log_target(environ: Mapping[str, str], call: Call | None) -> tuple[str, int]:
    """(file, level) from AWS_VPC_K8S_PLUGIN_LOG_FILE/_LEVEL, else the config's pluginLogFile/
    pluginLogLevel (what upstream's installer writes); no file: no log."""
    config = call.config if call is not None else {}
    path = environ.get("AWS_VPC_K8S_PLUGIN_LOG_FILE") or config.get("pluginLogFile") or ""
    level = environ.get("AWS_VPC_K8S_PLUGIN_LOG_LEVEL") or config.get("pluginLogLevel") or ""
    text = path if isinstance(path, str) else ""
    if not text.startswith("/") and text not in ("stdout", "stderr"):
        text = ""  # a relative path would land wherever the runtime runs the plugin
    return text, LOG_LEVELS.get(str(level).lower(), 10)  # upstream's default: debug


def log_line(call: Call | None, command: str, failure: CniError | None, seconds: float) -> str:
    """The line for one call: what was asked and what came of it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    who = ""
    if call is not None:
        cni = call.cni
        who = (
            f" network={call.config.get('name')} container={cni.get('container_id', '')} "
            f"ifname={cni.get('ifname', '')} netns={cni.get('netns', '')}"
        )
    if failure is not None:
        result = f"error {failure.code}: {failure.msg}" + (
            f" ({failure.details})" if failure.details else ""
        )
    else:
        result = "ok" + (f" {call.outcome}" if call is not None and call.outcome else "")
    return (
        f"{stamp} vpccni-cni[{_pid()}] {command or '-'}{who} -> {result} "
        f"({seconds * 1000:.0f} ms)\n"
    )


def _pid() -> int:
    import posix

    return posix.getpid()


def log_call(
    environ: Mapping[str, str],
    call: Call | None,
    failure: CniError | None,
    seconds: float,
    stderr: Output,
) -> None:
    """Append the call's line to the plugin log; any failure to log is swallowed."""
    try:
        path, level = log_target(environ, call)
        if not path or (failure is None and level > 20):
            return
        line = log_line(call, environ.get("CNI_COMMAND", ""), failure, seconds)
        if path in ("stdout", "stderr"):  # stdout carries the CNI result: never write there
            stderr.write(line)
            return
        _append(path, line.encode("utf-8", "backslashreplace"))
    except Exception:
        pass  # the log must never fail the CNI call


def _append(path: str, data: bytes) -> None:
    import posix

    flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC
    try:
        descriptor = posix.open(path, flags, 0o600)
    except FileNotFoundError:
        import os

        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        descriptor = posix.open(path, flags, 0o600)
    try:
        posix.write(descriptor, data)
    finally:
        posix.close(descriptor)


def process_environ() -> dict[str, str]:
    """The CNI_* and VPCCNI_* variables of this process (``os.environ`` without ``os``)."""
    import posix

    return {
        key.decode("utf-8", "surrogateescape"): value.decode("utf-8", "surrogateescape")
        for key, value in posix.environ.items()
        if key.startswith((b"CNI_", b"VPCCNI_", b"AWS_VPC_K8S_PLUGIN_"))
    }


class Descriptor:
    """stdout or stderr written straight to its descriptor with write(2), as the static plugin
    does: nothing is buffered, so nothing is left for the interpreter to flush (and fail on) at
    exit. A descriptor that was closed when the plugin started (Python then has no
    ``sys.stdout``/``sys.stderr``) is ``-1``: writing fails with EBADF, as writing to it would,
    without touching whatever file took its number since. ``quiet`` (stderr) drops failures: a
    note that cannot be written never fails the call."""

    def __init__(self, descriptor: int, quiet: bool = False) -> None:
        self.descriptor = descriptor
        self.quiet = quiet

    def write(self, text: str, /) -> int:
        import posix

        data = text.encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[posix.write(self.descriptor, data) :]
        except OSError:
            if not self.quiet:
                raise
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""


def main(
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    stdout: Output | None = None,
    stderr: Output | None = None,
) -> int:
    """The plugin: returns the exit status; prints a result, nothing, or a CNI error.

    Closed or broken standard streams end in an exit status, never a traceback. stdout gone:
    a result that cannot be printed is error 5, and an error that cannot be printed is a
    one-line note on stderr, exit status 1 (DEL, CHECK, STATUS and GC print nothing on success,
    so they still succeed with 0). stderr gone only loses its notes. stdin closed reads as
    empty (6); stdin that cannot be read is 5. (stdin a directory stops the interpreter before
    this file runs: CPython refuses it while it sets up ``sys.stdin``, ``init_sys_streams``,
    with "Fatal Python error" on stderr and exit status 1; the static plugin answers 5.)
    """
    out = stdout if stdout is not None else Descriptor(1 if sys.stdout is not None else -1)
    err = stderr if stderr is not None else Descriptor(2 if sys.stderr is not None else -1, True)
    started = time.monotonic()
    trace: dict[str, Any] = {}
    failure: CniError | None = None
    try:
        if environ is None:
            environ = process_environ()
        if stdin is None and environ.get("CNI_COMMAND") != "VERSION" and sys.stdin is not None:
            stdin = sys.stdin.buffer
        dispatch(environ, stdin, out, err, trace)
        out.flush()
        return 0
    except CniError as error:
        failure = error
        return print_error(out, error, err)
    except Exception as error:  # last line of defence: still a CNI error, never a traceback
        failure = CniError(
            TRY_AGAIN_LATER,
            f"vpccni-cni failed unexpectedly: {type(error).__name__}",
            f"{str(error)[:200]}; this is a vpccni bug - please report it",
        )
        return print_error(out, failure, err)
    finally:
        log_call(environ or {}, trace.get("call"), failure, time.monotonic() - started, err)


if __name__ == "__main__":
    sys.exit(main())
