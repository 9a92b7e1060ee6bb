"""The kubelet's probes: ``/healthz`` (alive) and ``/readyz`` (ready to serve pods).

Unit tests drive :class:`Health` with a fake monotonic clock; the daemon tests run a real
``vpccni ipamd`` against the emulator and probe it over HTTP, on TCP as the DaemonSet does and
with ``DISABLE_INTROSPECTION=true``, where only the two probes are served.
"""

from __future__ import annotations

import http.client
import json
import signal
import time
from typing import Any

from tests.cloud.conftest import free_port
from vpccni.daemon.introspection import Health


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_alive_while_the_loop_ticks_and_dead_when_it_stops() -> None:
    clock = FakeMonotonic()
    health = Health(5.0, monotonic=clock)
    assert health.liveness()[0] == 200
    clock.now += 24.9  # 3 ticks of 5 s + 10 s slack = 25 s
    assert health.liveness()[0] == 200
    clock.now += 0.2
    status, body = health.liveness()
    assert status == 503
    assert "has not ticked for 25.1 s (limit 25 s" in body["reason"]
    health.tick_started()
    health.tick_finished()
    assert health.liveness()[0] == 200


def test_a_long_tick_is_alive_until_its_budget_runs_out() -> None:
    clock = FakeMonotonic()
    health = Health(5.0, monotonic=clock)
    health.tick_started()
    clock.now += 200  # e.g. waiting minutes for IMDS to list a new ENI
    status, body = health.liveness()
    assert status == 200
    assert body["pool_loop"]["in_tick_seconds"] == 200
    clock.now += 116  # past 3 x 5 s + 300 s
    status, body = health.liveness()
    assert status == 503
    assert "inside one tick for 316.0 s (limit 315 s" in body["reason"]


def test_not_alive_or_ready_without_the_plugin_listener() -> None:
    serving = [True]
    health = Health(5.0, rpc_serving=lambda: serving[0])
    assert health.readiness() == (200, {"ready": True})
    serving[0] = False
    assert health.liveness()[1]["reason"] == "the plugin API listener is not serving"
    assert health.readiness()[0] == 503


def test_not_ready_while_stopping() -> None:
    health = Health(5.0, ready=lambda: False)
    assert health.liveness()[0] == 200
    assert health.readiness() == (
        503,
        {"ready": False, "reason": "ipamd is stopping (terminating)"},
    )


def get(port: int, path: str, method: str = "GET") -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else None
    finally:
        connection.close()


def test_probes_of_a_running_daemon_over_tcp(make_node: Any) -> None:
    node = make_node()
    port = free_port()
    node.start("--introspection-bind", f"127.0.0.1:{port}")
    status, body = get(port, "/healthz")
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["plugin_api"] == "serving"
    assert body["pool_loop"]["tick_seconds"] == 0.2
    assert get(port, "/readyz") == (200, {"ready": True})
    assert get(port, "/readyz/")[0] == 200
    assert get(port, "/healthz", "HEAD") == (200, None)
    assert get(port, "/v1/ipamd-env-settings")[1]["WARM_ENI_TARGET"] == 1
    assert {"/healthz", "/readyz"} <= set(get(port, "/")[1]["AvailableCommands"])
    # the pool loop keeps ticking: the last tick is always recent
    time.sleep(1.0)
    assert get(port, "/healthz")[1]["pool_loop"]["last_tick_seconds_ago"] < 1.0
    # the plugin socket removed from under the daemon: no pod can reach it any more
    node.socket.unlink()
    status, body = get(port, "/healthz")
    assert (status, body["reason"]) == (503, "the plugin API listener is not serving")
    assert get(port, "/readyz")[0] == 503
    assert node.stop(signal.SIGTERM) == 0


def test_disabled_introspection_still_serves_the_probes(make_node: Any) -> None:
    node = make_node(DISABLE_INTROSPECTION="true")
    port = free_port()
    node.start("--introspection-bind", f"127.0.0.1:{port}")
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/readyz") == (200, {"ready": True})
    for path in ("/v1/enis", "/v1/pods", "/"):
        status, body = get(port, path)
        assert status == 404, path
        assert "DISABLE_INTROSPECTION" in body["error"]
    assert node.stop(signal.SIGTERM) == 0
