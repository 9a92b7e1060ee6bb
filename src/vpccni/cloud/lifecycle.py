"""The ENI lifecycle of upstream ipamd over the EC2 port, with no leak on any failed step.

Allocate = create (tagged with this instance and its creation time, in the node's subnet with
the primary ENI's groups unless the caller names a pod subnet and its groups) -> attach at the
lowest free device index -> DeleteOnTermination. If attach fails the new ENI is deleted; if the
last step fails the ENI is detached and deleted. Free = detach -> wait until EC2 reports it
available -> delete, each retried with backoff; an ENI already gone counts as freed. Leaked-ENI
cleanup deletes ENIs that carry our instance tag and description, are unattached (``available``)
and older than five minutes - what a daemon killed between create and attach leaves behind. A
denied call in the sweep (UnauthorizedOperation) skips that ENI, or the whole pass when the
sweep may not list ENIs; the permission gate names it and holds the call back.

With ``provisioning`` off (``DISABLE_NETWORK_RESOURCE_PROVISIONING`` / ``ENABLE_IMDS_ONLY_MODE``)
every call that changes EC2 is refused here (:class:`ProvisioningDisabled`) before it is sent -
a backstop: the pool engine asks for none. With ``leaked_cleanup`` off
(``DISABLE_LEAKED_ENI_CLEANUP``, or provisioning off) the sweep does nothing. Every ENI this node
creates or adopts carries ``NodeContext.tags()``: its instance, its cluster and
``ADDITIONAL_ENI_TAGS`` (``extra_tags``).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network

from vpccni.cloud.retry import Backoff, retry
from vpccni.core.aws_types import (
    ENI_DESCRIPTION_PREFIX,
    ENI_OWNER_VALUE,
    LEAKED_ENI_MIN_AGE_SECONDS,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_ENI_OWNER,
    TAG_INSTANCE_ID,
    CloudError,
    EniDescription,
    LimitExceeded,
    NotFound,
    SubnetExhausted,
    Unauthorized,
)
from vpccni.ports import Clock, Ec2

DETACH = Backoff(attempts=12, base=0.2, cap=60.0)
DELETE = Backoff(attempts=12, base=0.5, cap=60.0)
WAIT_ATTACHED = Backoff(attempts=10, base=0.1, cap=2.0)
WAIT_AVAILABLE = Backoff(attempts=12, base=0.1, cap=5.0)
TAG = Backoff(attempts=5, base=0.5, cap=60.0, jitter=0.3)
_PERMANENT = (NotFound, LimitExceeded, SubnetExhausted, Unauthorized)


@dataclass(frozen=True)
class NodeContext:
    """Where this node's ENIs go and how they are tagged."""

    instance_id: str
    vpc_id: str
    subnet_id: str
    security_groups: tuple[str, ...]
    cluster_name: str = ""
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    availability_zone: str = ""
    """The node's zone; empty: the engine learns it from the node subnet's description."""

    @property
    def description(self) -> str:
        return f"{ENI_DESCRIPTION_PREFIX}{self.instance_id}"

    def tags(self) -> dict[str, str]:
        """The tags every managed ENI should carry (creation time aside)."""
        tags = {k: v for k, v in self.extra_tags.items() if "k8s.amazonaws.com" not in k}
        tags[TAG_INSTANCE_ID] = self.instance_id
        if self.cluster_name:
            tags[TAG_CLUSTER_NAME] = self.cluster_name
            tags[TAG_ENI_OWNER] = ENI_OWNER_VALUE
        return tags


class ProvisioningDisabled(CloudError):
    """A call that changes EC2 while provisioning is off (never sent)."""


class EniLifecycle:
    """Create, attach, free and clean up ENIs for one node."""

    def __init__(
        self,
        ec2: Ec2,
        clock: Clock,
        node: NodeContext,
        rng: random.Random | None = None,
        *,
        provisioning: bool = True,
        leaked_cleanup: bool = True,
    ) -> None:
        self.ec2 = ec2
        self.clock = clock
        self.node = node
        self.rng = rng or random.Random()
        self.provisioning = provisioning
        self.leaked_cleanup = leaked_cleanup and provisioning

    def _may_change(self, operation: str) -> None:
        if not self.provisioning:
            raise ProvisioningDisabled(
                f"{operation} not sent: provisioning is off (DISABLE_NETWORK_RESOURCE_PROVISIONING "
                "or ENABLE_IMDS_ONLY_MODE)",
                code="ProvisioningDisabled",
                operation=operation,
            )

    def allocate_eni(
        self,
        secondary_ips: int = 0,
        prefixes: int = 0,
        network_card: int = 0,
        *,
        subnet_id: str | None = None,
        security_groups: Sequence[str] | None = None,
    ) -> EniDescription:
        """A new ENI attached to this node with the requested addresses or prefixes, in
        ``subnet_id`` with ``security_groups`` (default: the node's subnet and the primary
        ENI's groups; a pod subnet of custom networking or subnet discovery otherwise)."""
        self._may_change("CreateNetworkInterface")
        tags = {**self.node.tags(), TAG_CREATED_AT: rfc3339(self.clock.now())}
        groups = self.node.security_groups if security_groups is None else security_groups
        eni = self.ec2.create_eni(
            subnet_id or self.node.subnet_id,
            tuple(groups),
            self.node.description,
            tags,
            secondary_ips=secondary_ips,
            prefixes=prefixes,
        )
        try:
            instance = self.ec2.describe_instance(self.node.instance_id)
            index = instance.free_device_index(network_card)
            if index is None:
                raise LimitExceeded(
                    f"no free device index on network card {network_card} of "
                    f"{self.node.instance_id}; it holds its maximum number of ENIs"
                )
            attachment_id = self.ec2.attach_eni(
                eni.eni_id, self.node.instance_id, index, network_card
            )
        except Exception:
            self._delete_quietly(eni.eni_id)
            raise
        try:
            self.ec2.set_delete_on_termination(eni.eni_id, attachment_id)
        except Exception:
            self._free_quietly(eni.eni_id)
            raise
        return self.describe(eni.eni_id)

    def free_eni(self, eni_id: str) -> None:
        """Detach (if attached) and delete ``eni_id``; an ENI that is already gone is fine."""
        self._may_change("DetachNetworkInterface")
        try:
            eni = self.describe(eni_id)
        except NotFound:
            return
        if eni.attachment is not None and eni.attachment.status != "detached":
            attachment_id = eni.attachment.attachment_id
            with contextlib.suppress(NotFound):
                self._retry(lambda: self.ec2.detach_eni(attachment_id), DETACH)
            self._wait_available(eni_id)
        self._delete(eni_id)

    def allocate_cidrs_eni(
        self,
        count: int,
        prefixes: bool,
        *,
        subnet_id: str | None = None,
        security_groups: Sequence[str] | None = None,
    ) -> EniDescription:
        """A new ENI with ``count`` /28 prefixes (prefix mode) or secondary addresses."""
        return self.allocate_eni(
            secondary_ips=0 if prefixes else count,
            prefixes=count if prefixes else 0,
            subnet_id=subnet_id,
            security_groups=security_groups,
        )

    def assign_cidrs(self, eni_id: str, count: int, prefixes: bool) -> list[IPv4Network]:
        """Assign ``count`` /28 prefixes or secondary addresses (as /32s) to an ENI."""
        self._may_change("AssignPrivateIpAddresses")
        if prefixes:
            return self.ec2.assign_prefixes(eni_id, count)
        return [IPv4Network((int(ip), 32)) for ip in self.ec2.assign_ips(eni_id, count)]

    def release_cidrs(self, eni_id: str, cidrs: Sequence[IPv4Network]) -> None:
        """Give /32 addresses and /28 prefixes back to EC2 (no call for an empty kind)."""
        if cidrs:
            self._may_change("UnassignPrivateIpAddresses")
        self.ec2.unassign_ips(eni_id, [c.network_address for c in cidrs if c.prefixlen == 32])
        self.ec2.unassign_prefixes(eni_id, [c for c in cidrs if c.prefixlen != 32])

    def wait_attached(self, eni_id: str) -> EniDescription | None:
        """The ENI once EC2 reports it attached (polled with backoff), or None if it is not yet."""

        def attached() -> EniDescription:
            found = self.describe(eni_id)
            if found.attachment is None or found.attachment.status != "attached":
                raise _NotYet(f"ENI {eni_id} is not attached yet")
            return found

        try:
            return retry(
                attached, backoff=WAIT_ATTACHED, clock=self.clock, rng=self.rng, retry_on=(_NotYet,)
            )
        except _NotYet:
            return None

    def describe(self, eni_id: str) -> EniDescription:
        """EC2's current view of one ENI (NotFound when it is gone)."""
        found = self.ec2.describe_enis([eni_id])
        if not found:
            raise NotFound(f"ENI {eni_id} not found", code="InvalidNetworkInterfaceID.NotFound")
        return found[0]

    def tag_eni(self, eni: EniDescription) -> None:
        """Add the tags this node's ENIs carry, writing only missing or different ones."""
        wanted = self.node.tags()
        missing = {k: v for k, v in wanted.items() if eni.tags.get(k) != v}
        if missing:
            self._may_change("CreateTags")
            self._retry(lambda: self.ec2.create_tags(eni.eni_id, missing), TAG)

    def cleanup_leaked_enis(self) -> list[str]:
        """Delete ENIs tagged by any node of ours, unattached and older than 5 minutes.

        An ENI without a creation tag gets one now and is kept for the next pass. Upstream also
        re-tags an unparsable creation time but deletes the ENI in the same pass; we keep it.
        A denied call (UnauthorizedOperation) never fails the pass: the ENI is skipped (or, for
        the listing, nothing is deleted) until the next one. Off (``leaked_cleanup``): nothing.
        """
        if not self.leaked_cleanup:
            return []
        filters: dict[str, list[str]] = {
            "tag-key": [TAG_INSTANCE_ID],
            "status": ["available"],
            "vpc-id": [self.node.vpc_id],
        }
        if self.node.cluster_name:
            filters[f"tag:{TAG_CLUSTER_NAME}"] = [self.node.cluster_name]
        now = self.clock.now()
        deleted: list[str] = []
        try:
            found = self.ec2.describe_enis(filters=filters)
        except Unauthorized:
            return deleted
        for eni in found:
            if not eni.description.startswith(ENI_DESCRIPTION_PREFIX):
                continue
            created = parse_rfc3339(eni.tags.get(TAG_CREATED_AT, ""))
            try:
                if created is None:
                    self.ec2.create_tags(eni.eni_id, {TAG_CREATED_AT: rfc3339(now)})
                    continue
                if now - created < LEAKED_ENI_MIN_AGE_SECONDS:
                    continue
                self._delete(eni.eni_id)
            except Unauthorized:
                continue
            deleted.append(eni.eni_id)
        return deleted

    def _wait_available(self, eni_id: str) -> None:
        def available() -> None:
            status = self.describe(eni_id).status
            if status != "available":
                raise _NotYet(f"ENI {eni_id} is still {status}")

        try:
            self._retry(available, WAIT_AVAILABLE)
        except (NotFound, _NotYet):
            return  # gone already, or still detaching: the delete below retries while in use

    def _retry(self, action: Callable[[], None], backoff: Backoff) -> None:
        """Run ``action`` with backoff; transient cloud errors retry, permanent ones do not."""

        def call() -> None:
            try:
                action()
            except _PERMANENT:
                raise
            except CloudError as error:
                raise _Transient(error) from error

        try:
            retry(
                call,
                backoff=backoff,
                clock=self.clock,
                rng=self.rng,
                retry_on=(_Transient, _NotYet),
            )
        except _Transient as transient:
            raise transient.error from None

    def _delete(self, eni_id: str) -> None:
        try:
            self._retry(lambda: self.ec2.delete_eni(eni_id), DELETE)
        except NotFound:
            return

    def _delete_quietly(self, eni_id: str) -> None:
        # On failure the ENI is left for the leaked-ENI cleanup: tagged, unattached, 5 min old.
        with contextlib.suppress(CloudError):
            self._delete(eni_id)

    def _free_quietly(self, eni_id: str) -> None:
        with contextlib.suppress(CloudError):
            self.free_eni(eni_id)


class _NotYet(Exception):
    """The awaited state has not been reached yet."""


class _Transient(Exception):
    """Wraps a cloud error worth retrying (throttling, internal errors, ENI still in use)."""

    def __init__(self, error: CloudError) -> None:
        super().__init__(str(error))
        self.error = error


def rfc3339(seconds: float) -> str:
    """UTC time as upstream writes the createdAt tag."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch, or None when ``text`` is not an RFC 3339 time."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
