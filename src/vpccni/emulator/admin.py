"""The emulator's admin API: JSON routes to drive the clock, knobs, scenario and state.

Owns :func:`route`, which maps ``(method, path)`` to one small function. Bodies and answers are
JSON. ``GET /admin/health``; ``GET /admin/clock`` (``now``, ``offset``); ``POST
/admin/clock/advance`` ``{"seconds": N}`` moves the clock forward (due attach/detach complete,
buckets refill, the IMDS lag passes); ``GET``/``POST /admin/knobs`` reads or changes knobs
(partial JSON, as a scenario's ``knobs``); ``POST /admin/scenario`` creates a scenario's
resources and answers ``{"ids": {name: id}}``; ``GET /admin/state`` is the ``--state`` document
plus ``stats`` and bucket ``levels``; ``GET /admin/endpoints``; ``GET /admin/invariants``
(address invariants that do not hold); ``POST /admin/reset`` forgets every resource (knobs
stay); ``POST /admin/save`` writes the ``--state`` file now; ``GET /admin/iam-policy`` is the
enforced policy document (``null``: none); ``POST /admin/iam-policy`` with a document enforces
it (a bad one is refused, naming the element, and the old policy stays), with ``null`` stops
enforcing, and answers ``{"enforcing": bool}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vpccni.emulator.errors import EmulatorSetupError
from vpccni.emulator.realism import knobs_from_json, knobs_to_json
from vpccni.emulator.statefile import dump_state
from vpccni.emulator.world import apply_scenario, parse_scenario

if TYPE_CHECKING:
    from vpccni.emulator.server import EmulatorServer

Route = Callable[["EmulatorServer", Any], Any]


def _health(server: EmulatorServer, payload: Any) -> Any:
    return {"ok": True}


def _clock(server: EmulatorServer, payload: Any) -> Any:
    return {"now": server.clock.now(), "offset": server.clock.offset}


def _advance(server: EmulatorServer, payload: Any) -> Any:
    seconds = payload.get("seconds") if isinstance(payload, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise EmulatorSetupError('give {"seconds": N} with N >= 0')
    server.clock.advance(float(seconds))
    server.emulator.model.advance(server.clock.now())
    return _clock(server, payload)


def _knobs(server: EmulatorServer, payload: Any) -> Any:
    return knobs_to_json(server.emulator.knobs)


def _set_knobs(server: EmulatorServer, payload: Any) -> Any:
    server.emulator.set_knobs(knobs_from_json(payload, server.emulator.knobs))
    return _knobs(server, payload)


def _scenario(server: EmulatorServer, payload: Any) -> Any:
    scenario = parse_scenario(payload, "scenario")
    server.emulator.set_knobs(scenario.knobs_over(server.emulator.knobs))
    return {"ids": apply_scenario(server.emulator, scenario, server.clock.now())}


def _state(server: EmulatorServer, payload: Any) -> Any:
    state = dump_state(server.emulator, server.clock.offset)
    state["stats"] = dict(server.emulator.stats)
    state["levels"] = server.emulator.bucket_levels(server.clock.now())
    return state


def _invariants(server: EmulatorServer, payload: Any) -> Any:
    return {"violations": server.emulator.model.invariant_violations()}


def _iam_policy(server: EmulatorServer, payload: Any) -> Any:
    policy = server.emulator.iam_policy
    return None if policy is None else policy.document


def _set_iam_policy(server: EmulatorServer, payload: Any) -> Any:
    server.emulator.set_iam_policy(payload)
    return {"enforcing": server.emulator.iam_policy is not None}


def _reset(server: EmulatorServer, payload: Any) -> Any:
    server.emulator.reset()
    return {"ok": True}


LOCKED_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/admin/health"): _health,
    ("GET", "/admin/clock"): _clock,
    ("POST", "/admin/clock/advance"): _advance,
    ("GET", "/admin/knobs"): _knobs,
    ("POST", "/admin/knobs"): _set_knobs,
    ("POST", "/admin/scenario"): _scenario,
    ("GET", "/admin/state"): _state,
    ("GET", "/admin/invariants"): _invariants,
    ("POST", "/admin/reset"): _reset,
    ("GET", "/admin/iam-policy"): _iam_policy,
    ("POST", "/admin/iam-policy"): _set_iam_policy,
}


def route(server: EmulatorServer, method: str, path: str, payload: Any) -> Any:
    """Run one admin request; LookupError when there is no such route."""
    if (method, path) == ("GET", "/admin/endpoints"):
        return server.endpoints()
    if (method, path) == ("POST", "/admin/save"):
        return {"saved": server.save_state(), "path": str(server.state_path or "")}
    handler = LOCKED_ROUTES.get((method, path))
    if handler is None:
        raise LookupError(f"no admin route {method} {path}; see docs/emulator.md")
    with server.lock:
        return handler(server, payload)
