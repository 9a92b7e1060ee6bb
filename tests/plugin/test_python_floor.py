"""The plugin runs on Python 3.8 and later: the oldest interpreter it supports is held here.

``vpccni install-cni`` puts the plugin behind whatever ``/usr/bin/python3`` the node has, so the
floor matters. Always, statically: the source parses with the 3.8 grammar; it imports only
modules 3.8 has and uses only attributes of them that 3.8 has (explicit allow-lists below, each
entry with where it comes from), except those newer ones it guards with ``hasattr``; and it uses
no newer runtime feature that the 3.8 grammar accepts but a 3.8 interpreter would fail on (dict
``|``, subscripted builtins outside annotations, ``str.removeprefix``, ...). In addition, with
each 3.8 interpreter installed (``~/.pyenv/versions/3.8*/bin/python3.8``, ``/usr/bin/python3.8``;
without one, the interpreter install-cni chooses): the allow-lists are checked against it, and
the installed plugin answers VERSION, spools a DEL while the daemon is down, and (root) ADDs and
CHECKs a pod in a real namespace against the fake daemon - through ``ctypes``' ``setns`` there,
since ``posix.setns`` is 3.12+.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import Runtime, network_config
from vpccni.cli import install_cni_cmd
from vpccni.plugin import cni

FLOOR = (3, 8)
SOURCE = Path(cni.__file__).read_text()
TREE = ast.parse(SOURCE)

# Every module the plugin imports (lazily included), all in Python 3.8's standard library.
# Provenance: the 3.8 module index, https://docs.python.org/3.8/py-modindex.html, and for the C
# halves CPython 3.8's Modules/ directory.
MODULES = {
    "__future__": "module index (annotations: 3.7)",
    "sys": "module index",
    "time": "module index",
    "posix": "module index (Unix); the C half of os, Modules/posixmodule.c",
    "os": "module index",
    "_json": "Modules/_json.c, json's C accelerator",
    "json": "module index",
    "_socket": "Modules/socketmodule.c, the C half of socket",
    "ipaddress": "module index (3.3)",
    "ctypes": "module index",
    "collections": "module index (collections.abc, under TYPE_CHECKING only)",
    "typing": "module index (under TYPE_CHECKING only)",
}

# Every attribute the plugin reads from a module, present in 3.8. Provenance: the 3.8 library
# reference (docs.python.org/3.8/library/<module>.html) unless noted; posix mirrors os.
ATTRIBUTES = {
    "posix": {
        "open": "os.open",
        "close": "os.close",
        "write": "os.write",
        "getpid": "os.getpid",
        "strerror": "os.strerror",
        "environ": "posix.environ: bytes keys and values (posix module page)",
        "O_RDONLY": "os flags",
        "O_WRONLY": "os flags",
        "O_APPEND": "os flags",
        "O_CREAT": "os flags",
        "O_CLOEXEC": "os flags, new in 3.3",
    },
    "os": {
        "open": "os.open",
        "close": "os.close",
        "fdopen": "os.fdopen",
        "fsync": "os.fsync",
        "getpid": "os.getpid",
        "makedirs": "os.makedirs (exist_ok: 3.2)",
        "replace": "os.replace, new in 3.3",
        "unlink": "os.unlink",
        "path": "os.path (join, lexists, dirname)",
        "O_RDONLY": "os flags",
        "O_WRONLY": "os flags",
        "O_CREAT": "os flags",
        "O_TRUNC": "os flags",
        "O_NOFOLLOW": "os flags (Unix)",
        "O_DIRECTORY": "os flags (Unix)",
        "O_CLOEXEC": "os flags, new in 3.3",
    },
    "_socket": {
        "socket": "socket.socket",
        "timeout": "socket.timeout: an OSError subclass; an alias of TimeoutError only in 3.10+",
        "AF_UNIX": "socket constants",
        "AF_NETLINK": "socket constants (Linux)",
        "NETLINK_ROUTE": "socket constants (Linux)",
        "SOCK_STREAM": "socket constants",
        "SOCK_DGRAM": "socket constants",
        "SOCK_CLOEXEC": "socket constants, new in 3.2",
        "SOL_SOCKET": "socket constants",
        "SCM_RIGHTS": "socket constants, with sendmsg (3.3)",
    },
    "sys": {
        "exit": "sys.exit",
        "stdin": "sys.stdin",
        "stdout": "sys.stdout",
        "stderr": "sys.stderr",
        "byteorder": "sys.byteorder",
    },
    "time": {
        "monotonic": "time.monotonic, new in 3.3",
        "time": "time.time",
        "strftime": "time.strftime",
        "gmtime": "time.gmtime",
    },
    "_json": {
        "make_scanner": "Modules/_json.c (c_make_scanner)",
        "make_encoder": "Modules/_json.c (c_make_encoder, 9 arguments as in 3.11)",
        "encode_basestring_ascii": "Modules/_json.c",
    },
    "json": {"JSONDecoder": "json.JSONDecoder", "dumps": "json.dumps"},
    "ipaddress": {"ip_interface": "ipaddress.ip_interface"},
    "ctypes": {"CDLL": "ctypes.CDLL (use_errno: 2.6)", "get_errno": "ctypes.get_errno (2.6)"},
}

# Attributes newer than the floor, each allowed only behind the guard that makes 3.8 skip it.
NEWER = {("posix", "setns"): ((3, 12), 'if hasattr(posix, "setns"):')}

# Methods of builtins newer than the floor that the 3.8 grammar cannot catch.
NEWER_METHODS = {
    "removeprefix": "3.9",
    "removesuffix": "3.9",
    "bit_count": "3.10",
    "is_relative_to": "3.9",
    "with_stem": "3.9",
    "randbytes": "3.9",
    "to_thread": "3.9",
}
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def imported_modules() -> set[str]:
    names = set()
    for node in ast.walk(TREE):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return names


def module_attributes() -> set[tuple[str, str]]:
    return {
        (node.value.id, node.attr)
        for node in ast.walk(TREE)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in MODULES
    }


def annotation_nodes() -> set[int]:
    """ids of every node inside an annotation (never evaluated: ``from __future__``)."""
    inside: set[int] = set()
    for node in ast.walk(TREE):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(child) for child in ast.walk(annotation))
    return inside


# --- (a) always: the source against the 3.8 language and library ---


def test_the_docstring_states_the_floor() -> None:
    assert "Oldest Python: 3.8" in (cni.__doc__ or "")
    assert "from __future__ import annotations" in SOURCE  # annotations stay unevaluated


def test_the_source_parses_with_the_python_3_8_grammar() -> None:
    ast.parse(SOURCE, feature_version=FLOOR)  # walrus yes; match, except*, PEP 695 no


def test_every_import_is_a_python_3_8_module() -> None:
    unknown = imported_modules() - set(MODULES)
    assert not unknown, f"add each to MODULES with where 3.8 has it, or drop it: {unknown}"


def test_every_module_attribute_exists_in_python_3_8_or_is_guarded() -> None:
    for module, attribute in sorted(module_attributes()):
        if (module, attribute) in NEWER:
            version, guard = NEWER[(module, attribute)]
            assert version > FLOOR, (module, attribute)
            assert guard in SOURCE, (module, attribute)
            continue
        assert attribute in ATTRIBUTES.get(module, {}), (
            f"{module}.{attribute} is not in the 3.8 allow-list; add it with its provenance "
            "if 3.8 has it, else guard it and list it in NEWER"
        )


def test_no_runtime_feature_newer_than_python_3_8() -> None:
    annotations = annotation_nodes()
    problems = []
    for node in ast.walk(TREE):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            operands = (node.left, node.right)
            if any(isinstance(o, ast.Dict | ast.DictComp) for o in operands):
                problems.append(f"line {node.lineno}: dict | dict (3.9)")
            if id(node) not in annotations and any(
                isinstance(o, ast.Name) and o.id in BUILTIN_GENERICS | {"None", "str", "int"}
                for o in operands
            ):
                problems.append(f"line {node.lineno}: X | Y types at runtime (3.10)")
        if isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS:
            problems.append(f"line {node.lineno}: .{node.attr} ({NEWER_METHODS[node.attr]})")
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in BUILTIN_GENERICS
            and id(node) not in annotations
        ):
            problems.append(f"line {node.lineno}: {node.value.id}[...] at runtime (3.9)")
        if isinstance(node, ast.Call) and any(k.arg == "strict" for k in node.keywords):
            problems.append(f"line {node.lineno}: strict= (zip: 3.10)")
    assert problems == []


# --- (b) with a real 3.8 interpreter where one is installed ---


def floor_interpreters() -> list[str]:
    """Installed 3.8 interpreters; without one, the interpreter install-cni would choose."""
    candidates = sorted(
        str(path) for path in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8")
    )
    candidates += [path for path in ("/usr/bin/python3.8",) if os.access(path, os.X_OK)]
    return candidates or [install_cni_cmd.choose_interpreter(None)]


INTERPRETERS = floor_interpreters()


def version_of(interpreter: str) -> tuple[int, int]:
    done = subprocess.run(
        [interpreter, "-IS", "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor = done.stdout.split()
    return int(major), int(minor)


@pytest.fixture(params=INTERPRETERS, ids=[Path(path).name for path in INTERPRETERS])
def installed(request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path]]:
    """(the plugin installed behind this interpreter, a short scratch directory)."""
    directory = Path(tempfile.mkdtemp(prefix="vpccni-floor-", dir="/tmp"))
    try:
        yield install_cni_cmd.install_plugin(directory, request.param), directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_the_allow_lists_hold_on_the_interpreter(installed: tuple[Path, Path]) -> None:
    plugin, _ = installed
    interpreter = plugin.read_text().splitlines()[0][2:].split()[0]
    wanted = {module: sorted(names) for module, names in ATTRIBUTES.items()}
    probe = (
        "import importlib, json, sys\n"
        "wanted = json.loads(sys.argv[1])\n"
        "print(json.dumps({m: [a for a in names if not hasattr(importlib.import_module(m), a)]"
        " for m, names in wanted.items()}))\n"
    )
    done = subprocess.run(
        [interpreter, "-IS", "-c", probe, json.dumps(wanted)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {module: [] for module in wanted}
    for module in MODULES:
        subprocess.run([interpreter, "-IS", "-c", f"import {module}"], check=True)
    if version_of(interpreter) < (3, 12):
        check = "import posix; print(hasattr(posix, 'setns'))"
        setns = subprocess.run(
            [interpreter, "-IS", "-c", check], capture_output=True, text=True, check=True
        )
        assert setns.stdout.strip() == "False"  # so the ctypes path is the one exercised


def test_version_and_a_spooled_del_on_the_interpreter(installed: tuple[Path, Path]) -> None:
    plugin, directory = installed
    version = subprocess.run(
        [str(plugin)], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False
    )
    assert (version.returncode, version.stdout.decode()) == (0, cni.VERSION_REPLY)
    runtime = Runtime(plugin, directory / "no-daemon.sock", directory / "spool", "")
    previous = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.1.5/32"}]}
    outcome = runtime.call("DEL", network_config("1.0.0", prevResult=previous), "c0ffee")
    assert (outcome.status, outcome.stdout) == (0, ""), outcome.stderr
    (record,) = (directory / "spool").glob("*.json")
    written = json.loads(record.read_text())
    assert record.name == "c0ffee-eth0.json"
    assert {k: written[k] for k in ("network", "container_id", "ifname", "ips")} == {
        "network": "aws-cni",
        "container_id": "c0ffee",
        "ifname": "eth0",
        "ips": ["10.0.1.5"],
    }


def test_add_and_check_pass_the_namespace_on_the_interpreter(
    installed: tuple[Path, Path],
) -> None:
    """The descriptor path (setns through ctypes below 3.12, sendmsg with SCM_RIGHTS) and the
    0.4.0 result conversion, on the interpreter itself."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI must run the plugin tests as root: ADD enters a network namespace")
        pytest.skip("ADD enters a network namespace: needs root")
    plugin, directory = installed
    name = f"vt-floor-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    daemon = FakeDaemon(directory / "ipamd.sock").start()
    try:
        netns = f"/var/run/netns/{name}"
        runtime = Runtime(plugin, daemon.socket_path, directory / "spool", netns)
        added = runtime.call("ADD", network_config("0.4.0"))
        assert added.status == 0, added.stdout + added.stderr
        assert added.json()["ips"][0]["version"] == "4"
        checked = runtime.call("CHECK", network_config("0.4.0", prevResult=added.json()))
        assert checked.status == 0, checked.stdout + checked.stderr
        assert [request["fds"] for request in daemon.requests] == [["netns", "netlink"]] * 2
        for namespace, netlink in daemon.passed:
            assert namespace["netns"]
            assert namespace["netns_inode"] == os.stat(netns).st_ino
            assert netlink["netns_inode"] == namespace["netns_inode"]
    finally:
        daemon.stop()
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
