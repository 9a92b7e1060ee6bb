"""The EC2 port of every simulated node: the in-process emulator behind AWS's request limits.

:class:`Ec2Account` is the account all nodes share: an
:class:`~vpccni.emulator.service.Emulator` whose model (limits, address rules, attach/detach
timing) is reached through its typed methods, as docs/emulator.md offers for in-process use, and
in front of it the emulator's realism: its :class:`~vpccni.emulator.realism.RateLimiter` (AWS's
bucket per API), its :class:`~vpccni.emulator.realism.FaultInjector`, the latency knob, plus
botocore's standard retry mode (3 attempts, jittered exponential backoff, slept on the calling
node's virtual clock). This is ``Emulator.call`` without building and parsing boto3-shaped
dictionaries, which cost more than the rest of a large run. Reads whose answer the simulator
already knows (every node's periodic reconcile and subnet read, start-up reads) are charged to
the same buckets with ``charge``. Counts per API and per minute feed the report.

:class:`NodeEc2` implements ``vpccni.ports.Ec2`` for one node over the account, turning model
records into ``vpccni.core.aws_types`` values and EC2 error codes into the cloud error family,
as the boto3 adapter does.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from vpccni.core.aws_types import (
    CloudError,
    EniAttachment,
    EniDescription,
    InstanceDescription,
    ec2_error,
)
from vpccni.core.subnets import Subnet
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.model import DEFAULT_REGION, Ec2Model
from vpccni.emulator.realism import (
    FaultInjector,
    Knobs,
    RateLimiter,
    bucket_key,
    fault_error,
)
from vpccni.emulator.records import Attachment, Eni
from vpccni.emulator.service import Emulator
from vpccni.emulator.store import LimitsSource
from vpccni.sim.clock import VirtualClock
from vpccni.sim.indexes import IndexedStore

T = TypeVar("T")
SDK_ATTEMPTS = 3
SDK_MAX_BACKOFF = 20.0
PRUNE_EVERY = 4096
RETRYABLE = frozenset({"RequestLimitExceeded", "Throttling", "InternalError", "Unavailable"})
NO_PARAMS: Mapping[str, Any] = {}


class Ec2Account:
    """The emulator's model every node talks to, with AWS's request limits in front."""

    def __init__(
        self, limits: LimitsSource, knobs: Knobs, seed: int, region: str = DEFAULT_REGION
    ) -> None:
        self.knobs = knobs
        self.emulator = Emulator(limits, replace(knobs, rate_limits=False), region=region)
        self.model: Ec2Model = self.emulator.model
        original = self.model.store
        store = IndexedStore(limits, original.region, original.rng)
        store.delays = original.delays
        self.model.store = store
        self._limiter = _Limiter(knobs)
        self._faults = FaultInjector(knobs)
        self._rng = random.Random(f"sdk-retries/{seed}")
        self._bucket_time: dict[str, float] = {}
        self._calls = 0
        self.requests: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.per_minute: dict[str, Counter[int]] = defaultdict(Counter)
        self.throttled_per_minute: dict[str, Counter[int]] = defaultdict(Counter)

    def charge(self, action: str, params: Mapping[str, Any], now: float) -> bool:
        """One request: count it and take its token; False when throttled.

        Each bucket's clock only moves forward: a node whose tick ran ahead on its own clock
        has already drawn at that later time, and refilling twice would invent tokens.
        """
        key = bucket_key(action, params) if params else action
        at = max(now, self._bucket_time.get(key, now))
        self._bucket_time[key] = at
        minute = int(now // 60)
        self.requests[action] += 1
        self.per_minute[action][minute] += 1
        try:
            self._limiter.take(key, at)
        except Ec2Error:
            self.throttled[action] += 1
            self.throttled_per_minute[action][minute] += 1
            return False
        return True

    def charge_many(self, action: str, params: Mapping[str, Any], now: float, count: int) -> int:
        """``count`` identical requests at one instant; returns how many were not throttled."""
        key = bucket_key(action, params) if params else action
        at = max(now, self._bucket_time.get(key, now))
        self._bucket_time[key] = at
        minute = int(now // 60)
        admitted = self._limiter.take_many(key, at, count)
        self.requests[action] += count
        self.per_minute[action][minute] += count
        if admitted < count:
            self.throttled[action] += count - admitted
            self.throttled_per_minute[action][minute] += count - admitted
        return admitted

    def backoff(self, attempt: int) -> float:
        """botocore standard mode: random up to 2**attempt seconds, at most 20 s."""
        return min(self._rng.random() * 2.0**attempt, SDK_MAX_BACKOFF)

    def call(
        self,
        action: str,
        operation: Callable[[float], T],
        clock: VirtualClock,
        params: Mapping[str, Any] = NO_PARAMS,
    ) -> T:
        """One SDK call: up to three attempts, each taking a token and the action's latency."""
        latency = self.knobs.latency_for(action)
        for attempt in range(SDK_ATTEMPTS):
            admitted = self.charge(action, params, clock.now())
            clock.sleep(latency)
            try:
                if not admitted:
                    raise Ec2Error("RequestLimitExceeded", "Request limit exceeded.")
                return self._run(action, operation, clock.now())
            except Ec2Error as error:
                if error.code != "RequestLimitExceeded":
                    self.errors[f"{action}:{error.code}"] += 1
                if error.code not in RETRYABLE or attempt == SDK_ATTEMPTS - 1:
                    raise _translate(action, error) from None
                clock.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    def _run(self, action: str, operation: Callable[[float], T], now: float) -> T:
        fault = self._faults.roll(action)
        if fault is not None and not fault.after:
            raise fault_error(fault)
        result = operation(now)
        if fault is not None:
            raise fault_error(fault)
        self._calls += 1
        if self._calls % PRUNE_EVERY == 0:
            self.model.forget_before(self.model.now - 1.0)
        return result


# The emulator's limiter answers ``take_many`` (many identical requests at one instant) in O(1).
_Limiter = RateLimiter


def _translate(action: str, error: Ec2Error) -> CloudError:
    return ec2_error(action, error.code, error.message)


class NodeEc2:
    """Implements ``vpccni.ports.Ec2`` for one node, on that node's virtual clock."""

    def __init__(self, account: Ec2Account, clock: VirtualClock) -> None:
        self.account = account
        self.model = account.model
        self.clock = clock

    def describe_instance(self, instance_id: str) -> InstanceDescription:
        def read(now: float) -> InstanceDescription:
            self.model.advance(now)
            store = self.model.store
            instance = store.instance(instance_id)
            primary = store.enis.get(instance.primary_eni_id)
            return InstanceDescription(
                instance_id=instance.instance_id,
                instance_type=instance.instance_type,
                subnet_id=instance.subnet_id,
                vpc_id=instance.vpc_id,
                private_ip=_address(primary.primary_ip if primary else "0.0.0.0"),
                security_groups=tuple(sorted(instance.group_ids)),
                enis=tuple(
                    _attachment(e.attachment) for e in store.enis_of(instance_id) if e.attachment
                ),
            )

        return self.account.call("DescribeInstances", read, self.clock, {"InstanceIds": [1]})

    def describe_enis(
        self,
        eni_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[EniDescription]:
        owner = (filters or {}).get("attachment.instance-id")
        if filters and (
            eni_ids or set(filters) != {"attachment.instance-id"} or len(owner or ()) != 1
        ):
            raise NotImplementedError(f"the simulator answers no describe with filters {filters}")

        def read(now: float) -> list[EniDescription]:
            self.model.advance(now)
            store = self.model.store
            if owner:
                return [eni_description(e) for e in store.enis_of(owner[0])]
            return [eni_description(store.enis[i]) for i in eni_ids if i in store.enis]

        narrowing = {"Filters": 1} if filters else {"NetworkInterfaceIds": 1}
        return self.account.call("DescribeNetworkInterfaces", read, self.clock, narrowing)

    def create_eni(
        self,
        subnet_id: str,
        security_groups: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        *,
        secondary_ips: int = 0,
        prefixes: int = 0,
    ) -> EniDescription:
        request = AddressRequest(address_count=secondary_ips, prefix_count=prefixes)

        def create(now: float) -> EniDescription:
            eni = self.model.create_eni(
                now,
                subnet_id,
                request,
                description=description,
                group_ids=tuple(security_groups),
                tags=tuple(sorted(tags.items())),
            )
            return eni_description(eni)

        return self.account.call("CreateNetworkInterface", create, self.clock)

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        def attach(now: float) -> str:
            with self._caller_time(now):
                attachment = self.model.attach_eni(
                    now, eni_id, instance_id, device_index, network_card_index=network_card
                )
            return attachment.attachment_id

        return self.account.call("AttachNetworkInterface", attach, self.clock)

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        self.account.call(
            "ModifyNetworkInterfaceAttribute",
            lambda now: self.model.modify_eni(
                now, eni_id, delete_on_termination=(attachment_id, True)
            ),
            self.clock,
        )

    def detach_eni(self, attachment_id: str, force: bool = False) -> None:
        def detach(now: float) -> None:
            with self._caller_time(now):
                self.model.detach_eni(now, attachment_id, force)

        self.account.call("DetachNetworkInterface", detach, self.clock)

    @contextmanager
    def _caller_time(self, now: float) -> Iterator[None]:
        """Timed transitions count from this node's clock (see ``IndexedStore.schedule``)."""
        store = self.model.store
        if not isinstance(store, IndexedStore):
            yield
            return
        store.caller_lag = max(self.model.now - now, 0.0)
        try:
            yield
        finally:
            store.caller_lag = 0.0

    def delete_eni(self, eni_id: str) -> None:
        self.account.call(
            "DeleteNetworkInterface", lambda now: self.model.delete_eni(now, eni_id), self.clock
        )

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        def assign(now: float) -> list[IPv4Address]:
            added, _ = self.model.assign(now, eni_id, AddressRequest(address_count=count))
            return [_address(a) for a in added]

        return self.account.call("AssignPrivateIpAddresses", assign, self.clock)

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]:
        def assign(now: float) -> list[IPv4Network]:
            _, added = self.model.assign(now, eni_id, AddressRequest(prefix_count=count))
            return [_network(p) for p in added]

        return self.account.call("AssignPrivateIpAddresses", assign, self.clock)

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        if addresses:
            texts = [str(a) for a in addresses]
            self.account.call(
                "UnassignPrivateIpAddresses",
                lambda now: self.model.unassign(now, eni_id, texts, ()),
                self.clock,
            )

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None:
        if prefixes:
            texts = [str(p) for p in prefixes]
            self.account.call(
                "UnassignPrivateIpAddresses",
                lambda now: self.model.unassign(now, eni_id, (), texts),
                self.clock,
            )

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            pairs = sorted(tags.items())
            self.account.call(
                "CreateTags",
                lambda now: self.model.create_tags(now, [resource_id], pairs),
                self.clock,
            )

    def subnet_free_addresses(self, subnet_id: str) -> int:
        return self.account.call(
            "DescribeSubnets",
            lambda now: self.model.available_addresses(subnet_id),
            self.clock,
            {"SubnetIds": [subnet_id]},
        )

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        def read(now: float) -> list[Subnet]:
            store = self.model.store
            found = (
                [store.subnet(i) for i in subnet_ids]
                if subnet_ids
                else list(store.subnets.values())
            )
            chosen = []
            for subnet in found:
                tags = dict(subnet.tags)
                fields = {
                    "subnet-id": subnet.subnet_id,
                    "vpc-id": subnet.vpc_id,
                    "availability-zone": subnet.availability_zone,
                }
                if all(
                    (tags.get(name[4:]) if name.startswith("tag:") else fields.get(name)) in values
                    for name, values in (filters or {}).items()
                ):
                    chosen.append(
                        Subnet(
                            subnet.subnet_id,
                            subnet.vpc_id,
                            subnet.availability_zone,
                            subnet.cidr,
                            self.model.available_addresses(subnet.subnet_id),
                            tags,
                        )
                    )
            return chosen

        params = {"SubnetIds": list(subnet_ids)} if subnet_ids else NO_PARAMS
        return self.account.call("DescribeSubnets", read, self.clock, params)


@lru_cache(maxsize=1 << 18)
def _address(text: str) -> IPv4Address:
    return IPv4Address(text)


@lru_cache(maxsize=1 << 16)
def _network(text: str) -> IPv4Network:
    return IPv4Network(text)


def _attachment(raw: Attachment) -> EniAttachment:
    return EniAttachment(
        attachment_id=raw.attachment_id,
        instance_id=raw.instance_id,
        device_index=raw.device_index,
        network_card=raw.network_card_index,
        status=raw.status,
        delete_on_termination=raw.delete_on_termination,
    )


def eni_description(eni: Eni) -> EniDescription:
    """An emulator ENI record as the port's value."""
    return EniDescription(
        eni_id=eni.eni_id,
        subnet_id=eni.subnet_id,
        vpc_id=eni.vpc_id,
        status=eni.status,
        primary_ip=_address(eni.primary_ip),
        secondary_ips=tuple(_address(a) for a in eni.secondary_ips),
        prefixes=tuple(_network(p) for p in eni.prefixes),
        mac=eni.mac,
        description=eni.description,
        interface_type=eni.interface_type,
        security_groups=tuple(sorted(eni.group_ids)),
        tags=dict(eni.tags),
        attachment=None if eni.attachment is None else _attachment(eni.attachment),
    )
