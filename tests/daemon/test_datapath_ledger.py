"""The datapath as a second ledger: after any damage to the checkpoint and a restart (or a
refusal and ``--recover``), no address a live pod's route holds is ever handed to a new pod.

In-process: the real IPAM service, datastore and file store in a temporary directory, and the
node's routing state as a map from address to the pod's veth (what ``pod_routes`` reads from
netlink). Live pods are those whose ADD was acknowledged and whose DEL was not.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.checkpoint_strategies import PROPERTY_EXAMPLES
from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.core.checkpoint import CheckpointCorrupt
from vpccni.core.datastore import Datastore, NoAvailableAddress
from vpccni.core.model import Assignment, EniInfo, Mode, PodKey, PodMeta
from vpccni.core.naming import host_veth_name
from vpccni.daemon.recover import adopt_routed_pods, held_key, move_aside, salvage
from vpccni.daemon.service import IpamService

ADDRESSES = [IPv4Address("10.0.1.10") + i for i in range(12)]


class Clock:
    """Each reading one second later, across restarts too (the node's clock goes on)."""

    t = 1000.0

    def now(self) -> float:
        Clock.t += 1.0
        return Clock.t

    def sleep(self, seconds: float) -> None:
        Clock.t += seconds


def veth_of(assignment: Assignment) -> str:
    key, meta = assignment.key, assignment.meta
    if key.network == held_key("").network:
        return key.container_id
    return host_veth_name(meta.namespace, meta.name, key.container_id, key.ifname)


def start(directory: Path, boot: str) -> tuple[IpamService, FileCheckpointStore]:
    datastore = Datastore(Mode.SECONDARY_IP, cooldown_seconds=0.0)
    datastore.add_eni(EniInfo("eni-0", 0, primary=True))
    for address in ADDRESSES:
        datastore.add_cidr("eni-0", IPv4Network(f"{address}/32"))
    store = FileCheckpointStore(directory, compact_every=7, boot_id=boot)
    return IpamService(datastore, store, Clock()), store


def churn(service: IpamService, rng: random.Random, steps: int) -> dict[IPv4Address, str]:
    """ADDs and DELs; returns the routing state: address -> veth of every live pod."""
    routed: dict[IPv4Address, str] = {}
    live: dict[PodKey, Assignment] = {}
    for serial in range(steps):
        if live and (len(live) >= len(ADDRESSES) - 2 or rng.random() < 0.4):
            key = rng.choice(sorted(live))
            service.delete(key)
            del routed[live.pop(key).address]
            continue
        key = PodKey("aws-cni", f"c{serial}", "eth0")
        outcome = service.add(key, PodMeta("default", f"pod-{serial}"))
        live[key] = outcome.assignment
        routed[outcome.assignment.address] = veth_of(outcome.assignment)
    return routed


DAMAGES = [
    "delete-journal",
    "delete-snapshot",
    "delete-both",
    "delete-line",
    "truncate",
    "flip-bit",
    "none",
]


def damage(directory: Path, kind: str, rng: random.Random) -> None:
    journal, snapshot = directory / "ipam.journal", directory / "ipam.snapshot"
    if kind in ("delete-journal", "delete-both"):
        journal.unlink()
    if kind in ("delete-snapshot", "delete-both"):
        snapshot.unlink()
    if kind == "delete-line":
        lines = journal.read_bytes().split(b"\n")
        del lines[rng.randrange(len(lines) - 1)]
        journal.write_bytes(b"\n".join(lines))
    if kind == "truncate":
        data = journal.read_bytes()
        journal.write_bytes(data[: rng.randrange(len(data))])
    if kind == "flip-bit":
        path = rng.choice([journal, snapshot])
        data = bytearray(path.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))


def restart(directory: Path, routed: dict[IPv4Address, str], boot: str) -> tuple[IpamService, str]:
    """Start as bootstrap does: load + restore + the cross-check; on a refusal, --recover."""
    service, store = start(directory, boot)
    hints: list[Assignment] = []
    try:
        service.datastore.restore(store.load())
        how = "loaded"
    except CheckpointCorrupt:
        aside = move_aside(directory)
        assert aside is not None
        hints, _ = salvage(aside)
        service.datastore.restore(store.load())
        how = "refused, then --recover"
    adopt_routed_pods(service, routed, veth_of, hints)
    veths = set(routed.values())
    for assignment in service.assignments():  # Datapath.converge: no veth, no pod
        if veth_of(assignment) not in veths:
            service.delete(assignment.key)
    return service, how


def fill(service: IpamService) -> list[IPv4Address]:
    handed: list[IPv4Address] = []
    for serial in range(len(ADDRESSES) + 1):
        try:
            outcome = service.add(PodKey("aws-cni", f"new{serial}", "eth0"), PodMeta("n", "p"))
        except NoAvailableAddress:
            break
        handed.append(outcome.assignment.address)
    return handed


def check_no_double_assignment(
    directory: Path, seed: int, kind: str, boot_after: str, note: Callable[[str], None]
) -> None:
    rng = random.Random(seed)
    service, store = start(directory, "boot-1")
    routed = churn(service, rng, rng.randrange(1, 40))
    store.close()
    damage(directory, kind, rng)
    service, how = restart(directory, routed, boot_after)
    note(how)
    held = {a.address: a for a in service.assignments()}
    for address, veth in routed.items():
        assert address in held, f"{kind}: live pod's {address} is not held after restart"
        assert veth_of(held[address]) == veth, f"{kind}: {address} held for the wrong veth"
    handed = fill(service)
    assert not set(handed) & set(routed), f"{kind} ({how}): a live pod's address handed out"
    assert len(handed) == len(ADDRESSES) - len(routed)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(DAMAGES), st.sampled_from(["boot-1", "boot-2"]))
def test_random_damage_and_restart_never_hand_out_a_live_pods_address(
    tmp_path_factory: object, seed: int, kind: str, boot_after: str
) -> None:
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"ledger-{os.getpid()}-{seed}-{kind}"
    try:
        check_no_double_assignment(directory, seed, kind, boot_after, lambda how: None)
    finally:
        for path in sorted(directory.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        if directory.exists():
            directory.rmdir()


def test_a_lost_pod_is_held_and_its_address_never_handed_out(tmp_path: Path) -> None:
    """The issue's reproduction: one middle line deleted used to give the next ADD the live
    pod's address."""
    service, store = start(tmp_path, "boot-1")
    first = service.add(PodKey("aws-cni", "a", "eth0"), PodMeta("default", "a")).assignment
    second = service.add(PodKey("aws-cni", "b", "eth0"), PodMeta("default", "b")).assignment
    store.close()
    routed = {a.address: veth_of(a) for a in (first, second)}
    journal = tmp_path / "ipam.journal"
    lines = journal.read_bytes().split(b"\n")
    del lines[1]  # pod a's record
    journal.write_bytes(b"\n".join(lines))
    service, how = restart(tmp_path, routed, "boot-1")
    assert how == "refused, then --recover"
    held = {a.address: a.key for a in service.assignments()}
    assert held[second.address] == second.key  # salvaged and matched to its veth
    assert held[first.address] == PodKey("aws-cni", "a", "eth0") or held[first.address] == (
        held_key(routed[first.address])
    )
    assert first.address not in fill(service)
