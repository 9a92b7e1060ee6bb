"""The emulator's state as JSON (``--state FILE``): encode, decode, and write atomically.

Owns :func:`dump_state` / :func:`load_state` (every resource, id counter, pending attach/detach
transition, the knobs, the enforced IAM policy and the clock offset; not the IMDS history,
rate-limit buckets or IMDS tokens, which restart fresh) and the two file edges
:func:`read_state_file` and :func:`write_state_file` (temp file, fsync, rename, so a crash
leaves the old or the new file, never half of one). A file that cannot be read back is refused
with a message naming it.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from vpccni.emulator.addressing import SubnetPool
from vpccni.emulator.errors import Ec2Error, EmulatorSetupError
from vpccni.emulator.iam import PolicyError
from vpccni.emulator.realism import knobs_from_json, knobs_to_json
from vpccni.emulator.records import (
    Attachment,
    CidrAssociation,
    Eni,
    Instance,
    SecurityGroup,
    Subnet,
    Vpc,
)
from vpccni.emulator.service import Emulator
from vpccni.emulator.store import LimitsSource, Transition

FORMAT_NAME = "vpccni-emulator-state"
FORMAT_VERSION = 1
TUPLE_FIELDS = ("group_ids", "private_ips", "prefixes")


def dump_state(emulator: Emulator, clock_offset: float) -> dict[str, Any]:
    """The whole emulator as a JSON-ready dict."""
    store = emulator.model.store
    now = emulator.model.now
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "region": emulator.region,
        "now": now if now != float("-inf") else None,
        "clock_offset": clock_offset,
        "knobs": knobs_to_json(emulator.knobs),
        "iam_policy": None if emulator.iam_policy is None else dict(emulator.iam_policy.document),
        "counters": dict(store.counters),
        "vpcs": [asdict(v) for v in store.vpcs.values()],
        "subnets": [asdict(s) for s in store.subnets.values()],
        "security_groups": [asdict(g) for g in store.groups.values()],
        "instances": [asdict(i) for i in store.instances.values()],
        "network_interfaces": [asdict(e) for e in store.enis.values()],
        "pending": [asdict(t) for t in sorted(store.pending)],
    }


def load_state(
    document: Mapping[str, Any], limits: LimitsSource, where: str
) -> tuple[Emulator, float]:
    """An emulator rebuilt from ``dump_state`` output, and the saved clock offset."""
    if document.get("format") != FORMAT_NAME or document.get("version") != FORMAT_VERSION:
        raise EmulatorSetupError(
            f"{where} is not a vpccni emulator state file (format {FORMAT_NAME} "
            f"v{FORMAT_VERSION}); give another --state path or move the file away"
        )
    try:
        return _rebuild(document, limits)
    except PolicyError as error:
        raise EmulatorSetupError(f"{where}: iam_policy: {error}") from error
    except (KeyError, TypeError, ValueError, Ec2Error) as error:
        raise EmulatorSetupError(
            f"{where} is damaged or inconsistent ({type(error).__name__}: {error}); "
            "move it away to start empty"
        ) from error


def _record(cls: Any, raw: Mapping[str, Any]) -> Any:
    values = dict(raw)
    if "tags" in values:
        values["tags"] = tuple((str(k), str(v)) for k, v in values["tags"])
    for name in TUPLE_FIELDS:
        if name in values:
            values[name] = tuple(values[name])
    return cls(**values)


def _vpc(raw: Mapping[str, Any], counters: dict[str, int]) -> Vpc:
    """A saved VPC; one saved before VPCs had secondary blocks gets its primary association,
    with the id DescribeVpcs showed for it then (``vpc-cidr-assoc-`` and the VPC's number), and
    the association counter moves past it so that new ids never repeat it."""
    associations = tuple(CidrAssociation(**a) for a in raw.get("associations") or ())
    vpc: Vpc = _record(Vpc, {**raw, "associations": associations})
    if not associations:
        suffix = vpc.vpc_id.removeprefix("vpc-")
        primary = CidrAssociation(f"vpc-cidr-assoc-{suffix}", vpc.cidr)
        vpc = replace(vpc, associations=(primary,))
        counters["cidr-assoc"] = max(counters.get("cidr-assoc", 0), int(suffix, 16))
    return vpc


def _rebuild(document: Mapping[str, Any], limits: LimitsSource) -> tuple[Emulator, float]:
    knobs = knobs_from_json(document["knobs"], where="state file knobs")
    emulator = Emulator(limits, knobs, str(document["region"]), document.get("iam_policy"))
    store = emulator.model.store
    now = float(document["now"]) if document.get("now") is not None else 0.0
    store.counters.update({str(k): int(v) for k, v in document["counters"].items()})
    for raw in document["vpcs"]:
        vpc = _vpc(raw, store.counters)
        store.vpcs[vpc.vpc_id] = vpc
    for raw in document["subnets"]:
        subnet = _record(Subnet, raw)
        store.subnets[subnet.subnet_id] = subnet
        store.pools[subnet.subnet_id] = SubnetPool(IPv4Network(subnet.cidr))
    for raw in document["security_groups"]:
        group = _record(SecurityGroup, raw)
        store.groups[group.group_id] = group
    for raw in document["instances"]:
        store.put_instance(_record(Instance, raw), now)
    for raw in document["network_interfaces"]:
        attachment = raw.get("attachment")
        eni = _record(Eni, {**raw, "attachment": None})
        if attachment is not None:
            eni = replace(eni, attachment=Attachment(**attachment))
        pool = store.pools[eni.subnet_id]
        for address in eni.private_ips:
            pool.take_address(int(IPv4Address(address)))
        for prefix in eni.prefixes:
            pool.take_prefix(int(IPv4Network(prefix).network_address))
        store.put_eni(eni, now)
    for raw in document["pending"]:
        heapq.heappush(store.pending, Transition(**raw))
    emulator.model.advance(now)
    return emulator, float(document.get("clock_offset") or 0.0)


def read_state_file(path: Path, limits: LimitsSource) -> tuple[Emulator, float] | None:
    """The emulator saved at ``path``, or None when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise EmulatorSetupError(f"cannot read state file {path}: {error.strerror}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise EmulatorSetupError(
            f"state file {path} is not valid JSON (line {error.lineno}: {error.msg}); "
            "move it away to start empty"
        ) from error
    if not isinstance(document, dict):
        raise EmulatorSetupError(f"state file {path} does not hold a JSON object")
    return load_state(document, limits, f"state file {path}")


def write_state_file(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (temp file, fsync, rename, fsync directory)."""
    temp = path.with_name(path.name + ".tmp")
    data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise EmulatorSetupError(
            f"cannot write state file {path}: {error.strerror}; check the directory exists "
            "and is writable"
        ) from error
