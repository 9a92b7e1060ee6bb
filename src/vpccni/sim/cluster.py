"""A whole cluster on virtual time: nodes, pods, the shared EC2 account, event-driven ticks.

``simulate`` builds the account (the in-process emulator with AWS's request limits), a VPC and
subnet(s), launches the scenario's nodes, and runs an event queue: pod arrivals and departures
from the workload, ticks, EC2 results landing, periodic reconcile reads, bursts, scale-out and
timeline samples. A node ticks only when ``vpccni.core.wake.next_wake`` says a tick can act
(after a pod event, a landed result, or when a timer it names expires), at the next instant of
its own 5 s tick grid - the same instants and decisions as ticking every 5 s, without the idle
ticks. Pods that find no address wait and retry as soon as addresses land or cooldowns end.
With no workload the run ends when every pod is placed and no node can act any more: the steady
state ``vpccni plan`` predicts. See docs/planning.md for what is and is not modelled.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from vpccni.capacity.plan import node_eniconfig, node_name
from vpccni.capacity.scenario import NodeGroup, Scenario, node_subnet_index
from vpccni.cloud.lifecycle import NodeContext
from vpccni.core.cluster import ClusterView, EniConfig, NodeInfo
from vpccni.core.limits import InstanceLimits
from vpccni.core.model import EniInfo
from vpccni.core.wake import next_wake
from vpccni.emulator.network import LaunchRequest
from vpccni.sim.clock import VirtualClock
from vpccni.sim.ec2 import Ec2Account, NodeEc2
from vpccni.sim.events import EventQueue
from vpccni.sim.indexes import IndexedSubnetPool
from vpccni.sim.metrics import Recorder
from vpccni.sim.node import Addition, SimNode, StaticCluster
from vpccni.sim.workload import PodSource

NEXT_ARRIVAL, DEPART, TICK, APPLY, RETRY = 0, 1, 2, 3, 4
RECONCILE, CHARGE, BURST, SCALE_OUT, SAMPLE, LAUNCH = 6, 7, 8, 9, 10, 11
PERIODIC = frozenset({RECONCILE, CHARGE, SAMPLE})
TICK_SECONDS = 5.0
RECONCILE_SECONDS = 60.0
CLEANUP_SECONDS = 3600.0
RETRY_MARGIN = 1e-3
RECONCILE_SLOTS = 60  # one sweep a second; a node reconciles in its slot, every 60 s
UNBOUNDED_SUBNET = 16
FILTERED: dict[str, Any] = {"Filters": [{"Name": "attachment.instance-id", "Values": ["i"]}]}
SUBNET_READ: dict[str, Any] = {"SubnetIds": ["s"]}
BOOT_READS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("DescribeInstances", {"InstanceIds": ["i"]}),
    ("DescribeNetworkInterfaces", FILTERED),
    ("CreateTags", {}),
    ("DescribeSubnets", SUBNET_READ),
    ("DescribeNetworkInterfaces", FILTERED),
)
Progress = Callable[[float], None]


class Simulation:
    """Every node, the event queue and the recorder of one run."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int,
        duration: float | None,
        sample_seconds: float | None = None,
        progress: Progress | None = None,
        launch_over: float = 0.0,
        stable_limit: float = 4 * 3600.0,
        fixed_ticks: bool = False,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.config = scenario.config
        self.cooldown = float(scenario.config.ip_cooldown_seconds)
        knobs = scenario.ec2 if scenario.ec2_seed_given else replace(scenario.ec2, seed=seed)
        self.account = Ec2Account(_Limits(scenario), knobs, seed, scenario.network.region)
        self.model = self.account.model
        self.queue = EventQueue()
        self.nodes: list[SimNode] = []
        self.sources: list[PodSource | None] = []
        self.rng = random.Random(f"{seed}/cluster")
        self.duration = duration
        self.progress = progress
        self.launch_over = max(launch_over, TICK_SECONDS)
        self.stable_limit = stable_limit
        self.fixed_ticks = fixed_ticks  # tick every node every 5 s (the benchmark's peer)
        self.active = 0
        self.next_pod = 0
        self.now = 0.0
        self.subnet_ids: list[str] = []
        self.launched: dict[int, int] = {}
        self.reconcile_slots: list[list[int]] = [[] for _ in range(RECONCILE_SLOTS)]
        self.security_groups: list[str] = []
        self.subnet_cidrs: dict[str, str] = {}  # subnet id -> the scenario's CIDR
        self.group_ids: dict[str, str] = {}  # the ENIConfigs' security group names -> ids
        self.imds_reconciles = 0
        self._make_network()
        horizon = duration if duration is not None else stable_limit
        self.recorder = Recorder(self, sample_seconds or max(60.0, horizon / 720))

    # -- set-up ---------------------------------------------------------------------------------

    def _make_network(self) -> None:
        network = self.scenario.network
        if network.vpc is None:
            self._make_unbounded_network()
            return
        model = self.model
        vpc = model.create_vpc(0.0, str(network.vpc.cidr))
        for block in network.vpc.secondary_cidrs:
            model.associate_vpc_cidr_block(0.0, vpc.vpc_id, str(block))
        for spec in network.subnets:
            created = model.create_subnet(
                0.0,
                vpc.vpc_id,
                str(spec.cidr),
                availability_zone=spec.availability_zone,
                tags=spec.tags,
            )
            model.store.pools[created.subnet_id] = IndexedSubnetPool(spec.cidr)
            self.subnet_ids.append(created.subnet_id)
            self.subnet_cidrs[created.subnet_id] = str(spec.cidr)
            self.security_groups.append(vpc.default_group_id)
        names = sorted({g for c in network.eniconfigs.values() for g in c.security_groups})
        for name in names:
            group = model.create_security_group(0.0, vpc.vpc_id, name, f"scenario group {name}")
            self.group_ids[name] = group.group_id

    def _make_unbounded_network(self) -> None:
        """No subnet given: a VPC per /16, enough that no node can ever run out."""
        for subnet in self._unbounded_subnets():
            vpc = self.model.create_vpc(0.0, str(subnet))
            created = self.model.create_subnet(0.0, vpc.vpc_id, str(subnet))
            self.model.store.pools[created.subnet_id] = IndexedSubnetPool(subnet)
            self.subnet_ids.append(created.subnet_id)
            self.security_groups.append(vpc.default_group_id)

    def _unbounded_subnets(self) -> list[IPv4Network]:
        """No subnet given: enough /16s that no node can ever run out."""
        need = 0
        for group in self.scenario.groups:
            extra = sum(s.nodes for s in group.workload.scale_out) if group.workload else 0
            limits = group.node_limits
            ceiling = limits.max_enis * (1 + limits.addresses_per_eni(self.config.mode))
            # pools stop growing at max pods: at most one more ENI's worth beyond it
            per_node = min(
                ceiling,
                limits.max_enis
                + limits.max_pods
                + limits.addresses_per_eni(self.config.mode)
                + max(self.config.minimum_ip_target, 0),
            )
            need += (group.nodes + extra) * per_node
        count = min(max(1, math.ceil(need / 65000)), UNBOUNDED_SUBNET)
        return [IPv4Network(f"10.{i}.0.0/16") for i in range(count)]

    def launch(self, group: NodeGroup, position: int, pods: int, at: float) -> SimNode:
        """Start node ``position`` of ``group`` at ``at`` with ``pods`` steady pods."""
        index = len(self.nodes)
        ordinal = node_subnet_index(self.scenario, group.index, self._ordinal(group, position))
        subnet_index = 0 if ordinal is None else ordinal
        if not self.scenario.subnets:
            subnet_index = index % len(self.subnet_ids)
        subnet_id = self.subnet_ids[subnet_index]
        _, instances = self.model.run_instances(
            at, LaunchRequest(group.limits.instance_type, subnet_id)
        )
        instance = instances[0]
        clock = VirtualClock(at)
        network = self.scenario.network
        spec = network.subnets[subnet_index] if self.scenario.subnets else None
        eniconfig = node_eniconfig(self.scenario, group.index, subnet_index)
        name = node_name(self.scenario, group.index, position)
        context = NodeContext(
            instance.instance_id,
            instance.vpc_id,
            subnet_id,
            (self.security_groups[subnet_index],),
            cluster_name=network.cluster_name,
            availability_zone=instance.availability_zone,
        )
        node = SimNode(
            index,
            group=group.index,
            name=name,
            context=context,
            config=self.config,
            limits=group.node_limits,
            ec2=NodeEc2(self.account, clock),
            clock=clock,
            seed=self.seed,
            cluster=None if eniconfig is None else self._cluster(name, eniconfig),
        )
        node.position = position
        node.instance_type = group.instance_type
        if spec is not None:
            node.subnet = str(spec.cidr)
            node.availability_zone = spec.availability_zone
            node.eniconfig = eniconfig
        primary = EniInfo(instance.primary_eni_id, 0, primary=True, created_at=at)
        node.pool.add_eni(node.engine.join_info(primary, subnet_id))
        node.tick_origin = at
        self.nodes.append(node)
        workload = group.workload
        source = PodSource(workload, self.seed, index) if workload is not None else None
        self.sources.append(source)
        for action, params in BOOT_READS:
            self._charge(at, index, action, params, 0)
        self.reconcile_slots[int(at) % RECONCILE_SLOTS].append(index)
        self._push(at + self.rng.uniform(0.0, CLEANUP_SECONDS), CHARGE, index, ("cleanup", 0))
        for _ in range(pods):
            self._arrive(node, at, None)
        if source is not None:
            first = source.next_arrival(at)
            if first is not None:
                self._push(first, NEXT_ARRIVAL, index)
        self._wake(node, at)
        return node

    def _cluster(self, node: str, eniconfig: str) -> StaticCluster:
        """The node's view of the cluster: its ENIConfig label and the scenario's ENIConfigs."""
        network = self.scenario.network
        configs = {
            name: EniConfig(
                name,
                self.subnet_ids[spec.subnet],
                tuple(self.group_ids[g] for g in spec.security_groups),
            )
            for name, spec in network.eniconfigs.items()
        }
        labels = {self.config.eniconfig_label: eniconfig}
        return StaticCluster(
            ClusterView(NodeInfo(node, labels), configs, generation=1, reachable=True)
        )

    def _ordinal(self, group: NodeGroup, position: int) -> int:
        """The node's place in the scenario (earlier groups first), for round-robin subnets."""
        return sum(g.nodes for g in self.scenario.groups[: group.index]) + position

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        for group in self.scenario.groups:
            for position, pods in enumerate(group.pods):
                at = self.rng.uniform(0.0, self.launch_over)
                self._push(at, LAUNCH, group.index, (position, pods))
            self.launched[group.index] = group.nodes
            if group.workload is not None:
                for burst in group.workload.bursts:
                    self._push(burst.at_minutes * 60.0, BURST, group.index, burst)
                for scale in group.workload.scale_out:
                    self._push(scale.at_minutes * 60.0, SCALE_OUT, group.index, scale)
        self.recorder.start()
        self.queue.push(1.0, RECONCILE, -1)
        end = self.duration
        cap = end if end is not None else self.stable_limit
        queue = self.queue
        reported = 0.0
        while len(queue):
            if end is None and self.active == 0:
                break
            when, _, kind, index, payload = queue.pop()
            if when > cap:
                break
            if kind not in PERIODIC:
                self.active -= 1
            self.now = when
            self._dispatch(when, kind, index, payload)
            if self.progress is not None and when - reported >= cap / 200:
                reported = when
                self.progress(when)
        self.recorder.finish(self.now if end is None else end)

    def _dispatch(self, when: float, kind: int, index: int, payload: object) -> None:
        if kind <= RETRY:  # the events of one node's pods and pool
            self._pod_event(when, kind, self.nodes[index], payload)
        elif kind == RECONCILE:
            self._reconcile_sweep(when)
        elif kind == CHARGE:
            assert isinstance(payload, tuple)
            self._charge_event(when, index, payload)
        elif kind == SAMPLE:
            self.recorder.sample(when)
        else:
            self._cluster_event(when, kind, self.scenario.groups[index], payload)

    def _pod_event(self, when: float, kind: int, node: SimNode, payload: object) -> None:
        """Arrivals, departures, ticks, EC2 results landing, retries of waiting pods."""
        if kind == NEXT_ARRIVAL:
            source = self.sources[node.index]
            assert source is not None
            self._arrive(node, when, source.lifetime())
            following = source.next_arrival(when)
            if following is not None:
                self._push(following, NEXT_ARRIVAL, node.index)
        elif kind == DEPART:
            assert isinstance(payload, int)
            node.pool.release(payload, when)
            node.admitted -= 1
            if node.waiting:
                self._retry_later(node, when)
        elif kind == TICK:
            self._tick(node, when)
            return
        elif kind == APPLY:
            assert isinstance(payload, Addition)
            self._apply(node, payload, when)
            return
        elif node.retry_at == when:
            node.retry_at = None
            self._serve(node, when)
        self._wake(node, when)

    def _cluster_event(self, when: float, kind: int, group: NodeGroup, payload: object) -> None:
        """Nodes starting, scaling out, bursts of pods."""
        if kind == LAUNCH:
            assert isinstance(payload, tuple)
            self.launch(group, payload[0], payload[1], when)
        elif kind == SCALE_OUT:
            for _ in range(getattr(payload, "nodes", 0)):
                position = self.launched[group.index]
                self.launched[group.index] += 1
                self.launch(group, position, getattr(payload, "pods", 0), when)
        elif kind == BURST:
            self._burst(group.index, payload, when)

    def _push(self, when: float, kind: int, index: int, payload: object = None) -> None:
        if kind not in PERIODIC:
            self.active += 1
        self.queue.push(when, kind, index, payload)

    # -- pods -----------------------------------------------------------------------------------

    def _arrive(self, node: SimNode, when: float, lifetime: float | None) -> None:
        node.pods_seen += 1
        if node.admitted >= node.capacity:
            node.over_max_pods += 1
            return
        node.admitted += 1
        pod = self.next_pod
        self.next_pod += 1
        if not node.waiting and node.pool.assign(pod, when):
            self.recorder.placed(0.0)
            if lifetime is not None:
                self._push(when + lifetime, DEPART, node.index, pod)
            return
        node.waiting.append((pod, when, lifetime))
        self.recorder.no_address()
        self._retry_later(node, when)

    def _serve(self, node: SimNode, when: float) -> None:
        waiting = node.waiting
        while waiting:
            pod, arrived, lifetime = waiting[0]
            if not node.pool.assign(pod, when):
                self._retry_later(node, when)
                return
            waiting.popleft()
            self.recorder.placed(when - arrived)
            if lifetime is not None:
                self._push(when + lifetime, DEPART, node.index, pod)

    def _retry_later(self, node: SimNode, when: float) -> None:
        end = node.pool.next_cooling_end(when)
        if end is None:
            return
        at = end + RETRY_MARGIN
        if node.retry_at is None or at < node.retry_at:
            node.retry_at = at
            self._push(at, RETRY, node.index)

    def _burst(self, group: int, payload: object, when: float) -> None:
        pods = int(getattr(payload, "pods", 0))
        minutes = getattr(payload, "lifetime_minutes", None)
        for node in self.nodes:
            if node.group != group:
                continue
            source = self.sources[node.index]
            for _ in range(pods):
                life = None if minutes is None else minutes * 60.0
                if source is not None:
                    life = source.burst_lifetime(minutes)
                self._arrive(node, when, life)
            self._wake(node, when)

    # -- ticks ----------------------------------------------------------------------------------

    def _wake(self, node: SimNode, when: float) -> None:
        """Schedule the node's next tick if ``next_wake`` says one can act."""
        origin = node.tick_origin
        if self.fixed_ticks:
            wake = when
        elif node.tick_at is not None and node.tick_at <= max(origin, when) + TICK_SECONDS:
            return  # the earliest tick the grid allows is already booked
        else:
            wake = next_wake(
                node.pool.ordered,
                self.config,
                node.limits,
                when,
                timing=node.timing(),
                cooldown_seconds=self.cooldown,
            )
        if wake == math.inf:
            return
        steps = max(1, math.ceil((wake - origin) / TICK_SECONDS - 1e-9))
        at = origin + steps * TICK_SECONDS
        if node.tick_at is None or at < node.tick_at:
            node.tick_at = at
            self._push(at, TICK, node.index)

    def _tick(self, node: SimNode, when: float) -> None:
        if node.tick_at != when:
            return
        node.tick_at = None
        decision, additions = node.tick(when)
        node.tick_origin = max(when, node.clock.now())
        if decision.actions:
            self.recorder.tick(node, decision)
        for addition in additions:
            if addition.at <= when:
                self._apply(node, addition, when)
            else:
                self._push(addition.at, APPLY, node.index, addition)
        self._serve(node, when)
        self._wake(node, when)

    def _apply(self, node: SimNode, addition: Addition, when: float) -> None:
        pool = node.pool
        if addition.new_eni is not None and addition.eni_id not in pool.enis:
            pool.add_eni(addition.new_eni)
        if addition.eni_id in pool.enis:
            have = {c.text for c in pool.enis[addition.eni_id].cidrs}
            for cidr in addition.cidrs:
                if str(cidr) not in have:
                    pool.add_cidr(addition.eni_id, cidr)
        self._serve(node, when)
        self._wake(node, when)

    # -- EC2 reads the simulator does not need answered -----------------------------------------

    def _reconcile_sweep(self, when: float) -> None:
        """Every node whose 60 s reconcile falls in this second runs it (IMDS first).

        A node in sync would read IMDS, find it equal to its pool and stop there - no EC2 call,
        no change - so it is only counted; a node whose pool may lack what EC2 holds runs the
        engine's reconcile, which reads EC2 only when IMDS differs.
        """
        self.queue.push(when + RECONCILE_SECONDS / RECONCILE_SLOTS, RECONCILE, -1)
        for index in self.reconcile_slots[int(when) % RECONCILE_SLOTS]:
            node = self.nodes[index]
            if not node.out_of_sync:
                self.imds_reconciles += 1
                continue
            for addition in node.reconcile(when):
                self._push(max(addition.at, when), APPLY, node.index, addition)

    def _charge_event(self, when: float, index: int, payload: tuple[object, ...]) -> None:
        what, attempt = payload
        if what == "cleanup":
            self._push(when + CLEANUP_SECONDS, CHARGE, index, ("cleanup", 0))
            self._charge(when, index, "DescribeNetworkInterfaces", FILTERED, 0)
            return
        assert isinstance(what, tuple)
        assert isinstance(attempt, int)
        action, params = what
        self._charge(when, index, str(action), params, attempt)

    def _charge(self, when: float, index: int, action: str, params: object, attempt: int) -> None:
        """A read whose answer is known: its token, and botocore's retries if throttled."""
        assert isinstance(params, dict)
        if self.account.charge(action, params, when) or attempt + 1 >= 3:
            return
        delay = self.account.backoff(attempt)
        self.queue.push(when + delay, CHARGE, index, ((action, params), attempt + 1))


class _Limits:
    """The emulator's instance types: the scenario's (explicit ``limits`` included)."""

    def __init__(self, scenario: Scenario) -> None:
        self._types = {g.limits.instance_type: g.limits for g in scenario.groups}

    def get(self, name: str) -> InstanceLimits:
        return self._types[name]

    def __iter__(self) -> Iterator[InstanceLimits]:
        return iter(self._types.values())
