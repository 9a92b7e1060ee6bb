"""``vpccni install-cni``: put the CNI plugin and the network config where the runtime looks.

Upstream's node entrypoint order, kept: first the plugin (``vpccni-cni`` in the bin dir: the
single-file plugin ``vpccni/plugin/cni.py`` copied verbatim behind a shebang for a fast
interpreter, written atomically and then run once for VERSION), then - only once the daemon
answers a ``status`` request over its socket - the conflist ``10-vpccni.conflist``, whose
appearance is what tells the runtime that the node's network is ready.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from vpccni.errors import InvalidInput, VpccniError
from vpccni.plugin import cni

PLUGIN_NAME = "vpccni-cni"
CONFLIST_NAME = "10-vpccni.conflist"
DEBIAN_PYTHON = "/usr/bin/python3"
INTERPRETER_FLAGS = "-IS"  # isolated (no env, no user site, no script dir on sys.path), no site
CONFLIST_VERSION = "1.0.0"
CONFLIST_VERSIONS = ["1.0.0", "1.1.0"]
MTU_RANGE = (576, 9001)
POLL_SECONDS = 0.5


def register(subparsers: Any) -> None:
    """Add the ``install-cni`` subcommand."""
    parser = subparsers.add_parser(
        "install-cni",
        help="install the vpccni-cni plugin and, once ipamd answers, its network config",
        description="Write the plugin vpccni-cni into the CNI bin dir (atomically), wait until "
        "the daemon answers a status request on its socket, then write 10-vpccni.conflist "
        "(vpccni-cni chained with portmap, and bandwidth with --bandwidth) into the conf dir.",
    )
    parser.add_argument("--bin-dir", required=True, type=Path, help="e.g. /opt/cni/bin")
    parser.add_argument("--conf-dir", required=True, type=Path, help="e.g. /etc/cni/net.d")
    parser.add_argument("--socket", default=cni.DEFAULT_SOCKET, help="the daemon's socket")
    parser.add_argument("--spool-dir", default=cni.DEFAULT_SPOOL_DIR, help="DEL records")
    parser.add_argument("--network-name", default="aws-cni")
    parser.add_argument("--mtu", type=int, default=9001, help="pod MTU, 576-9001")
    parser.add_argument(
        "--interpreter",
        help=f"Python for the plugin's shebang (default {DEBIAN_PYTHON} when present, else "
        "this Python); never a shell shim such as pyenv's",
    )
    parser.add_argument("--bandwidth", action="store_true", help="chain the bandwidth plugin")
    parser.add_argument("--wait-seconds", type=float, default=60.0, help="how long to wait")
    parser.add_argument(
        "--no-wait", action="store_true", help="write the conflist without asking the daemon"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> str:
    """Install the plugin, wait for the daemon, install the conflist; say what was done."""
    bin_dir = existing_directory(args.bin_dir, "--bin-dir")
    conf_dir = existing_directory(args.conf_dir, "--conf-dir")
    check_options(args)
    interpreter = choose_interpreter(args.interpreter)
    plugin = install_plugin(bin_dir, interpreter)
    if not args.no_wait:
        wait_for_daemon(args.socket, args.network_name, args.wait_seconds)
    conflist = render_conflist(
        args.network_name, args.socket, args.spool_dir, args.mtu, bandwidth=args.bandwidth
    )
    conflist_path = conf_dir / CONFLIST_NAME
    write_atomically(conflist_path, conflist.encode(), 0o644)
    chain = " -> ".join(plugin["type"] for plugin in json.loads(conflist)["plugins"])
    return (
        f"installed {plugin} (#!{interpreter} {INTERPRETER_FLAGS})\n"
        f"installed {conflist_path} (network {args.network_name}: {chain}; "
        f"socket {args.socket})"
    )


def existing_directory(path: Path, flag: str) -> Path:
    """``path`` if it is a writable directory, else a one-line InvalidInput."""
    if not path.exists():
        raise InvalidInput(f"{flag} {path} does not exist; create it or pass the right directory")
    if not path.is_dir():
        raise InvalidInput(f"{flag} {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput(f"{flag} {path} is not writable by this user; run as root")
    return path


def check_options(args: argparse.Namespace) -> None:
    """The values that end up in the conflist, checked like the plugin will check them."""
    if not cni.is_cni_name(args.network_name):
        raise InvalidInput(
            f"--network-name {args.network_name!r}: use letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    for flag, value, limit in (
        ("--socket", args.socket, cni.MAX_SOCKET_PATH),
        ("--spool-dir", args.spool_dir, 4096),
    ):
        if why := cni.bad_path(value, limit):
            raise InvalidInput(f"{flag} {value!r} {why}")
    low, high = MTU_RANGE
    if not low <= args.mtu <= high:
        raise InvalidInput(f"--mtu {args.mtu} is outside {low}-{high}")
    if args.wait_seconds < 0:
        raise InvalidInput("--wait-seconds must not be negative")


def choose_interpreter(given: str | None) -> str:
    """The interpreter for the shebang: given, else Debian's python3, else this one."""
    if given is None:
        given = DEBIAN_PYTHON if os.access(DEBIAN_PYTHON, os.X_OK) else sys.executable
    if not given.startswith("/") or any(character.isspace() for character in given):
        raise InvalidInput(f"--interpreter {given!r} must be an absolute path without spaces")
    if not os.path.isfile(given) or not os.access(given, os.X_OK):
        raise InvalidInput(f"--interpreter {given} is not an executable file")
    with open(given, "rb") as stream:
        if stream.read(2) == b"#!":
            raise InvalidInput(
                f"--interpreter {given} is a script (a shim such as pyenv's costs ~200 ms per "
                "pod); give the real interpreter binary, e.g. /usr/bin/python3"
            )
    return given


def plugin_source() -> bytes:
    """The plugin module's source, exactly as shipped."""
    return resources.files("vpccni.plugin").joinpath("cni.py").read_bytes()


def install_plugin(bin_dir: Path, interpreter: str) -> Path:
    """Write ``vpccni-cni`` (shebang + plugin source) atomically, then run it for VERSION."""
    path = bin_dir / PLUGIN_NAME
    data = f"#!{interpreter} {INTERPRETER_FLAGS}\n".encode() + plugin_source()
    write_atomically(path, data, 0o755)
    try:
        done = subprocess.run(
            [str(path)],
            env={"CNI_COMMAND": "VERSION", "PATH": os.defpath},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        answer = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        raise VpccniError(f"the installed plugin {path} does not run: {error}") from None
    versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
    if done.returncode != 0 or versions != list(cni.SUPPORTED_VERSIONS):
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise VpccniError(
            f"the installed plugin {path} did not answer VERSION with {interpreter} "
            f"(exit {done.returncode}; {detail[0]}); try --interpreter with Python 3.11 or later"
        )
    return path


def wait_for_daemon(socket_path: str, network: str, wait_seconds: float) -> None:
    """Poll the daemon with ``status`` until it answers ready, or fail after ``wait_seconds``."""
    call = cni.Call("STATUS", cni.SPEC_VERSION, {"cniVersion": cni.SPEC_VERSION, "name": network})
    call.cni = {"container_id": "", "netns": "", "ifname": "", "args": "", "path": ""}
    payload = cni.request_bytes(call)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            line = cni.exchange(socket_path, payload, cni.TIMEOUTS["STATUS"])
            if cni.parse_reply(line).get("ready") is True:
                return
            last = "the daemon says it is not ready"
        except cni.DaemonUnreachable as error:
            last = f"unreachable: {error}"
        except cni.CniError as error:
            last = f"{error.msg} (code {error.code})"
        if time.monotonic() + POLL_SECONDS > deadline:
            raise VpccniError(
                f"the daemon at {socket_path} did not answer ready within {wait_seconds:g} s "
                f"({last}); start `vpccni ipamd`, or pass --no-wait to write the conflist anyway"
            )
        time.sleep(POLL_SECONDS)


def render_conflist(
    network: str, socket_path: str, spool_dir: str, mtu: int, *, bandwidth: bool
) -> str:
    """The network configuration list: vpccni-cni, then portmap (and bandwidth)."""
    plugins: list[dict[str, Any]] = [
        {"type": PLUGIN_NAME, "mtu": mtu, "socket": socket_path, "spoolDir": spool_dir},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]
    if bandwidth:
        plugins.append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    document = {
        "cniVersion": CONFLIST_VERSION,
        "cniVersions": CONFLIST_VERSIONS,
        "name": network,
        "plugins": plugins,
    }
    return json.dumps(document, indent=2) + "\n"


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise VpccniError(f"cannot write {path}: {error.strerror or error}") from None
