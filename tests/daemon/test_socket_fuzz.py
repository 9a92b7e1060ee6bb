"""Hostile clients on the plugin socket: a bounded fuzz run against a real daemon.

Malformed lines (deep nesting, integers of thousands of digits, non-integer versions, invalid
container ids), then a flood of 300 idle connections and 20 slow-loris clients (one byte every
4 s) at once. Every connection must get a reply; the daemon's thread count and RSS (read from
``/proc/<pid>/status``) must stay bounded; its state must not change; it must serve normally
afterwards. The figures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path
from typing import Any

from tests.daemon.test_plugin_api import raw
from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.daemon.rpc import MAX_CONNECTIONS, WORKERS

IDLE = 300
SLOW = 20
MALFORMED: list[tuple[bytes, int]] = [
    (b"[" * 200_000 + b"\n", 101),
    (b'{"a": ' * 100_000 + b"\n", 101),
    (b'{"version": 1, "op": "status", "n": -' + b"9" * 4000 + b"}\n", 101),
    (b'{"version": ' + b"1" * 3000 + b', "op": "status"}\n', 101),
    (b'{"version": true, "op": "status"}\n', 100),
    (b'{"version": 1.0, "op": "status"}\n', 100),
    (b"\xff\xfe\n", 101),
    (b"\n", 101),
]


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (KiB) of ``pid``."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Threads", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def state(node: Any) -> tuple[Any, Any]:
    pods = sorted((p["container_id"], p["address"]) for p in node.introspect("/v1/pods"))
    stored = FileCheckpointStore(node.directory / "checkpoint").load()
    return pods, sorted((str(k), str(a.address)) for k, a in stored.assignments.items())


def connect(path: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))
    client.setblocking(False)
    return client


def test_hostile_clients_are_all_answered_with_bounded_threads_and_memory(
    make_node: Any,
) -> None:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    assert node.add("kept")["ok"]
    node.wait_for(lambda: not node.introspect("/v1/explain")["actions"], what="pool settled")
    pid = node.process.pid
    before = proc_status(pid)
    state_before = state(node)

    for payload, code in MALFORMED:
        reply = raw(node, payload)
        assert reply["ok"] is False, (payload[:40], reply)
        assert reply["error"]["code"] == code, (payload[:40], reply)

    slow = [connect(node.socket) for _ in range(SLOW)]
    idle = [connect(node.socket) for _ in range(IDLE)]
    replies: dict[socket.socket, bytes] = {}
    last_byte = dict.fromkeys(slow, 0.0)
    samples = [before]
    started = time.monotonic()
    while len(replies) < SLOW + IDLE and time.monotonic() - started < 40:
        now = time.monotonic()
        for client in slow:
            if client not in replies and now - last_byte[client] >= 4.0:
                try:
                    client.send(b" ")
                    last_byte[client] = now
                except OSError:
                    pass
        waiting = [c for c in (*slow, *idle) if c not in replies]
        readable, _, _ = select.select(waiting, [], [], 0.5)
        for client in readable:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            replies[client] = replies.get(client, b"") + data
        samples.append(proc_status(pid))
    elapsed = time.monotonic() - started
    answered = sum(1 for c in (*slow, *idle) if replies.get(c))
    codes = [json.loads(replies[c])["error"]["code"] if replies.get(c) else None for c in idle]
    slow_codes = [json.loads(replies[c])["error"]["code"] if replies.get(c) else None for c in slow]
    for client in (*slow, *idle):
        client.close()
    after = proc_status(pid)
    max_threads = max(s["Threads"] for s in samples)
    print(
        f"\nsocket fuzz: {len(MALFORMED)} malformed + {IDLE} idle + {SLOW} slow-loris requests, "
        f"{answered} of {SLOW + IDLE} flood connections answered in {elapsed:.1f} s "
        f"(idle: {codes.count(11)} busy, {codes.count(101)} timed out; slow-loris: "
        f"{slow_codes.count(101)} timed out); threads "
        f"{before['Threads']} before, max {max_threads}; RSS {before['VmRSS'] / 1024:.1f} MiB "
        f"before, {after['VmRSS'] / 1024:.1f} MiB after"
    )
    assert slow_codes == [101] * SLOW  # cut off at the whole-request deadline
    assert None not in codes
    assert set(codes) <= {11, 101}
    assert codes.count(11) >= IDLE + SLOW - MAX_CONNECTIONS
    assert max_threads <= before["Threads"] + WORKERS + 2
    assert after["VmRSS"] - before["VmRSS"] < 64 * 1024
    assert state(node) == state_before
    assert node.add("after-the-flood")["ok"]
