"""Parallel wiring and DEL's background teardown, in real namespaces (issue 18).

DEL removes a pod's rules and route, releases its address durably, answers, and deletes the host
veth afterwards on a teardown worker. These tests hold those deletions back (``HeldDeletes``) to
prove the ordering guarantees while one is pending: an ADD of the same pod (same container, or a
new sandbox with the same pod name, hence the same veth name) waits for it; a new pod given the
released address is wired at once and keeps its routing when the old veth goes; a repeated DEL,
or a late DEL of an old sandbox, changes nothing of another pod's; CHECK never reports a
released pod. ADD replaces what a crashed ADD left, and an ADD into a namespace reused at once
after DEL (another pod, same ifname) is wired while the old pair's deletion is pending - even
when that deletion removes the old ``eth0`` between the ADD's lookup and its own deletion. The
wiring workers run calls at once, each in the node namespace with a socket of its own. Finally
the daemon is killed (-9) with deletions pending: its restart leaves no veth, route or rule
behind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from tests.daemon.conftest import Node
from tests.netns.conftest import ip
from tests.netns.test_datapath import add as daemon_add
from tests.pod_fds import FDS, pod_fds
from vpccni.adapters import pod_network
from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.adapters.host_network import NetlinkHostNetwork
from vpccni.adapters.netlink_kit import NetlinkWorkers
from vpccni.adapters.pod_network import NetlinkPodNetwork
from vpccni.core.datastore import Datastore
from vpccni.core.model import EniInfo, Mode, PodKey
from vpccni.core.naming import host_veth_name
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.listeners import Passed
from vpccni.daemon.rpc import RpcHooks, handle_request
from vpccni.daemon.service import IpamService
from vpccni.lab.topology import Lab
from vpccni.settings import DatapathSettings

SUBNET = IPv4Network("10.0.1.0/24")
WAIT = 15.0


class TickingClock:
    """Each reading one second later: a released address cools down for 0 s (as with
    IP_COOLDOWN_PERIOD=0) and is handed out again at the next ADD."""

    def __init__(self) -> None:
        self.at = 1_000_000.0

    def now(self) -> float:
        self.at += 1
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += seconds


class HeldDeletes(NetlinkPodNetwork):
    """The real adapter, with host veth deletions held back while ``gate`` is clear."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.gate = threading.Event()
        self.gate.set()

    def delete_link(self, index: int) -> Future[None]:
        outer: Future[None] = Future()

        def later() -> None:
            self.gate.wait(WAIT)
            try:
                super(HeldDeletes, self).delete_link(index).result()
            except BaseException as error:
                outer.set_exception(error)
            else:
                outer.set_result(None)

        threading.Thread(target=later, daemon=True).start()
        return outer


@dataclass
class Wired:
    """A node namespace with the daemon's datapath and IPAM service, driven in-process through
    the plugin API's request handler (the descriptors passed as the plugin passes them)."""

    node: str
    pods: HeldDeletes
    datapath: Datapath
    service: IpamService
    new_netns: Callable[[], str]

    def request(self, op: str, container: str, pod: str, netns: str = "", **more: Any) -> Any:
        cni = {
            "command": op.upper(),
            "container_id": container,
            "netns": netns,
            "ifname": "eth0",
            "args": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
        }
        request = {
            "version": 1,
            "op": op,
            "cni": cni,
            "config": {"cniVersion": "1.0.0", "name": "aws-cni", **more},
        }
        hooks = RpcHooks(datapath=self.datapath)
        if op == "del":
            return handle_request(request, self.service, hooks)
        with pod_fds(netns) as fds:
            passed = Passed(tuple(fds))
            return handle_request({**request, "fds": FDS}, self.service, hooks, passed)

    def add(self, container: str, pod: str, netns: str) -> dict[str, Any]:
        reply = self.request("add", container, pod, netns)
        assert reply["ok"], reply
        result: dict[str, Any] = reply["result"]
        return result

    def delete(self, container: str, pod: str, prev: dict[str, Any] | None = None) -> None:
        more = {} if prev is None else {"prevResult": {"cniVersion": "1.0.0", **prev}}
        reply = self.request("del", container, pod, **more)
        assert reply == {"version": 1, "ok": True, "result": {}}, reply

    def check(self, container: str, pod: str, netns: str) -> dict[str, Any]:
        reply: dict[str, Any] = self.request("check", container, pod, netns)
        return reply

    def index(self, veth: str) -> int | None:
        found = [
            line.split(":")[0]
            for line in ip("-n", self.node, "-o", "link", "show").splitlines()
            if line.split(":")[1].strip().split("@")[0] == veth
        ]
        return int(found[0]) if found else None

    def rules(self) -> str:
        return ip("-n", self.node, "rule")

    def routes(self) -> str:
        return ip("-n", self.node, "route")

    def settle(self) -> None:
        """Release the held deletions and wait until none is pending."""
        self.pods.gate.set()
        deadline = threading.Event()
        for _ in range(int(WAIT * 20)):
            if not self.datapath.pending_teardowns():
                return
            deadline.wait(0.05)
        pytest.fail(f"teardowns still pending: {self.datapath.pending_teardowns()}")


@pytest.fixture
def wired(netns_factory: Callable[[], str], tmp_path: Path) -> Iterator[Wired]:
    node = netns_factory()
    datastore = Datastore(Mode.SECONDARY_IP, 0)
    datastore.add_eni(EniInfo("eni-0", 0, primary=True))
    for last in (10, 11):
        datastore.add_cidr("eni-0", IPv4Network(f"10.0.1.{last}/32"))
    store = FileCheckpointStore(tmp_path / "checkpoint")
    store.load()
    service = IpamService(datastore, store, TickingClock())
    pods = HeldDeletes(node)
    datapath = Datapath(pods, NetlinkHostNetwork(node, DatapathSettings()), SUBNET)
    datapath.teardown_wait = WAIT
    try:
        yield Wired(node, pods, datapath, service, netns_factory)
    finally:
        pods.gate.set()
        pods.close()
        store.close()


def address_of(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def in_thread(action: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(action()), daemon=True)
    thread.start()
    return thread, out


def test_del_then_add_of_the_same_pod_waits_for_the_pending_teardown(wired: Wired) -> None:
    netns = f"/var/run/netns/{wired.new_netns()}"
    first = wired.add("c1", "p", netns)
    veth, address = first["interfaces"][0]["name"], address_of(first)
    old_index = wired.index(veth)
    wired.pods.gate.clear()
    wired.delete("c1", "p")
    # Answered with the veth still there (pending), but no rule or route for the address.
    assert wired.index(veth) == old_index
    assert wired.datapath.pending_teardowns() == {veth}
    assert f"to {address} lookup main" not in wired.rules()
    assert f"{address} dev {veth}" not in wired.routes()
    assert wired.check("c1", "p", netns)["error"]["code"] == 102  # released: not present
    thread, out = in_thread(lambda: wired.add("c1", "p", netns))
    thread.join(0.5)
    assert thread.is_alive(), "the ADD did not wait for the pending teardown of its veth"
    wired.pods.gate.set()
    thread.join(WAIT)
    assert out, "the ADD did not finish once the teardown had"
    second = out[0]
    assert second["interfaces"][0]["name"] == veth
    new_index = wired.index(veth)
    assert new_index is not None
    assert new_index != old_index
    assert wired.check("c1", "p", netns) == {"version": 1, "ok": True, "result": {}}
    address = address_of(second)
    assert f"inet {address}/32" in ip("-n", Path(netns).name, "-4", "addr", "show", "dev", "eth0")
    # A new sandbox of the same pod (same veth name) waits the same way.
    wired.pods.gate.clear()
    wired.delete("c1", "p")
    other = f"/var/run/netns/{wired.new_netns()}"
    thread, out = in_thread(lambda: wired.add("c2", "p", other))
    thread.join(0.5)
    assert thread.is_alive()
    wired.settle()
    thread.join(WAIT)
    assert out
    assert out[0]["interfaces"][0]["name"] == veth
    assert wired.check("c2", "p", other)["ok"]


def test_a_new_pod_given_the_released_address_keeps_its_routing(wired: Wired) -> None:
    """One address left: the next pod gets the one just released, at once (another veth), and
    the old veth's deletion and a repeated DEL of the old pod leave its routing alone."""
    blocker = wired.add("c0", "blocker", f"/var/run/netns/{wired.new_netns()}")
    x_netns, y_netns = (f"/var/run/netns/{wired.new_netns()}" for _ in range(2))
    x = wired.add("cx", "x", x_netns)
    wired.pods.gate.clear()
    wired.delete("cx", "x", prev=x)
    y = wired.add("cy", "y", y_netns)  # not held back: another veth, the address is free
    assert address_of(y) == address_of(x) != address_of(blocker)
    old, new = x["interfaces"][0]["name"], y["interfaces"][0]["name"]
    assert old != new
    assert wired.datapath.pending_teardowns() == {old}
    wired.delete("cx", "x", prev=x)  # repeated, with prevResult naming y's address now
    wired.settle()
    assert wired.index(old) is None
    assert wired.check("cy", "y", y_netns) == {"version": 1, "ok": True, "result": {}}
    address = address_of(y)
    assert f"{address} dev {new} proto static scope link" in wired.routes()
    assert f"to {address} lookup main" in wired.rules()


def test_repeated_and_late_dels_change_nothing_of_another_pod(wired: Wired) -> None:
    """DEL is idempotent (while its teardown is pending and after), and a late DEL of an old
    sandbox leaves the new sandbox of the same pod - same veth name - wired."""
    old_netns, new_netns = (f"/var/run/netns/{wired.new_netns()}" for _ in range(2))
    old = wired.add("old", "p", old_netns)
    new = wired.add("new", "p", new_netns)  # replaces the old sandbox's veth (same name)
    veth = new["interfaces"][0]["name"]
    assert old["interfaces"][0]["name"] == veth
    wired.pods.gate.clear()
    wired.delete("old", "p", prev=old)
    assert wired.datapath.pending_teardowns() == set()  # the veth is the new sandbox's
    wired.settle()
    assert wired.index(veth) is not None
    assert wired.check("new", "p", new_netns) == {"version": 1, "ok": True, "result": {}}
    assert f"to {address_of(old)} lookup main" not in wired.rules()
    wired.pods.gate.clear()
    for _ in range(3):
        wired.delete("new", "p", prev=new)
    assert wired.datapath.pending_teardowns() == {veth}
    wired.settle()
    assert wired.index(veth) is None
    assert wired.service.lookup(PodKey("aws-cni", "new", "eth0")) is None
    assert f"to {address_of(new)} lookup main" not in wired.rules()
    assert " dev eni" not in wired.routes()


def test_add_replaces_what_a_crashed_add_left(wired: Wired) -> None:
    """The pod's host veth name and its eth0 both in use (left by a crashed ADD): ADD deletes
    them and wires the pod."""
    pod = wired.new_netns()
    veth = host_veth_name("default", "p", "c1", "eth0")
    ip("-n", wired.node, "link", "add", veth, "type", "veth", "peer", "name", "left0")
    ip("-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "left1")
    result = wired.add("c1", "p", f"/var/run/netns/{pod}")
    assert result["interfaces"][0]["name"] == veth
    assert wired.check("c1", "p", f"/var/run/netns/{pod}")["ok"]
    assert "left0" not in ip("-n", wired.node, "-o", "link", "show")
    assert "left1" not in ip("-n", pod, "-o", "link", "show")


def pod_links(netns: str) -> dict[str, str]:
    """The links in a pod namespace other than lo: name -> "index peer-index" (the veth's peer
    as the kernel lists it: ``eth0@if12``)."""
    links = {}
    for line in ip("-n", netns, "-o", "link", "show").splitlines():
        index, name = line.split(":")[0], line.split(":")[1].strip()
        if name != "lo":
            links[name.split("@")[0]] = f"{index} {name.partition('@')[2]}"
    return links


def test_add_into_a_namespace_whose_old_pair_is_still_being_deleted(wired: Wired) -> None:
    """The runtime reuses a pod's namespace at once after DEL (podman network disconnect and
    connect): another pod (another veth name) with the same ifname. The old pair's pod end
    still holds ``eth0`` there while its deletion is held back; the ADD does not wait for it, it
    deletes the leftover itself and is wired at once; the held deletion finds nothing left and
    touches nothing of the new pod's."""
    pod = wired.new_netns()
    netns = f"/var/run/netns/{pod}"
    first = wired.add("c1", "p1", netns)
    old = first["interfaces"][0]["name"]
    wired.pods.gate.clear()
    wired.delete("c1", "p1")
    assert wired.datapath.pending_teardowns() == {old}
    assert "eth0" in pod_links(pod)  # the old pair's pod end, deletion pending
    second = wired.add("c2", "p2", netns)
    new = second["interfaces"][0]["name"]
    assert new != old
    assert wired.index(old) is None  # the ADD deleted the leftover pair
    assert wired.datapath.pending_teardowns() == {old}  # its deletion still held back
    new_index = wired.index(new)
    assert list(pod_links(pod)) == ["eth0"]
    assert pod_links(pod)["eth0"].endswith(f"if{new_index}")  # eth0 is the new pair's end
    wired.settle()  # the held deletion: its veth is gone already
    assert wired.index(new) == new_index
    assert wired.check("c2", "p2", netns) == {"version": 1, "ok": True, "result": {}}
    address = address_of(second)
    assert f"inet {address}/32" in ip("-n", pod, "-4", "addr", "show", "dev", "eth0")
    assert f"{address} dev {new} proto static scope link" in wired.routes()
    wired.delete("c2", "p2")
    wired.settle()
    assert pod_links(pod) == {}
    assert " dev eni" not in wired.routes()
    assert not [line for line in wired.rules().splitlines() if line.startswith("512:")]
    assert "eni" not in ip("-n", wired.node, "-o", "link", "show")


class PendingDeletionWins:
    """The pod-side ``IPRoute`` of ``NetlinkPodNetwork``, with the race made to happen: right
    after the ADD has looked up the ``eth0`` left in the pod's namespace, the held background
    deletion of the old pair is let go and finishes, before the ADD deletes it."""

    def __init__(self, wired: Wired, old: str, **kwargs: Any) -> None:
        self._ipr = IPRoute(**kwargs)
        self._wired, self._old = wired, old

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ipr, name)

    def link_lookup(self, **kwargs: Any) -> list[int]:
        found: list[int] = self._ipr.link_lookup(**kwargs)
        if kwargs.get("ifname") == "eth0" and found and not self._wired.pods.gate.is_set():
            self._wired.pods.gate.set()
            for _ in range(int(WAIT * 20)):  # not settle(): this ADD holds its own veth name
                if self._old not in self._wired.datapath.pending_teardowns():
                    break
                threading.Event().wait(0.05)
            assert self._wired.index(self._old) is None
        return found


def test_add_whose_leftover_vanishes_before_it_deletes_it(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of a namespace reused after DEL (seen at cycle 2318 of benchmarks/daemon_rss.py
    as 'No such device'): the ADD finds the old ``eth0``, the background deletion removes it
    before the ADD does; the ADD takes it as gone and is wired."""
    pod = wired.new_netns()
    netns = f"/var/run/netns/{pod}"
    old = wired.add("c1", "p1", netns)["interfaces"][0]["name"]
    wired.pods.gate.clear()
    wired.delete("c1", "p1")
    monkeypatch.setattr(
        pod_network, "IPRoute", lambda **kwargs: PendingDeletionWins(wired, old, **kwargs)
    )
    second = wired.add("c2", "p2", netns)
    monkeypatch.undo()
    assert wired.pods.gate.is_set(), "the ADD did not meet the old pair's eth0"
    new = second["interfaces"][0]["name"]
    assert pod_links(pod)["eth0"].endswith(f"if{wired.index(new)}")
    assert wired.check("c2", "p2", netns) == {"version": 1, "ok": True, "result": {}}
    wired.delete("c2", "p2")
    wired.settle()
    assert pod_links(pod) == {}
    assert "eni" not in ip("-n", wired.node, "-o", "link", "show")


def test_pods_are_wired_and_torn_down_in_parallel(wired: Wired) -> None:
    """Wiring workers run calls at once (they meet at a barrier), each inside the node
    namespace with a netlink socket of its own; a burst of ADDs and DELs leaves nothing."""
    workers = NetlinkWorkers(f"/var/run/netns/{wired.node}", 4, "test")
    barrier = threading.Barrier(4, timeout=WAIT)

    def meet(ipr: Any) -> tuple[int, list[str]]:
        barrier.wait()
        return id(ipr), [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]

    try:
        seen = [f.result(WAIT) for f in [workers.submit(meet) for _ in range(4)]]
    finally:
        workers.close()
    assert len({socket for socket, _ in seen}) == 4
    assert all(links == ["lo"] for _, links in seen)  # the node namespace, not ours

    for last in range(12, 20):
        wired.service.datastore.add_cidr("eni-0", IPv4Network(f"10.0.1.{last}/32"))
    spaces = [f"/var/run/netns/{wired.new_netns()}" for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: wired.add(f"b{i}", f"b{i}", spaces[i]), range(8)))
        assert len({address_of(r) for r in results}) == 8
        for i, netns in enumerate(spaces):
            assert wired.check(f"b{i}", f"b{i}", netns)["ok"]
        list(pool.map(lambda i: wired.delete(f"b{i}", f"b{i}"), range(8)))
    wired.settle()
    assert " dev eni" not in wired.routes()
    assert not [line for line in wired.rules().splitlines() if line.startswith("512:")]
    assert "eni" not in ip("-n", wired.node, "-o", "link", "show")


def host_state(lab: Lab) -> tuple[list[str], list[str], list[str]]:
    """Pod rules (512, 1536), /32 routes to eni veths, eni veths in the node namespace."""
    rules = [
        line
        for line in ip("-n", lab.node, "rule").splitlines()
        if line.startswith(("512:", "1536:"))
    ]
    routes = [line for line in ip("-n", lab.node, "route").splitlines() if " dev eni" in line]
    veths = [
        line.split(":")[1].strip()
        for line in ip("-n", lab.node, "-o", "link", "show").splitlines()
        if line.split(":")[1].strip().startswith("eni")
    ]
    return rules, routes, veths


def test_kill_9_with_teardowns_pending_leaks_nothing(lab_node: tuple[Node, Lab]) -> None:
    """DELs answered, their veths not yet deleted, kill -9: the released addresses stay
    released and the restart removes every veth left (its routes and rules went before the
    answer). Repeated until a kill caught deletions pending (a burst of DELs outruns the
    teardown workers)."""
    node, lab = lab_node
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    spaces = [f"{lab.prefix}-t{i}" for i in range(9)]
    for name in spaces:
        ip("netns", "add", name)
    caught = []
    try:
        for round_number in range(10):
            containers = [f"k{round_number}-{i}" for i in range(9)]
            for i, name in enumerate(spaces):
                node.wait_for_reply(
                    lambda c=containers[i], name=name, i=i: daemon_add(
                        node, c, f"/var/run/netns/{name}", f"t{i}"
                    )
                )
            with ThreadPoolExecutor(9) as pool:
                replies = list(pool.map(node.delete, containers))
            node.stop(signal.SIGKILL)
            assert all(r["ok"] for r in replies), replies
            rules, routes, veths = host_state(lab)
            assert (rules, routes) == ([], [])  # both went before each answer
            caught.append(len(veths))
            node.start("--netns", lab.node)
            assert node.introspect("/v1/pods") == []
            assert host_state(lab) == ([], [], [])
            node.advance(31)  # the released addresses cool down on the emulator's clock
            node.wait_for(
                lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs"
            )
            if caught[-1]:
                break
        assert any(caught), f"no kill caught a deletion pending in {len(caught)} rounds"
    finally:
        for name in spaces:
            ip("netns", "del", name)
