"""Reconcile one node's pool: IMDS first, EC2 only on a difference, EC2 the truth when read.

As upstream's ``nodeIPPoolReconcile``: read the attached ENIs and their addresses from IMDS (a
local call that spends none of the account's EC2 budget); when they match the pool (modulo CIDRs
this node released within the 60 s cooldown, which stale IMDS data may still list) nothing more
happens. When they differ - an ENI attached that the pool lacks, one it has that IMDS no longer
lists, addresses added or missing - one ``DescribeNetworkInterfaces`` for this instance is the
truth: adopt attached ENIs (tagged, once their link is up), add what EC2 added, force-remove
only what EC2 no longer has (an ENI dropped also loses its host networking, and counts in
``awscni_force_removed_enis`` / ``_ips`` only when pods were using it). A failed read changes
nothing. An adopted ENI is marked excluded from pod addresses when its subnet is excluded
(subnet discovery) or it is the primary ENI under custom networking. An ENI is tagged before it
is adopted: when EC2 denies the tags (UnauthorizedOperation: under the tag-scoped IAM policy, an
ENI that is not this cluster's), the ENI is left alone - not adopted, never filled or freed -
and is not looked at again before the denial's backoff is over. With provisioning off nothing is
tagged; in IMDS-only mode IMDS is the truth too (``imds_truth``: no tags, so with
``MANAGE_UNTAGGED_ENI=false`` only the primary ENI is managed, as upstream), and IMDS's lag is
then trusted for removals as well. Attached ENIs left unmanaged take ENI slots from the pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from vpccni.cloud.permissions import FIRST_WAIT_SECONDS, Denied
from vpccni.core.aws_types import CloudError, EniDescription, ImdsInterface, Unauthorized
from vpccni.core.reconcile import (
    RECONCILE_COOLDOWN_SECONDS,
    ReconcilePlan,
    imds_difference,
    imds_truth,
    plan_reconcile,
    unmanaged_enis,
    unmanaged_slots,
)

if TYPE_CHECKING:
    from vpccni.engine.pool_engine import PoolEngine


@dataclass(frozen=True)
class ReconcileOutcome:
    """What one reconcile found and did."""

    difference: str | None
    read_ec2: bool
    adopted: int = 0
    added: int = 0
    removed: int = 0
    pods_lost: int = 0


def reconcile(engine: PoolEngine, *, force_ec2: bool = False) -> ReconcileOutcome:
    """Make the pool match the node's ENIs; raises CloudError when IMDS or EC2 cannot be read."""
    state = engine.state
    now = engine.clock.now()
    released = state.recently_released
    for cidr in [c for c, at in released.items() if now - at >= RECONCILE_COOLDOWN_SECONDS]:
        del released[cidr]
    denied = state.denied_enis
    for eni_id in [e for e, until in denied.items() if now >= until]:
        del denied[eni_id]
    current = engine.ledger.cidrs_by_eni()
    difference, interfaces = _difference(engine, current, now, force_ec2)
    if difference is None:
        state.imds_reconciles += 1
        state.may_differ = bool(released)
        return ReconcileOutcome(None, read_ec2=False)
    instance_id = engine.lifecycle.node.instance_id
    policy = engine.policy
    truth = _truth(engine, difference, interfaces)
    now = engine.clock.now()
    state.unmanaged = unmanaged_enis(truth, instance_id, policy.manage_untagged)
    state.unmanaged_slots = unmanaged_slots(truth, instance_id, state.unmanaged)
    current = engine.ledger.cidrs_by_eni()
    plan = plan_reconcile(
        current, truth, instance_id, now, released, manage_untagged=policy.manage_untagged
    )
    described = {eni.eni_id: eni for eni in truth}
    for eni in truth:
        if eni.subnet_id:
            engine.eni_subnets[eni.eni_id] = eni.subnet_id
    adopted, pending = _adopt(engine, plan, described)
    for eni_id, cidr in plan.add_cidrs:
        engine.log.info("reconcile: EC2 has %s on %s, which the pool lacks: added", cidr, eni_id)
        engine.ledger.add_cidrs(eni_id, [cidr])
    lost = 0
    for eni_id, cidr in plan.remove_cidrs:
        pods = engine.ledger.force_remove_cidr(eni_id, cidr)
        lost += pods
        _count_forced(engine, 0, pods)
        engine.log.warning(
            "reconcile: EC2 no longer has %s on %s (%d pods lost it)", cidr, eni_id, pods
        )
    for eni_id in plan.remove_enis:
        pods = engine.ledger.force_remove_eni(eni_id)
        lost += pods
        _count_forced(engine, 1, pods)
        engine.host_removed(eni_id)
        engine.log.warning("reconcile: %s is no longer attached (%d pods lost it)", eni_id, pods)
    state.may_differ = pending or bool(released)
    return ReconcileOutcome(
        difference,
        read_ec2=not policy.imds_only,
        adopted=adopted,
        added=len(plan.add_cidrs),
        removed=len(plan.remove_cidrs) + len(plan.remove_enis),
        pods_lost=lost,
    )


def _difference(
    engine: PoolEngine,
    current: Mapping[str, frozenset[IPv4Network]],
    now: float,
    force_ec2: bool,
) -> tuple[str | None, list[ImdsInterface] | None]:
    """Why the pool may differ from the node (None: it does not), and IMDS's interfaces when
    they were read. Start-up reads the truth once (EC2, or IMDS in IMDS-only mode)."""
    state = engine.state
    imds_only = engine.policy.imds_only
    if force_ec2 and not imds_only:
        return "start-up: EC2 is read once", None
    interfaces = engine.imds.interfaces()
    if force_ec2:
        return "start-up: IMDS is read (ENABLE_IMDS_ONLY_MODE)", interfaces
    listed = {i.eni_id for i in interfaces if i.network_card == 0}
    state.unmanaged_slots = len(listed & state.unmanaged)  # one detached frees its slot
    ignored = state.unmanaged | set(state.denied_enis)
    found = imds_difference(current, interfaces, now, state.recently_released, ignored)
    return found, interfaces


def _truth(
    engine: PoolEngine, difference: str, interfaces: list[ImdsInterface] | None
) -> list[EniDescription]:
    """The node's ENIs as the truth: EC2's description, or IMDS's in IMDS-only mode."""
    state = engine.state
    instance_id = engine.lifecycle.node.instance_id
    if engine.policy.imds_only and interfaces is not None:
        engine.log.info("reconcile: %s; IMDS is the truth (ENABLE_IMDS_ONLY_MODE)", difference)
        state.imds_reconciles += 1
        return imds_truth(interfaces, instance_id)
    engine.log.info("reconcile: %s; reading EC2", difference)
    truth = engine.ec2.describe_enis(filters={"attachment.instance-id": [instance_id]})
    state.ec2_reconciles += 1
    return truth


def _adopt(
    engine: PoolEngine, plan: ReconcilePlan, described: dict[str, EniDescription]
) -> tuple[int, bool]:
    """Adopt the attached ENIs the pool lacks: tagged first, then once their link is up; an ENI
    EC2 may not tag for us is left alone. Returns (adopted, some wait for their link)."""
    denied = engine.state.denied_enis
    adopted = 0
    pending = False
    for info, cidrs in plan.add_enis:
        eni = described[info.eni_id]
        if info.eni_id in denied or not _tag(engine, eni):
            continue
        if not engine.host_ready(eni, wait=False):
            engine.log.info("reconcile: %s waits for its link to appear", info.eni_id)
            pending = True
            continue
        engine.log.info("reconcile: adopting %s (device %d)", info.eni_id, info.device_index)
        engine.ledger.add_eni(engine.join_info(info, eni.subnet_id), cidrs)
        adopted += 1
    return adopted, pending


def _count_forced(engine: PoolEngine, enis: int, pods: int) -> None:
    """``awscni_force_removed_enis`` / ``_ips`` count only what pods were using: an empty ENI or
    an unused address that EC2 took away costs no pod anything."""
    if pods:
        engine.metrics.force_removed(enis, pods)


def _tag(engine: PoolEngine, eni: EniDescription) -> bool:
    """Tag an ENI about to be adopted; False when EC2 denied it (the ENI is then left alone).
    With provisioning off nothing is tagged (upstream)."""
    if eni.interface_type == "trunk" or not engine.policy.provisioning:
        return True
    try:
        engine.lifecycle.tag_eni(eni)
    except Unauthorized as error:
        until = error.retry_at if isinstance(error, Denied) else None
        engine.state.denied_enis[eni.eni_id] = until or engine.clock.now() + FIRST_WAIT_SECONDS
        engine.error("eniTag", error)
        if not (isinstance(error, Denied) and error.withheld):
            engine.log.warning(
                "reconcile: %s left alone: the IAM role may not tag it (not this cluster's ENI "
                "under a tag-scoped policy, or ec2:CreateTags is missing)",
                eni.eni_id,
            )
        return False
    except CloudError as error:
        engine.error("eniTag", error)
    return True
