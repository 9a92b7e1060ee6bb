"""The EC2 port wrapped with the daemon's own rate limits and per-call metrics.

Every call first takes a token from a process-wide bucket for its API (AWS's published sizes and
refill rates, ``vpccni.core.ec2_rate_limits``), waiting on the clock when the bucket is empty, so
the node never provokes throttling by itself; then it is timed and reported (API, seconds, EC2
error code) to the metrics port, and a failed call also by the port function that made it
(``ec2_failure``: upstream's ``awscni_aws_utils_error_count{fn,error}``). An
``UnauthorizedOperation`` is remembered by the :class:`~vpccni.cloud.permissions.PermissionGate`:
until its backoff is over the same call is refused here (:class:`~vpccni.cloud.permissions.Denied`,
``withheld``) without reaching EC2.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import TypeVar

from vpccni.cloud.permissions import PermissionGate
from vpccni.core.aws_types import CloudError, EniDescription, InstanceDescription, Unauthorized
from vpccni.core.ec2_rate_limits import TokenBucket, bucket_for
from vpccni.core.subnets import Subnet
from vpccni.ports import Clock, Ec2, Metrics

T = TypeVar("T")


class GuardedEc2:
    """Implements ``vpccni.ports.Ec2`` around another implementation."""

    def __init__(
        self, inner: Ec2, clock: Clock, metrics: Metrics, permissions: PermissionGate | None = None
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.metrics = metrics
        self.permissions = permissions or PermissionGate()
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def _take(self, api: str) -> None:
        while True:
            with self._lock:
                bucket = self._buckets.setdefault(api, TokenBucket(bucket_for(api)))
                now = self.clock.now()
                if bucket.try_take(now):
                    self.calls[api] = self.calls.get(api, 0) + 1
                    return
                wait = bucket.wait_time(now)
            self.clock.sleep(wait)

    def _call(self, api: str, fn: str, action: Callable[[], T], resource: str = "") -> T:
        """``action`` (the EC2 API ``api``, called by the port function ``fn``) through the
        permission gate and the rate limit, timed and counted."""
        gate = self.permissions
        gate.check(api, resource, self.clock.now())
        self._take(api)
        started = time.monotonic()
        code = ""
        try:
            result = action()
        except Unauthorized as error:
            code = error.code or "UnauthorizedOperation"
            raise gate.denied(api, resource, error, self.clock.now()) from None
        except CloudError as error:
            code = error.code or type(error).__name__
            raise
        finally:
            self.metrics.ec2_call(api, time.monotonic() - started, code)
            if code:
                self.metrics.ec2_failure(fn, code)
        gate.allowed(api, resource)
        return result

    def describe_instance(self, instance_id: str) -> InstanceDescription:
        return self._call(
            "DescribeInstances",
            "describe_instance",
            lambda: self.inner.describe_instance(instance_id),
            instance_id,
        )

    def describe_enis(
        self,
        eni_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[EniDescription]:
        return self._call(
            "DescribeNetworkInterfaces",
            "describe_enis",
            lambda: self.inner.describe_enis(eni_ids, filters),
            ",".join(eni_ids),
        )

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
        return self._call(
            "CreateNetworkInterface",
            "create_eni",
            lambda: self.inner.create_eni(
                subnet_id,
                security_groups,
                description,
                tags,
                secondary_ips=secondary_ips,
                prefixes=prefixes,
            ),
        )

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        return self._call(
            "AttachNetworkInterface",
            "attach_eni",
            lambda: self.inner.attach_eni(eni_id, instance_id, device_index, network_card),
            eni_id,
        )

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        self._call(
            "ModifyNetworkInterfaceAttribute",
            "set_delete_on_termination",
            lambda: self.inner.set_delete_on_termination(eni_id, attachment_id),
            eni_id,
        )

    def detach_eni(self, attachment_id: str, force: bool = False) -> None:
        self._call(
            "DetachNetworkInterface",
            "detach_eni",
            lambda: self.inner.detach_eni(attachment_id, force),
            attachment_id,
        )

    def delete_eni(self, eni_id: str) -> None:
        self._call(
            "DeleteNetworkInterface", "delete_eni", lambda: self.inner.delete_eni(eni_id), eni_id
        )

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        return self._call(
            "AssignPrivateIpAddresses",
            "assign_ips",
            lambda: self.inner.assign_ips(eni_id, count),
            eni_id,
        )

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]:
        return self._call(
            "AssignPrivateIpAddresses",
            "assign_prefixes",
            lambda: self.inner.assign_prefixes(eni_id, count),
            eni_id,
        )

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        if addresses:
            self._call(
                "UnassignPrivateIpAddresses",
                "unassign_ips",
                lambda: self.inner.unassign_ips(eni_id, addresses),
                eni_id,
            )

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None:
        if prefixes:
            self._call(
                "UnassignPrivateIpAddresses",
                "unassign_prefixes",
                lambda: self.inner.unassign_prefixes(eni_id, prefixes),
                eni_id,
            )

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._call(
                "CreateTags",
                "create_tags",
                lambda: self.inner.create_tags(resource_id, tags),
                resource_id,
            )

    def subnet_free_addresses(self, subnet_id: str) -> int:
        return self._call(
            "DescribeSubnets",
            "subnet_free_addresses",
            lambda: self.inner.subnet_free_addresses(subnet_id),
            subnet_id,
        )

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        return self._call(
            "DescribeSubnets",
            "describe_subnets",
            lambda: self.inner.describe_subnets(subnet_ids, filters),
        )
