"""Malformed and hostile input never gets past the plugin, and never crashes it.

Each generated case is a valid call for one verb broken in one way (and sometimes also in a
later-checked way, to pin the check order: decode stdin -> cniVersion -> config -> ``CNI_*``),
or an unknown ``CNI_COMMAND``. Every case must print one CNI error JSON with the code the broken
check calls for and exit non-zero - except DEL, which exits 0 and prints nothing - and the
daemon must receive no request and the spool directory must stay empty, whether the daemon is
up or down. The bulk runs in-process on the installed file's ``main`` (``VPCCNI_FUZZ_CASES``,
default 2000); a sample execs the installed plugin (``VPCCNI_FUZZ_EXEC_CASES``, default 100).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import Outcome, exec_plugin

FUZZ_CASES = int(os.environ.get("VPCCNI_FUZZ_CASES", "2000"))
EXEC_CASES = int(os.environ.get("VPCCNI_FUZZ_EXEC_CASES", "100"))
VERBS = ("ADD", "DEL", "CHECK", "STATUS", "GC")
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
ALLOWED = {"GC": ("1.1.0",), "STATUS": ("1.1.0",), "CHECK": ("0.4.0", "1.0.0", "1.1.0")}
MAX_STDIN = 1 << 20
REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
}
FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}


@dataclass(frozen=True)
class Case:
    """One plugin invocation and the CNI error code it must produce (DEL: exit 0 instead)."""

    kind: str
    env: dict[str, str]
    stdin: bytes
    code: int
    daemon_up: bool


# --- valid calls, then ways to break them ---


def env_text(**kwargs: Any) -> st.SearchStrategy[str]:
    """Text an environment can carry: anything but NUL and lone surrogates (which no real
    environment holds: exec takes bytes, and Python cannot encode a lone surrogate to pass it)."""
    return st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), **kwargs
    )


def valid_config(verb: str, version: str) -> dict[str, Any]:
    config: dict[str, Any] = {"cniVersion": version, "name": "aws-cni", "type": "vpccni-cni"}
    if verb in ("CHECK", "DEL"):
        config["prevResult"] = {"cniVersion": version, "ips": [{"address": "10.0.1.5/32"}]}
    if verb == "GC":
        config["cni.dev/valid-attachments"] = [{"containerID": "c1", "ifname": "eth0"}]
    return config


def valid_env(verb: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": "c0ffee",
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        "CNI_PATH": "/opt/cni/bin",
    }


def versions_for(verb: str) -> st.SearchStrategy[str]:
    return st.sampled_from(ALLOWED.get(verb, SUPPORTED))


def parses_as_json(data: bytes) -> bool:
    try:
        json.loads(data.decode("utf-8"))
    except ValueError:
        return False
    return True


def is_attachment_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict)
        and isinstance(item.get("containerID"), str)
        and isinstance(item.get("ifname"), str)
        for item in value
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@st.composite
def broken_env(draw: st.DrawFn, verb: str) -> dict[str, str]:
    """A valid env for ``verb`` with one variable missing or invalid (code 4)."""
    env = valid_env(verb)
    if REQUIRED[verb] and draw(st.booleans()):
        for name in draw(st.sets(st.sampled_from(REQUIRED[verb]), min_size=1)):
            if draw(st.booleans()):
                del env[name]
            else:
                env[name] = ""
        return env
    name, bad = draw(
        st.one_of(
            st.tuples(
                st.just("CNI_CONTAINERID"),
                st.one_of(
                    env_text(min_size=1).filter(lambda v: not v[0].isascii() or not v[0].isalnum()),
                    st.text(string.ascii_letters, min_size=1).map(lambda v: v + "/../x"),
                    st.integers(201, 5000).map(lambda n: "c" * n),
                ),
            ),
            st.tuples(
                st.just("CNI_IFNAME"),
                st.one_of(
                    st.sampled_from([".", "..", "eth/0", "eth:0", "eth 0", "eth\t0"]),
                    st.integers(16, 300).map(lambda n: "e" * n),
                ),
            ),
            st.tuples(
                st.sampled_from(["CNI_NETNS", "CNI_PATH", "CNI_ARGS"]),
                st.integers(70000, 120000).map(lambda n: "/" + "n" * n),
            ),
            st.tuples(
                st.just("CNI_ARGS"),
                st.sampled_from(["K8S_POD_NAME", "=x", "a=b=c", "IgnoreUnknown=1;bogus"]),
            ),
            st.tuples(
                st.sampled_from(["VPCCNI_SOCKET", "VPCCNI_SPOOL_DIR"]),
                st.one_of(env_text(min_size=1).map(lambda v: "rel" + v), st.just("/" + "s" * 5000)),
            ),
            st.tuples(
                st.sampled_from(sorted(valid_env(verb))).filter(lambda n: n != "CNI_COMMAND"),
                st.tuples(
                    st.text(string.ascii_letters, max_size=4),
                    st.sampled_from(["\x01", "\x1b", "\x7f", "\n", "\t", "\u2028", "\udcff"]),
                ).map("/".join),
            ),
        )
    )
    env[name] = bad
    return env


Broken = tuple[str, bytes, int]  # (kind, stdin, expected code)


def random_bytes(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    return "random bytes", draw(st.binary(max_size=200).filter(lambda d: not parses_as_json(d))), 6


def truncated(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    text = json.dumps(config)
    return "truncated JSON", text[: draw(st.integers(0, len(text) - 1))].encode(), 6


def trailing_data(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    tail = draw(st.sampled_from([" x", "}", "{}", ",", " 1", "\x00"]))
    return "trailing data", (json.dumps(config) + tail).encode(), 6


def not_an_object(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return "not an object", json.dumps(value).encode(), 6


def raw_control_character(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    raw = draw(st.sampled_from([b"\x01", b"\x1f", b"\n", b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    data = json.dumps(config).encode().replace(b'"aws-cni"', b'"aws' + raw + b'"')
    return "raw control character or bad UTF-8 in a string", data, 6


def non_finite_number(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]))
    return "non-finite number", (json.dumps(config)[:-1] + f', "mtu": {token}}}').encode(), 6


def deep_nesting(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    depth = draw(st.integers(5000, 200000))
    return "deep nesting", b"[" * depth + b"]" * draw(st.sampled_from([0, depth])), 6


def oversized(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    text = json.dumps(config)
    pad = MAX_STDIN - len(text) + draw(st.integers(1, 4096))
    return "larger than 1 MiB", text.encode() + b" " * pad, 7


def version_not_a_string(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    broken = {**config, "cniVersion": draw(json_values.filter(lambda v: not isinstance(v, str)))}
    if draw(st.booleans()):
        del broken["cniVersion"]
    return "cniVersion not a string", json.dumps(broken).encode(), 7


def unsupported_version(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    allowed = ALLOWED.get(verb, SUPPORTED)
    bad = draw(st.text(max_size=12).filter(lambda v: v not in allowed))
    return "unsupported cniVersion", json.dumps({**config, "cniVersion": bad}).encode(), 1


def bad_name(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    name = draw(
        st.one_of(
            json_values.filter(lambda v: not isinstance(v, str)),
            st.text(max_size=10).filter(
                lambda v: not v or not v[0].isascii() or not v[0].isalnum() or not v.isascii()
            ),
            st.sampled_from(["a" * 254, "net/work", "a b", "x;y"]),
        )
    )
    return "bad network name", json.dumps({**config, "name": name}).encode(), 7


def bad_path_key(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    key = draw(st.sampled_from(["socket", "spoolDir"]))
    value = draw(
        st.one_of(
            json_values.filter(lambda v: not isinstance(v, str)),
            st.text(max_size=10).map(lambda v: "rel/" + v),
            st.sampled_from(["/tmp/\x01", "/" + "x" * 5000, ""]),
        )
    )
    return f"bad {key}", json.dumps({**config, key: value}).encode(), 7


def bad_mtu_or_veth_prefix(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    """upstream's keys: mtu not an integer (or string of digits) of 576-9001, vethPrefix not 1-4
    letters, digits, '_', '.', '-' or reserved."""
    key, value = draw(
        st.one_of(
            st.tuples(
                st.just("mtu"),
                st.one_of(
                    st.integers().filter(lambda n: not 576 <= n <= 9001),
                    st.integers().filter(lambda n: not 576 <= n <= 9001).map(str),
                    st.sampled_from(["", " 9001", "9001 ", "+9001", "9_001", "9001.0"]),
                    st.just("\u0669001"),  # an Arabic-Indic digit: str.isdigit, not ASCII
                    st.sampled_from([9001.0, True, None, [9001], {"mtu": 9001}]),
                ),
            ),
            st.tuples(
                st.just("vethPrefix"),
                st.one_of(
                    st.sampled_from(["", "eth", "lo", "vlan", "abcde", "a b", "e/n", "\u00e9ni"]),
                    json_values.filter(lambda v: not isinstance(v, str)),
                ),
            ),
        )
    )
    return f"bad {key}", json.dumps({**config, key: value}).encode(), 7


def bad_result_style(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    """resultStyle other than "upstream" or "plain" (docs/plugin-api.md)."""
    value = draw(json_values.filter(lambda v: v not in ("upstream", "plain")))
    return "bad resultStyle", json.dumps({**config, "resultStyle": value}).encode(), 7


def bad_prev_result(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    value = draw(
        st.one_of(
            json_values.filter(lambda v: v is not None and not isinstance(v, dict)),
            json_values.filter(lambda v: not isinstance(v, list)).map(lambda v: {"ips": v}),
        )
    )
    return "bad prevResult", json.dumps({**config, "prevResult": value}).encode(), 7


def missing_verb_keys(draw: st.DrawFn, verb: str, config: dict[str, Any]) -> Broken:
    """CHECK without prevResult or under 0.4.0, GC without a valid-attachments list, STATUS
    under 1.0.0."""
    if verb == "CHECK" and draw(st.booleans()):
        old = draw(st.sampled_from(("0.1.0", "0.2.0", "0.3.0", "0.3.1")))
        return "CHECK under 0.4.0", json.dumps({**config, "cniVersion": old}).encode(), 1
    if verb == "CHECK":
        config = {k: v for k, v in config.items() if k != "prevResult"}
        return "CHECK without prevResult", json.dumps(config).encode(), 7
    if verb == "GC":
        value = draw(
            st.one_of(json_values, st.just([{"containerID": 1}])).filter(
                lambda v: not is_attachment_list(v)
            )
        )
        config = {**config, "cni.dev/valid-attachments": value}
        if value is None:
            config.pop("cni.dev/valid-attachments")
        return "bad valid-attachments", json.dumps(config).encode(), 7
    if verb == "STATUS":
        return "STATUS under 1.0.0", json.dumps({**config, "cniVersion": "1.0.0"}).encode(), 1
    return random_bytes(draw, verb, config)


BREAKERS = (
    random_bytes,
    truncated,
    trailing_data,
    not_an_object,
    raw_control_character,
    non_finite_number,
    deep_nesting,
    oversized,
    version_not_a_string,
    unsupported_version,
    bad_name,
    bad_path_key,
    bad_mtu_or_veth_prefix,
    bad_result_style,
    bad_prev_result,
    missing_verb_keys,
)


@st.composite
def broken_stdin(draw: st.DrawFn, verb: str) -> Broken:
    """Network config bytes broken before the env is looked at."""
    config = valid_config(verb, draw(versions_for(verb)))
    return draw(st.sampled_from(BREAKERS))(draw, verb, config)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A broken call: bad stdin (maybe bad env too), bad env, or an unknown command."""
    daemon_up = draw(st.booleans())
    kind_of_break = draw(st.sampled_from(["stdin", "env", "command"]))
    if kind_of_break == "command":
        command = draw(
            st.one_of(
                st.sampled_from(["", "add", "Del", " ADD", "VERSION ", "UPDATE", "GET"]),
                env_text(max_size=20),
            ).filter(lambda c: c not in (*VERBS, "VERSION"))
        )
        stdin = draw(st.binary(max_size=100))
        return Case("unknown CNI_COMMAND", {"CNI_COMMAND": command}, stdin, 4, daemon_up)
    verb = draw(st.sampled_from(VERBS))
    if kind_of_break == "env":
        version = draw(versions_for(verb))
        stdin = json.dumps(valid_config(verb, version)).encode()
        env = draw(broken_env(verb))
        return Case("bad environment", env, stdin, 4, daemon_up)
    kind, stdin, code = draw(broken_stdin(verb))
    env = draw(broken_env(verb)) if draw(st.booleans()) else valid_env(verb)
    return Case(kind, env, stdin, code, daemon_up)


# --- running and judging ---


def environment(case: Case, fake_daemon: FakeDaemon, spool: Path) -> dict[str, str]:
    """The case's env pointed at the daemon (or at no daemon), after clearing what an earlier
    failing example may have left, so each example is judged on its own."""
    with fake_daemon.lock:
        fake_daemon.requests.clear()
        fake_daemon.pods.clear()
    shutil.rmtree(spool, ignore_errors=True)
    socket = fake_daemon.socket_path if case.daemon_up else spool.parent / "down.sock"
    env = {"VPCCNI_SOCKET": str(socket), "VPCCNI_SPOOL_DIR": str(spool)}
    env.update(case.env)
    return env


def judge(case: Case, outcome: Outcome, fake_daemon: FakeDaemon, spool: Path) -> None:
    where = (
        f"{case.kind}: env={ {k: v[:80] for k, v in case.env.items()} } stdin={case.stdin[:80]!r}"
    )
    assert "Traceback" not in outcome.stderr, where
    if case.env.get("CNI_COMMAND") == "DEL":
        assert (outcome.status, outcome.stdout) == (0, ""), (where, outcome)
    else:
        assert outcome.status == 1, (where, outcome)
        assert outcome.stdout.endswith("\n"), (where, outcome)
        assert outcome.stdout.count("\n") == 1, (where, outcome)
        body = json.loads(outcome.stdout)
        assert set(body) == {"cniVersion", "code", "msg", "details"}, (where, body)
        assert body["code"] == case.code, (where, body)
        assert body["cniVersion"] in SUPPORTED, (where, body)
        assert isinstance(body["msg"], str), (where, body)
        assert body["msg"], (where, body)
        assert isinstance(body["details"], str), (where, body)
    assert fake_daemon.requests == [], where
    assert fake_daemon.state() == {}, where
    assert not spool.exists() or not any(spool.iterdir()), where


def in_process(module: ModuleType) -> Callable[[dict[str, str], bytes], Outcome]:
    def run(env: dict[str, str], stdin: bytes) -> Outcome:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = module.main(environ=env, stdin=io.BytesIO(stdin), stdout=stdout, stderr=stderr)
        return Outcome(status, stdout.getvalue(), stderr.getvalue())

    return run


def test_malformed_input_in_process(
    loaded_plugin: ModuleType, fake_daemon: FakeDaemon, spool: Path
) -> None:
    run = in_process(loaded_plugin)

    @settings(max_examples=FUZZ_CASES, **FUZZ_SETTINGS)
    @given(cases())
    def check(case: Case) -> None:
        judge(case, run(environment(case, fake_daemon, spool), case.stdin), fake_daemon, spool)

    check()


def test_malformed_input_through_exec(plugin: Path, fake_daemon: FakeDaemon, spool: Path) -> None:
    @settings(max_examples=EXEC_CASES, **FUZZ_SETTINGS)
    @given(cases())
    def check(case: Case) -> None:
        env = environment(case, fake_daemon, spool)
        judge(case, exec_plugin(plugin, env, case.stdin), fake_daemon, spool)

    check()
