"""Parity: the static plugin (plugin-static/) answers exactly as cni.py, the reference.

Each case runs both installed plugins with the same environment and stdin, against the same
daemon (the fake, a scripted socket that replies with given bytes, or none), and compares what a
runtime and the daemon see: exit status, stdout and stderr byte for byte, the request line the
daemon receives byte for byte (and the descriptors passed with it), the DEL spool records and
the plugin log (timestamps, pids and milliseconds aside). Hand-picked cases pin each message,
limit and conversion (both sides of every nesting limit, Python's JSON and UTF-8 error texts,
``repr`` of every value type, ``ipaddress`` forms in spooled addresses); generated cases reuse
test_fuzz.py's broken inputs. ADD and CHECK enter a real network namespace, so this needs root.
"""

from __future__ import annotations

import array
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import POD_ARGS, Outcome, exec_plugin
from tests.plugin.test_fuzz import FUZZ_SETTINGS, cases

PARITY_CASES = int(os.environ.get("VPCCNI_PARITY_CASES", "100"))
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ vpccni-cni\[\d+\] ")
MILLISECONDS = re.compile(r"\(\d+ ms\)\n")
TEMPORARY = re.compile(r"\.\d+\.tmp")
SOCKET_INODE = re.compile(r"socket:\[\d+\]")
EMPTY_RESULT = b'{"version": 1, "ok": true, "result": {}}\n'
EVERY_VERSION = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def config(version: str = "1.0.0", **extra: Any) -> bytes:
    return json.dumps(
        {"cniVersion": version, "name": "aws-cni", "type": "vpccni-cni", **extra}
    ).encode()


def raw_config(body: str) -> bytes:
    """A config with ``body`` spliced in as the last member (for JSON Python cannot dump)."""
    return ('{"cniVersion": "1.0.0", "name": "aws-cni", ' + body + "}").encode()


# --- a daemon that replies with given bytes and records what it receives ---


@dataclass
class Scripted:
    """A Unix socket answering each connection with ``reply`` (None: close without a word)."""

    path: Path
    reply: bytes | None = EMPTY_RESULT
    received: list[bytes] = field(default_factory=list)
    passed: list[list[str]] = field(default_factory=list)

    def serve(self) -> Callable[[], None]:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(16)
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    connection, _ = server.accept()
                except OSError:
                    return
                with connection:
                    self.answer(connection)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            server.shutdown(socket.SHUT_RDWR)
            server.close()
            thread.join(5)

        return close

    def answer(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        data = b""
        fds: list[int] = []
        room = socket.CMSG_SPACE(8 * array.array("i").itemsize)
        try:
            while b"\n" not in data:
                chunk, ancillary, _, _ = connection.recvmsg(65536, room)
                for level, kind, payload in ancillary:
                    if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                        received = array.array("i")
                        received.frombytes(payload[: len(payload) - len(payload) % 4])
                        fds.extend(received)
                if not chunk:
                    break
                data += chunk
            self.received.append(data)
            self.passed.append(
                [SOCKET_INODE.sub("socket", os.readlink(f"/proc/self/fd/{fd}")) for fd in fds]
            )
            if self.reply is not None:
                connection.sendall(self.reply)
        finally:
            for fd in fds:
                os.close(fd)


# --- running a case against both plugins ---


@dataclass(frozen=True)
class Seen:
    """Everything one run shows: output, spool records, log, and what the daemon received."""

    status: int
    stdout: str
    stderr: str
    spool: dict[str, Any]
    log: str
    received: tuple[bytes, ...]
    passed: str


def normalized(text: str) -> str:
    return TEMPORARY.sub(".PID.tmp", MILLISECONDS.sub("(N ms)\n", STAMP.sub("T [P] ", text)))


def spool_contents(spool: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(spool.rglob("*")) if spool.is_dir() else []:
        if path.is_file():
            data = path.read_bytes()
            record = json.loads(data)
            assert isinstance(record.pop("spooled_at"), float)
            found[str(path.relative_to(spool))] = (record, path.stat().st_mode & 0o777)
    return found


@dataclass
class Bench:
    """Both plugins, a daemon and a scratch directory; ``compare`` runs one case on each."""

    python: Path
    static: Path
    directory: Path
    netns: str
    daemon: FakeDaemon
    scripted: Scripted

    def env(self, command: str, **changes: str) -> dict[str, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "c0ffee",
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": POD_ARGS,
            "CNI_PATH": "/opt/cni/bin",
            "VPCCNI_SOCKET": str(self.daemon.socket_path),
            "VPCCNI_SPOOL_DIR": str(self.directory / "spool"),
        }
        env.update(changes)
        return {key: value for key, value in env.items() if value != "-"}

    def reset(self) -> None:
        with self.daemon.lock:
            self.daemon.requests.clear()
            self.daemon.passed.clear()
            self.daemon.pods.clear()
            self.daemon.free = [f"10.0.1.{n}" for n in range(1, 255)]
        self.scripted.received.clear()
        self.scripted.passed.clear()
        for name in ("spool", "log"):
            shutil.rmtree(self.directory / name, ignore_errors=True)

    def run(self, plugin: Path, env: dict[str, str], stdin: bytes, redirect: str = "") -> Seen:
        self.reset()
        outcome: Outcome = exec_redirected(plugin, env, stdin, redirect)
        log = self.directory / "log" / "plugin.log"
        requests = [json.dumps(request) for request in self.daemon.requests]
        passed = json.dumps([self.scripted.passed, self.daemon.passed])
        return Seen(
            outcome.status,
            normalized(outcome.stdout),
            normalized(outcome.stderr),
            spool_contents(self.directory / "spool"),
            normalized(log.read_text(errors="backslashreplace")) if log.exists() else "",
            tuple(self.scripted.received) + tuple(r.encode() for r in requests),
            SOCKET_INODE.sub("socket", passed),
        )

    def compare(self, env: dict[str, str], stdin: bytes, redirect: str = "") -> Seen:
        # never the machine's default spool directory (/var/lib/vpccni/del-spool)
        assert env.get("VPCCNI_SPOOL_DIR"), "every case names a spool directory of its own"
        python = self.run(self.python, env, stdin, redirect)
        static = self.run(self.static, env, stdin, redirect)
        assert static == python, (
            f"env={ {k: v[:100] for k, v in env.items()} } stdin={stdin[:200]!r} {redirect}"
        )
        return python


BROKEN_PIPE = "| (a pipe nobody reads)"


def exec_redirected(plugin: Path, env: dict[str, str], stdin: bytes, redirect: str) -> Outcome:
    """``exec_plugin``, with the shell redirection ``redirect`` applied to the plugin (``>&-``:
    stdout closed; ``< /``: stdin a directory; ...), or stdout a pipe whose reader is gone
    (``BROKEN_PIPE``). stdout is captured only while it is the plugin's."""
    if not redirect:
        return exec_plugin(plugin, env, stdin)
    if redirect == BROKEN_PIPE:
        reader, writer = os.pipe()
        os.close(reader)
        try:
            done = subprocess.run(
                [str(plugin)],
                env={"PATH": os.defpath, **env},
                input=stdin,
                stdout=writer,
                stderr=subprocess.PIPE,
                timeout=60,
                check=False,
            )
        finally:
            os.close(writer)
        return Outcome(done.returncode, "", done.stderr.decode())
    done = subprocess.run(
        ["sh", "-c", f'exec "$0" {redirect}', str(plugin)],
        env={"PATH": os.defpath, **env},
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture(scope="module")
def bench(python_plugin: Path, static_plugin: Path, netns: str) -> Iterator[Bench]:
    """One bench for the module: each run resets the daemons' state and the scratch files."""
    directory = Path(tempfile.mkdtemp(prefix="vpccni-", dir="/tmp"))  # short socket paths
    daemon = FakeDaemon(directory / "d.sock").start()
    scripted = Scripted(directory / "s.sock")
    close = scripted.serve()
    try:
        yield Bench(python_plugin, static_plugin, directory, netns, daemon, scripted)
    finally:
        close()
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


# --- stdin: decoding, in Python's words ---

NESTING = [
    # (what, stdin): both sides of each limit the Python plugin has
    *[(f"top-level list {n}", b"[" * n + b"]" * n) for n in (993, 994)],
    *[(f"unterminated {n}", b"[" * n) for n in (991, 992)],
    *[(f"list then extra data {n}", b"[" * n + b"]" * n + b" x") for n in (991, 992)],
    *[
        (f"config holding {n} levels", raw_config('"x": ' + "[" * n + "]" * n))
        for n in (991, 992, 993)
    ],
    *[
        (f"config holding {n} object levels", raw_config('"x": ' + '{"a": ' * n + "1" + "}" * n))
        for n in (991, 992, 993)
    ],
]

BAD_JSON = [
    b"",
    b"   ",
    b"\n\n  x",
    b'{"a":1,}',
    b"[1,]",
    b"[1 2]",
    b'{"a" 1}',
    b'{"a":1 "b":2}',
    b"{1:2}",
    b'"abc',
    b'"a\\x"',
    b'"\\u12"',
    b'"\\ud800\\u12"',
    b'"\\ud800\\uzzzz"',
    b'["\\ud800\\udc00", "\\udc00\\ud800"]',
    b"1e",
    b"1.e5",
    b"-",
    b"-x",
    b"01",
    b"nul",
    b"NaN",
    b"[Infinity]",
    b"-Infinity",
    b'{"a": -Infinityx}',
    b"1e999",
    b"[-1e400, 1]",
    b"1" + b"0" * 400 + b".0",
    b"1" * 4300,
    b"-" + b"1" * 4301,
    b'"\x01"',
    b'\n\n{"a":\n}',
    b'{"a": "b"}\n\n x',
    b"\xc3",
    b"\xe2\x82",
    b"\xe2\x82x",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf0\x9f\x98",
    b"\xf0\x9f\x98x",
    b"\xc0\x80",
    b"\xf5",
    b"\xff",
    b'{"a":"\xf0\x9f\x98\x80 \xe2\x82"}',
    b"[]",
    b'"x"',
    b"1.5",
    b"-0",
    b"true",
    b"null",
    b"{}",
]


@pytest.mark.parametrize(("what", "stdin"), NESTING, ids=[what for what, _ in NESTING])
def test_nesting_limits_match(bench: Bench, what: str, stdin: bytes) -> None:
    bench.compare(bench.env("ADD"), stdin)


@pytest.mark.parametrize("stdin", BAD_JSON, ids=range(len(BAD_JSON)))
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_json_and_utf8_errors_match(bench: Bench, stdin: bytes, command: str) -> None:
    bench.compare(bench.env(command), stdin)


def test_size_limits_match(bench: Bench) -> None:
    body = config()
    bench.compare(bench.env("ADD"), body + b" " * ((1 << 20) - len(body)))  # exactly 1 MiB
    bench.compare(bench.env("ADD"), body + b" " * ((1 << 20) + 1 - len(body)))
    escaped = config(pad="\u00e9" * 200_000)  # 400 kB of UTF-8, over 1 MiB as ASCII JSON
    bench.compare(bench.env("ADD"), escaped)
    bench.compare(bench.env("DEL"), escaped)


# --- the config and the environment, checked in order ---

ODD_VALUES: list[Any] = [
    None,
    1,
    -0.0,
    1.5e-7,
    1e16,
    123456789012345678901234567890,
    True,
    [],
    {},
    [1, {"a": None}],
    "0.3.1",
    "1.1.0 ",
    "\u00e9\u2028\x7f\x85\t'",
    'it\'s "quoted" \\',
    "a" * 200,
    "\udcff",
    "\U0001f600",
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
@pytest.mark.parametrize(
    "key",
    ["cniVersion", "name", "socket", "spoolDir", "mtu", "vethPrefix", "resultStyle", "prevResult"],
)
def test_config_values_are_refused_alike(bench: Bench, key: str, value: Any) -> None:
    body = json.dumps({"cniVersion": "1.0.0", "name": "aws-cni", key: value})
    bench.compare(bench.env("CHECK"), body.encode())


MTUS: list[Any] = ["9001", "576", "575", "9002", "09001", "0000000576", "00000000576", "+1500"]
MTUS += [" 1500", "1500\n", "\u0669001", "\uff11500", "-1", "", 576, 9001, 9002, -0, 10**30]
VETH_PREFIXES: list[Any] = ["eni", "a", "abcd", "abcde", "", "eth", "lo", "vlan", "Eth", "a b"]
VETH_PREFIXES += ["\u00e9", "\U0001f600", "\udcff", "e/n", 5, None, ["eni"]]
RESULT_STYLES: list[Any] = ["upstream", "plain", "", "Plain", "plain ", "\udcff", "p" * 50, 0]


@pytest.mark.parametrize(
    "body",
    [
        config("1.0.0", name=""),
        config("1.0.0", name="-bad"),
        config("1.0.0", name="a" * 253),
        config("1.0.0", name="a" * 254),
        config("1.0.0", socket="/" + "s" * 106),
        config("1.0.0", socket="/" + "s" * 107),
        config("1.0.0", socket="/\u00e9" * 54),
        config("1.0.0", spoolDir="/" + "x" * 4096),
        config("1.0.0", prevResult={"ips": 5}),
        config("1.0.0", prevResult={"ips": None}),
        config("1.0.0", prevResult={}),
        config("1.0.0", prevResult=None),
        config("0.4.0"),
        *[config(version) for version in ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.5.0", "1.0")],
        *[config("1.0.0", mtu=mtu) for mtu in MTUS],
        *[config("1.0.0", vethPrefix=prefix) for prefix in VETH_PREFIXES],
        config("1.0.0", mtu="x", vethPrefix="eth"),
        *[config("1.0.0", resultStyle=style) for style in RESULT_STYLES],
        config("1.0.0", vethPrefix="eth", resultStyle="x"),
        config("1.0.0", resultStyle="x", prevResult=5),
        config("1.1.0", **{"cni.dev/valid-attachments": "x"}),
        config("1.1.0", **{"cni.dev/valid-attachments": [{"containerID": "a"}]}),
        config("1.1.0", **{"cni.dev/valid-attachments": [{"containerID": 1, "ifname": "e"}]}),
        config("1.0.0", **{"cni.dev/valid-attachments": []}),
        raw_config('"name": "dup", "name": "aws-cni"'),
    ],
)
@pytest.mark.parametrize("command", ["ADD", "CHECK", "GC", "STATUS", "DEL"])
def test_config_checks_match(bench: Bench, command: str, body: bytes) -> None:
    bench.compare(bench.env(command, VPCCNI_SOCKET=str(bench.directory / "down.sock")), body)


SURROGATE = os.fsdecode(b"\xff")  # the environment carries the raw byte 0xff
ENVIRONMENTS: list[dict[str, str]] = [
    {"CNI_COMMAND": ""},
    {"CNI_COMMAND": "add"},
    {"CNI_COMMAND": "VERSION "},
    {"CNI_COMMAND": "A" + SURROGATE + "D"},
    {"CNI_COMMAND": "\u00e9" * 100},
    {"CNI_CONTAINERID": "-", "CNI_IFNAME": "", "CNI_PATH": "-"},
    {"CNI_CONTAINERID": "-x"},
    {"CNI_CONTAINERID": "a/b"},
    {"CNI_CONTAINERID": "\u00e9"},
    {"CNI_CONTAINERID": "c" * 201},
    {"CNI_IFNAME": "."},
    {"CNI_IFNAME": ".."},
    {"CNI_IFNAME": "a:b"},
    {"CNI_IFNAME": "a b"},
    {"CNI_IFNAME": "e" * 16},
    {"CNI_IFNAME": "\u00e9" * 8},
    {"CNI_NETNS": "/run/netns/\x01"},
    {"CNI_NETNS": "/run/" + SURROGATE},
    {"CNI_ARGS": "a"},
    {"CNI_ARGS": "=x"},
    {"CNI_ARGS": "a=b=c"},
    {"CNI_ARGS": "a=b;;c=d;"},
    {"CNI_ARGS": "K8S_POD_NAME=" + "x" * 70000},
    {"CNI_PATH": "/bin\u2028"},
    {"VPCCNI_SOCKET": "relative.sock"},
    {"VPCCNI_SOCKET": "/" + "s" * 107},
    {"VPCCNI_SPOOL_DIR": "spool"},
    {"CNI_CONTAINERID": "-x", "CNI_IFNAME": "a b", "VPCCNI_SOCKET": "x", "CNI_ARGS": "b"},
]


@pytest.mark.parametrize("changes", ENVIRONMENTS, ids=range(len(ENVIRONMENTS)))
@pytest.mark.parametrize("command", ["ADD", "DEL", "GC", "STATUS"])
def test_environment_checks_match(bench: Bench, command: str, changes: dict[str, str]) -> None:
    body = config("1.1.0", **{"cni.dev/valid-attachments": []})
    bench.compare(bench.env(command, **changes), body)


# --- against the daemon: requests, results, errors ---

REQUEST_FRAGMENTS = [
    '"mtu": 9001, "ratio": 1.10, "big": 10000000000000000000000000, "small": 1e-7, "n": -0.0',
    '"f": 1E5, "g": -0, "h": 1.50, "i": 0.1e-3, "j": 2.5E+3, "k": 1e16, "l": 123e-20',
    '"dup": 1, "other": [], "dup": {"x": "\\/\\u00e9\\ud83d\\ude00\\udcff"}',
    '"runtimeConfig": {"portMappings": [{"hostPort": 80}]}, "text": "\u00e9\u2028\x7f"',
    '\n\t"spaced" :\r\n [ 1 ,2 ] ',
    '"m": 9999999999999998.0, "o": 0.0001, "p": 0.00001, "q": 1e22, "r": 5e-324',
    '"s": 1.7976931348623157e308, "t": -2.5e-5, "u": 123456789.123456789',
]


def full_config(fragment: str) -> bytes:
    """A config every verb accepts (1.1.0, prevResult, attachments), with ``fragment``."""
    return (
        '{"cniVersion": "1.1.0", "name": "aws-cni", "cni.dev/valid-attachments": [], '
        '"prevResult": {"ips": [{"address": "10.0.1.1/32"}]}, ' + fragment + "}"
    ).encode()


@pytest.mark.parametrize("fragment", REQUEST_FRAGMENTS, ids=range(len(REQUEST_FRAGMENTS)))
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL", "GC", "STATUS"])
def test_the_daemon_receives_the_same_request_bytes(
    bench: Bench, command: str, fragment: str
) -> None:
    bench.scripted.reply = EMPTY_RESULT
    env = bench.env(command, VPCCNI_SOCKET=str(bench.scripted.path))
    seen = bench.compare(env, full_config(fragment))
    assert len(seen.received) == 1, seen
    names = json.loads(seen.passed)[0][0]
    assert len(names) == (2 if command in ("ADD", "CHECK") else 0), names


def test_the_fake_daemon_sees_the_same_calls(bench: Bench) -> None:
    for version in EVERY_VERSION:
        for style in ({}, {"resultStyle": "plain"}):
            added = bench.compare(bench.env("ADD"), config(version, **style))
            assert added.status == 0, added
            result = json.loads(added.stdout)
            for command in ("CHECK", "DEL"):
                bench.compare(bench.env(command), config(version, prevResult=result, **style))
    bench.compare(bench.env("GC"), config("1.1.0", **{"cni.dev/valid-attachments": []}))
    bench.compare(bench.env("STATUS"), config("1.1.0"))


NETNS_PATHS = ["/nonexistent/netns", "/dev/null", "/tmp", "/proc/self/ns/net", "/proc/self/ns/uts"]


@pytest.mark.parametrize("path", NETNS_PATHS)
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_namespace_problems_match(bench: Bench, command: str, path: str) -> None:
    body = config("1.0.0", prevResult={"ips": [{"address": "10.0.1.1/32"}]})
    bench.compare(bench.env(command, CNI_NETNS=path), body)


OK = b'{"version": 1, "ok": true, "result": '
ANY_VERB: list[bytes | None] = [  # read alike by every verb
    None,
    b"",
    b"not json\n",
    b"\xff\n",
    b"[]\n",
    b'{"ok": 1}\n',
    b'{"ok": false}\n',
    b'{"ok": false, "error": {"code": 0, "msg": "x"}}\n',
    b'{"ok": false, "error": {"code": true, "msg": "x"}}\n',
    b'{"ok": false, "error": {"code": 1.5, "msg": "x"}}\n',
    b'{"ok": false, "error": {"code": 5, "msg": 5}}\n',
    b'{"ok": false, "error": {"code": 1000000000000000000000000000000, "msg": "big"}}\n',
    b'{"ok": false, "error": {"code": 110, "msg": "full \\u00e9", "details": null}}\n',
    b'{"ok": false, "error": {"code": 110, "msg": "m", "details": {"a": [1.5, -0]}}}\n',
    b'{"ok": false, "error": {"code": 102, "msg": "m", "details": "d\\ud800"}}\n',
    b'{"ok": true, "result": {}}\n',
    b'{"version": 1.0, "ok": true, "result": {}}\n',
    b'{"version": true, "ok": true, "result": {}}\n',
    b'{"version": 2, "ok": true, "result": {}}\n',
    OK + b"[]}\n",
    OK + b'{"ready": true}}\n' + b"trailing bytes after the line",
    *[OK + b'{"ready": true, "x": ' + b"[" * n + b"]" * n + b"}}\n" for n in (989, 990, 991)],
]
ADD_RESULTS: list[bytes | None] = [  # converted per cniVersion
    OK + b"{}}\n",
    OK + b'{"ips": 5}}\n',
    OK + b'{"ips": [5]}}\n',
    OK + b'{"ips": [{"address": 5}]}}\n',
    OK + b'{"ips": [], "interfaces": {}}}\n',
    OK + b'{"ips": [], "routes": [1]}}\n',
    OK + b'{"ips": [{"address": "10.0.1.5/32", "gateway": "169.254.1.1", "interface": 1, '
    b'"version": "4", "x": 1}, {"address": "fd00::5/128", "interface": 0}], '
    b'"interfaces": [{"name": "eni1", "mac": "m", "sandbox": "/n", "mtu": 9001}, {"name": "e"}], '
    b'"routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1", "mtu": 1}], "dns": {"a": 1}, '
    b'"cniVersion": "9.9.9", "extra": [1.10, 1e16, 12345678901234567890123]}}\n',
]
LEGACY_RESULTS: list[bytes | None] = [  # 0.1.0 / 0.2.0: ip4 / ip6 from ips and routes
    OK + b'{"ips": [{"address": "fd00::5/128", "gateway": "fe80::1"}, {"address": "10.0.1.6/32"}, '
    b'{"address": "10.0.1.7/32", "gateway": "x"}, {"address": "fd00::8/128"}], "routes": '
    b'[{"dst": "::/0", "gw": "fe80::1", "mtu": 1}, {"gw": 5}, {"dst": 7}, {"dst": "0.0.0.0/0"}, '
    b'{"dst": "10.0.0.0/8", "gw": null, "table": 3}], "interfaces": [{"name": "x"}], "x": 1}}\n',
    OK + b'{"ips": [{"address": "fd00::5/128"}], "routes": [{"dst": "0.0.0.0/0"}], "dns": 5}}\n',
    OK + b'{"ips": [{"address": "10.0.1.5/32", "interface": 0}], "routes": []}}\n',
    OK + b'{"ips": [], "dns": {}}}\n',
]
STATUS_RESULTS: list[bytes | None] = [  # STATUS: ready must be true
    OK + b'{"ready": false, "available": 0, "why": "' + b"x" * 300 + b'"}}\n',
    OK + b'{"ready": 1}}\n',
    OK + b'{"ready": "true", "n": [1.5, null, true]}}\n',
    OK + b'{"ready": true, "available": 5}}',
]
CALLS = [("ADD", "0.4.0"), ("ADD", "1.0.0"), ("ADD", "1.1.0"), ("DEL", "1.0.0")]
CALLS += [("CHECK", "1.0.0"), ("GC", "1.1.0"), ("STATUS", "1.1.0")]
REPLIES = [(*call, reply) for call in CALLS for reply in ANY_VERB]
REPLIES += [("ADD", version, reply) for version in EVERY_VERSION for reply in ADD_RESULTS]
REPLIES += [("ADD", version, reply) for version in ("0.1.0", "0.2.0") for reply in LEGACY_RESULTS]
REPLIES += [("STATUS", "1.1.0", reply) for reply in STATUS_RESULTS]


@pytest.mark.parametrize(("command", "version", "reply"), REPLIES, ids=range(len(REPLIES)))
def test_replies_are_read_alike(
    bench: Bench, command: str, version: str, reply: bytes | None
) -> None:
    bench.scripted.reply = reply
    body = config(version, prevResult={"ips": []}, **{"cni.dev/valid-attachments": []})
    bench.compare(bench.env(command, VPCCNI_SOCKET=str(bench.scripted.path)), body)


# --- the daemon down: the DEL spool ---

ADDRESSES: list[Any] = [
    "10.0.1.5/32",
    "10.0.1.5",
    "10.0.1.5/255.255.255.0",
    "10.0.1.5/0.0.0.255",
    "10.0.1.5/255.0.255.0",
    "10.0.1.5/33",
    "10.0.1.5/032",
    "10.0.1.5/",
    "10.0.1.5/24/1",
    "010.0.1.5",
    "10.0.1.256",
    "10.0.1",
    "\uff11.0.0.1",
    "fe80::1%eth0/64",
    "fe80::1%/64",
    "FE80:0:0:0:0:0:0:1",
    "::ffff:1.2.3.4",
    "::",
    "1::",
    "::1",
    "1:0:0:2:0:0:0:3",
    "1:0:0:0:2:0:0:3",
    "1:2:3:4:5:6:7::",
    "1:2:3:4:5:6:7:8:9",
    ":1:2:3:4:5:6:7",
    "1::2::3",
    "12345::",
    "fd00::5/129",
    "fd00::5/64",
    "10.0.1.5/32",
    5,
    None,
    "",
]


def test_spooled_addresses_match(bench: Bench) -> None:
    ips = [{"address": address} for address in ADDRESSES] + ["not a dict", {"gateway": "x"}]
    down = {"VPCCNI_SOCKET": str(bench.directory / "down.sock")}
    seen = bench.compare(bench.env("DEL", **down), config("1.0.0", prevResult={"ips": ips}))
    assert seen.spool, seen


@pytest.mark.parametrize(
    "changes",
    [
        {"CNI_IFNAME": "net@1"},
        {"CNI_IFNAME": "\u00e9th0"},
        {"CNI_CONTAINERID": "a.b_c-d"},
        {"CNI_NETNS": "-"},
        {"VPCCNI_SPOOL_DIR": "/proc/vpccni-spool"},
        {"VPCCNI_SPOOL_DIR": "/dev/null/spool"},
    ],
    ids=range(6),
)
def test_del_with_the_daemon_down_spools_alike(bench: Bench, changes: dict[str, str]) -> None:
    down = {"VPCCNI_SOCKET": str(bench.directory / "down.sock"), **changes}
    previous = {"ips": [{"address": "10.0.1.5/32"}, {"address": "10.0.1.5/24"}]}
    bench.compare(bench.env("DEL", **down), config("0.4.0", prevResult=previous))


def test_a_blocked_spool_directory_fails_alike(bench: Bench) -> None:
    (bench.directory / "a-file").write_text("")
    blocked = bench.directory / "blocked"
    (blocked / "c0ffee-eth0.json").mkdir(parents=True)  # rename cannot replace a directory
    down = str(bench.directory / "down.sock")
    for spool in (bench.directory / "a-file" / "spool", blocked):
        env = bench.env("DEL", VPCCNI_SOCKET=down, VPCCNI_SPOOL_DIR=str(spool))
        seen = bench.compare(env, config("1.0.0"))
        assert seen.status == 1, seen
        assert "DEL record cannot be written" in seen.stdout
    assert [path.name for path in blocked.iterdir()] == ["c0ffee-eth0.json"]
    shutil.rmtree(blocked)
    (bench.directory / "a-file").unlink()


# --- the plugin log ---

LOGS: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "LOG"}, {}),
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "LOG", "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "WARN"}, {}),
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "LOG", "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "bogus"}, {}),
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "LOG", "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "\u0130nfo"}, {}),
    ({}, {"pluginLogFile": "LOG", "pluginLogLevel": "Error"}),
    ({}, {"pluginLogFile": "LOG", "pluginLogLevel": 20}),
    ({}, {"pluginLogFile": "LOG", "pluginLogLevel": ["info"]}),
    ({}, {"pluginLogFile": 5}),
    ({}, {"pluginLogFile": "relative.log"}),
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "stderr"}, {}),
    ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "stdout"}, {}),
]


@pytest.mark.parametrize(("env", "keys"), LOGS, ids=range(len(LOGS)))
@pytest.mark.parametrize("daemon", ["up", "down"])
def test_log_lines_match(
    bench: Bench, env: dict[str, str], keys: dict[str, Any], daemon: str
) -> None:
    log = str(bench.directory / "log" / "plugin.log")
    env = {key: log if value == "LOG" else value for key, value in env.items()}
    keys = {key: log if value == "LOG" else value for key, value in keys.items()}
    if daemon == "down":
        env["VPCCNI_SOCKET"] = str(bench.directory / "down.sock")
    for command in ("ADD", "DEL", "VERSION"):
        bench.compare(bench.env(command, **env), config("1.0.0", **keys))
    bench.compare(bench.env("ADD", **env, CNI_COMMAND="bogus"), b"")
    bench.compare(bench.env("ADD", **env, CNI_COMMAND="A" + SURROGATE), b"")


# --- generated: test_fuzz.py's broken calls ---


def test_generated_broken_calls_match(bench: Bench) -> None:
    @settings(max_examples=PARITY_CASES, **FUZZ_SETTINGS)
    @given(cases())
    def check(case: Any) -> None:
        socket_path = bench.daemon.socket_path if case.daemon_up else bench.directory / "down"
        env = {
            "VPCCNI_SOCKET": str(socket_path),
            "VPCCNI_SPOOL_DIR": str(bench.directory / "spool"),
        }
        env.update(case.env)
        bench.compare(env, case.stdin)

    check()


def test_a_closed_stdin_reads_as_empty_in_both(bench: Bench) -> None:
    """Python has no sys.stdin when descriptor 0 is closed; cni.py then decodes b"" (6)."""
    seen = []
    for plugin in (bench.python, bench.static):
        done = subprocess.run(
            ["sh", "-c", 'exec "$0" <&-', str(plugin)],
            env={"PATH": os.defpath, **bench.env("ADD")},
            capture_output=True,
            timeout=60,
            check=False,
        )
        seen.append((done.returncode, done.stdout, done.stderr))
    assert seen[0] == seen[1]
    assert b'"code": 6' in seen[1][1]


# --- closed, broken and odd standard streams ---

REDIRECTS = [">&-", "2>&-", ">&- 2>&-", "<&-", "<&- >&-", "0>/dev/null", ">/dev/full", BROKEN_PIPE]


@pytest.mark.parametrize("redirect", REDIRECTS)
@pytest.mark.parametrize("daemon", ["up", "down"])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL", "VERSION", "STATUS", "GC"])
def test_closed_and_broken_streams_end_alike_without_a_traceback(
    bench: Bench, command: str, daemon: str, redirect: str
) -> None:
    """stdout closed, full or a broken pipe: a result that cannot be printed is error 5 and an
    error that cannot be printed a one-line note on stderr, exit 1 (verbs that print nothing on
    success still exit 0); stderr closed loses only its notes (a spooled DEL still succeeds);
    stdin closed reads as empty (6), stdin write-only cannot be read (5). The plugin log tells
    what happened in every case."""
    log = str(bench.directory / "log" / "plugin.log")
    changes = {"AWS_VPC_K8S_PLUGIN_LOG_FILE": log}
    if daemon == "down":
        changes["VPCCNI_SOCKET"] = str(bench.directory / "down.sock")
    body = config("1.1.0", prevResult={"ips": []}, **{"cni.dev/valid-attachments": []})
    seen = bench.compare(bench.env(command, **changes), body, redirect)
    assert "Traceback" not in seen.stderr, seen
    assert seen.stderr.count("\n") <= 1, seen
    assert seen.log.count("\n") == 1, seen
    stdout_gone = redirect.startswith((">", "<&- >")) or redirect == BROKEN_PIPE
    if stdout_gone:
        assert seen.stdout == "", seen
        failed = " -> error " in seen.log
        assert seen.status == (1 if failed else 0), seen
        noted = failed and "2>&-" not in redirect
        assert ("cannot print the CNI error on stdout" in seen.stderr) is noted, seen
        adds = command == "ADD" and daemon == "up" and "<" not in redirect
        prints = command == "VERSION" or adds
        assert ("error 5: cannot write the result on stdout" in seen.log) is prints, seen


def test_stdin_a_directory_stops_python_before_the_plugin_runs(bench: Bench) -> None:
    """Not parity, documented: with stdin a directory (``< /``) CPython refuses to start (its
    start-up checks sys.stdin, ``init_sys_streams``: "Fatal Python error", exit 1) before a line
    of cni.py runs, so the Python plugin cannot answer; the static plugin answers error 5 (DEL:
    nothing to do, 0). Neither reaches the daemon. Should a Python release start, this fails:
    then cni.py must answer as the static plugin does."""
    log = str(bench.directory / "log" / "plugin.log")
    for command in ("ADD", "DEL", "VERSION"):
        env = bench.env(command, AWS_VPC_K8S_PLUGIN_LOG_FILE=log)
        python = bench.run(bench.python, env, config(), "< /")
        static = bench.run(bench.static, env, config(), "< /")
        assert (python.status, python.stdout, python.log) == (1, "", ""), python
        assert python.stderr.startswith(
            "Fatal Python error: init_sys_streams: <stdin> is a directory, cannot continue\n"
        ), python
        assert python.received == static.received == (), (python, static)
        if command == "ADD":
            assert static.status == 1, static
            assert json.loads(static.stdout) == {
                "cniVersion": "1.1.0",
                "code": 5,
                "msg": "cannot read the network config on stdin",
                "details": "[Errno 21] Is a directory",
            }
        elif command == "DEL":
            assert (static.status, static.stdout) == (0, ""), static
            assert "nothing to do (cannot read the network config on stdin)" in static.stderr
        else:  # VERSION reads no stdin
            assert (static.status, json.loads(static.stdout)["cniVersion"]) == (0, "1.1.0")
