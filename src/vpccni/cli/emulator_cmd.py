"""``vpccni emulator``: serve the local EC2 + IMDS emulator on loopback until stopped.

Builds the emulator from, in order of precedence: command-line knob flags, ``--preset`` (over
what follows), the ``--state`` file (if it exists; it then wins over the scenario, which is not
applied twice), the ``--scenario`` file, and the defaults. ``--iam-policy FILE`` (a JSON policy
document) is enforced over whatever policy the state or scenario had. Prints the EC2 endpoint
and each node's IMDS endpoint, serves until SIGINT or SIGTERM, saves the state (``--state``) and
returns a final line. ``--print-endpoints`` sets everything up, saves, prints the endpoints and
exits without serving.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from vpccni.errors import InvalidInput

if TYPE_CHECKING:
    from vpccni.emulator.clock import EmulatorClock
    from vpccni.emulator.iam import Policy
    from vpccni.emulator.realism import Knobs
    from vpccni.emulator.service import Emulator
    from vpccni.emulator.world import Scenario

DEFAULT_PORT = 5309
DEFAULT_REGION = "us-west-2"
FAULT_CODES = ("InternalError", "Unavailable")
MAX_SCENARIO_BYTES = 4 * 1024 * 1024
TIMING_FLAGS = (
    "imds_lag",
    "attach_delay",
    "detach_delay",
    "imds_addresses_delay",
    "imds_stale_mac",
    "imds_stale_addresses",
    "subnet_count_lag",
)


def register(subparsers: Any) -> None:
    """Add the ``emulator`` subcommand."""
    parser = subparsers.add_parser(
        "emulator",
        help="run the local EC2 + IMDS emulator (loopback only)",
        description="Serve an EC2 Query API and per-node IMDSv2 that enforce instance ENI and "
        "address limits, subnet exhaustion, /28 prefix alignment, AWS's API rate limits, "
        "attach/detach delays, IMDS lag, DryRun and (with --iam-policy) an IAM policy. boto3 "
        "works unmodified against it "
        "(endpoint_url=...). See docs/emulator.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument("--scenario", metavar="FILE", help="JSON scenario to create at start")
    parser.add_argument("--state", metavar="FILE", help="load state from / save it to FILE")
    parser.add_argument(
        "--save-every", type=float, default=30.0, metavar="S", help="save --state every S s"
    )
    parser.add_argument("--region", help=f"region (default {DEFAULT_REGION})")
    parser.add_argument(
        "--iam-policy",
        metavar="FILE",
        help="enforce this IAM policy (JSON document) on every EC2 request, as the node's role: "
        "a denied call answers UnauthorizedOperation (HTTP 403) and changes nothing; without "
        "it every request is allowed. DryRun=true is always honoured (docs/emulator.md, IAM)",
    )
    parser.add_argument("--imds-lag", type=float, metavar="S", help="IMDS shows EC2 S s late")
    parser.add_argument("--attach-delay", type=float, metavar="S", help="attaching for S s")
    parser.add_argument("--detach-delay", type=float, metavar="S", help="detaching for S s")
    parser.add_argument(
        "--preset",
        choices=("default", "realistic"),
        help="timing preset: realistic = a few seconds of attach/detach, IMDS lag and partial "
        "IMDS views (docs/emulator.md); the other flags apply over it",
    )
    parser.add_argument(
        "--imds-addresses-delay",
        type=float,
        metavar="S",
        help="a new ENI's MAC lists only its primary address (no prefixes) for S s",
    )
    parser.add_argument(
        "--imds-stale-mac",
        type=float,
        metavar="S",
        help="a detached ENI's MAC stays listed (device-number 404) for S s",
    )
    parser.add_argument(
        "--imds-stale-addresses",
        type=float,
        metavar="S",
        help="unassigned addresses/prefixes stay in IMDS for S s",
    )
    parser.add_argument(
        "--subnet-count-lag",
        type=float,
        metavar="S",
        help="DescribeSubnets' AvailableIpAddressCount is S s old",
    )
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="ACTION=S",
        help="answer ACTION (or * for all) after S seconds; repeatable",
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="turn off AWS's API token buckets"
    )
    parser.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="ACTION=SIZE/REFILL",
        help="override one API's token bucket; repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ACTION=RATE[:CODE][:after]",
        help=f"fail RATE (0..1) of ACTION (or *) calls with CODE ({'|'.join(FAULT_CODES)}); "
        "':after' fails after acting; repeatable",
    )
    parser.add_argument("--seed", type=int, help="seed for faults, tokens, random addresses")
    parser.add_argument(
        "--random-addresses", action="store_true", help="scatter addresses like EC2 does"
    )
    parser.add_argument(
        "--print-endpoints", action="store_true", help="set up, print endpoints and exit"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> str:
    """Set the emulator up, serve it until SIGINT/SIGTERM, and say how it ended."""
    # Imported here, not at the top: the emulator (and botocore, which its HTTP front loads)
    # would otherwise slow every other vpccni command down.
    from vpccni.emulator.server import EmulatorServer, is_loopback
    from vpccni.emulator.statefile import dump_state, write_state_file

    if not is_loopback(args.host):
        raise InvalidInput(f"--host {args.host}: the emulator serves loopback only (127.0.0.1)")
    if not 0 <= args.port <= 65535:
        raise InvalidInput(f"--port {args.port}: give a port between 0 and 65535")
    state_path = Path(args.state) if args.state else None
    scenario = read_scenario(Path(args.scenario)) if args.scenario else None
    policy = read_policy(Path(args.iam_policy)) if args.iam_policy else None
    emulator, clock, names, note = build(args, scenario, state_path)
    if policy is not None:
        emulator.set_iam_policy(policy)
    if args.print_endpoints:
        if state_path is not None:
            write_state_file(state_path, dump_state(emulator, clock.offset))
        return describe(emulator, f"http://{args.host}:{args.port}", names, note)
    server = EmulatorServer(
        emulator, args.host, args.port, clock=clock, state_path=state_path, verbose=args.verbose
    )
    stop = threading.Event()
    previous = _on_signals(stop)
    server.start(save_every=args.save_every if args.save_every > 0 else None)
    print(describe(emulator, server.endpoint, names, note), flush=True)
    print("serving; stop with Ctrl-C (SIGINT) or SIGTERM", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        _restore_signals(previous)
    requests = emulator.stats["requests"]
    saved = f"; state saved to {state_path}" if state_path else ""
    return f"emulator stopped after {requests} EC2 requests{saved}"


def read_scenario(path: Path) -> Scenario:
    from vpccni.emulator.errors import EmulatorSetupError
    from vpccni.emulator.world import parse_scenario

    try:
        with path.open(encoding="utf-8") as handle:
            text = handle.read(MAX_SCENARIO_BYTES + 1)
    except OSError as error:
        raise EmulatorSetupError(f"cannot read scenario {path}: {error.strerror}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise EmulatorSetupError(
            f"scenario {path} is not valid JSON (line {error.lineno}: {error.msg})"
        ) from error
    try:
        return parse_scenario(document)
    except EmulatorSetupError as error:
        raise EmulatorSetupError(f"{path}: {error}") from error


def read_policy(path: Path) -> Policy:
    """The IAM policy in ``path``, loaded (refusals name the file and the element)."""
    from vpccni.emulator.errors import EmulatorSetupError
    from vpccni.emulator.iam import load_policy

    try:
        with path.open(encoding="utf-8") as handle:
            text = handle.read(MAX_SCENARIO_BYTES + 1)
    except OSError as error:
        raise EmulatorSetupError(f"cannot read --iam-policy {path}: {error.strerror}") from error
    try:
        return load_policy(text)
    except EmulatorSetupError as error:
        raise EmulatorSetupError(f"--iam-policy {path}: {error}") from error


def build(
    args: argparse.Namespace, scenario: Scenario | None, state_path: Path | None
) -> tuple[Emulator, EmulatorClock, dict[str, str], str]:
    """The emulator, its clock, scenario names -> ids, and a note on where it came from."""
    from vpccni.adapters.instance_data import load_instance_table
    from vpccni.emulator.clock import EmulatorClock
    from vpccni.emulator.realism import Knobs
    from vpccni.emulator.service import Emulator
    from vpccni.emulator.statefile import read_state_file
    from vpccni.emulator.world import apply_scenario

    table = load_instance_table()
    loaded = read_state_file(state_path, table) if state_path else None
    if loaded is not None:
        emulator, offset = loaded
        emulator.set_knobs(knobs_from_flags(args, emulator.knobs))
        clock = EmulatorClock(offset)
        note = f"state loaded from {state_path}" + (
            " (scenario not applied again)" if scenario else ""
        )
        return emulator, clock, {}, note
    base = scenario.knobs_over(Knobs()) if scenario else Knobs()
    region = args.region or (scenario.region if scenario else None) or DEFAULT_REGION
    emulator = Emulator(table, knobs_from_flags(args, base), region)
    clock = EmulatorClock()
    names = apply_scenario(emulator, scenario, clock.now()) if scenario else {}
    note = f"scenario {args.scenario} applied" if scenario else "empty (no scenario)"
    return emulator, clock, names, note


def knobs_from_flags(args: argparse.Namespace, base: Knobs) -> Knobs:
    """``base`` with the knob flags given on the command line applied."""
    from vpccni.emulator.errors import EmulatorSetupError
    from vpccni.emulator.realism import knobs_from_json

    changes: dict[str, Any] = {}
    if args.preset:
        changes["preset"] = args.preset
    if args.no_rate_limits:
        changes["rate_limits"] = False
    if args.random_addresses:
        changes["random_addresses"] = True
    for name in (*TIMING_FLAGS, "seed"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.latency:
        changes["latency"] = {**base.latency, **dict(_pair(v, "--latency") for v in args.latency)}
    if args.bucket:
        buckets = {k: {"size": s.size, "refill": s.refill} for k, s in base.buckets.items()}
        changes["buckets"] = buckets | dict(_bucket(v) for v in args.bucket)
    if args.fault:
        faults = {
            k: {"rate": f.rate, "code": f.code, "after": f.after} for k, f in base.faults.items()
        }
        changes["faults"] = faults | dict(_fault(v) for v in args.fault)
    try:
        return knobs_from_json(changes, base, "command line")
    except EmulatorSetupError as error:
        raise InvalidInput(str(error)) from error


def _pair(text: str, flag: str) -> tuple[str, float]:
    action, sep, value = text.partition("=")
    try:
        if not sep or not action:
            raise ValueError(text)
        return action, float(value)
    except ValueError:
        raise InvalidInput(
            f"{flag} {text!r}: write ACTION=SECONDS, e.g. AttachNetworkInterface=0.5"
        ) from None


def _bucket(text: str) -> tuple[str, dict[str, float]]:
    action, sep, value = text.partition("=")
    size, slash, refill = value.partition("/")
    try:
        if not (sep and slash and action):
            raise ValueError(text)
        return action, {"size": float(size), "refill": float(refill)}
    except ValueError:
        raise InvalidInput(
            f"--bucket {text!r}: write ACTION=SIZE/REFILL, e.g. CreateTags=100/10"
        ) from None


def _fault(text: str) -> tuple[str, dict[str, Any]]:
    action, sep, value = text.partition("=")
    parts = value.split(":")
    try:
        if not sep or not action or len(parts) > 3:
            raise ValueError(text)
        spec: dict[str, Any] = {"rate": float(parts[0])}
        for part in parts[1:]:
            if part == "after":
                spec["after"] = True
            else:
                spec["code"] = part
        return action, spec
    except ValueError:
        raise InvalidInput(
            f"--fault {text!r}: write ACTION=RATE[:CODE][:after], "
            "e.g. AttachNetworkInterface=0.1:Unavailable"
        ) from None


def describe(emulator: Emulator, endpoint: str, names: dict[str, str], note: str) -> str:
    """The endpoints and knobs, as the startup lines."""
    by_id = {v: k for k, v in names.items()}
    knobs = emulator.knobs
    lines = [
        f"vpccni emulator: {note}",
        f"EC2 endpoint   {endpoint}   (region {emulator.region})",
        f"admin          {endpoint}/admin/",
    ]
    for instance in sorted(emulator.model.store.instances.values(), key=lambda i: i.instance_id):
        if instance.running:
            label = f" ({by_id[instance.instance_id]})" if instance.instance_id in by_id else ""
            lines.append(
                f"IMDS           {endpoint}/imds/{instance.instance_id}/   "
                f"{instance.instance_type}{label}"
            )
    lines.append(
        f"knobs          rate limits {'on' if knobs.rate_limits else 'off'}, IMDS lag "
        f"{knobs.imds_lag:g} s, attach {knobs.attach_delay:g} s, detach {knobs.detach_delay:g} s, "
        f"faults {len(knobs.faults)}, seed {knobs.seed}"
    )
    partial = (
        knobs.imds_addresses_delay,
        knobs.imds_stale_mac,
        knobs.imds_stale_addresses,
        knobs.subnet_count_lag,
    )
    policy = emulator.iam_policy
    if policy is not None:
        lines.append(
            f"IAM            enforcing a policy of {len(policy.statements)} statement(s) as the "
            "node's role (GET /admin/iam-policy)"
        )
    if any(partial):
        lines.append(
            "partial views  IMDS addresses after attach {:g} s, MAC after detach {:g} s, "
            "addresses after unassign {:g} s; subnet count lag {:g} s".format(*partial)
        )
    return "\n".join(lines)


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
