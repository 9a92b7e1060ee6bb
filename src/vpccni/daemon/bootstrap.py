"""Node start-up: facts from IMDS, truth from EC2, assignments from the checkpoint.

Order: IMDS identity and primary interface (subnet, VPC CIDRs, security groups) -> EC2's view
of the instance -> limits from the shipped table -> with a datapath, the node's host networking
(MTU, fwmark rule, SNAT) -> reconcile the (empty) datastore with EC2,
adopting and tagging every managed ENI attached to this instance -> on vpccni's first start
on a node upstream's aws-node ran, import its checkpoint (``vpccni.daemon.takeover``) -> restore
the checkpoint
(entries whose address is on no attached ENI are stale and released durably) -> release unused
CIDRs of the inactive kind (after a prefix-delegation switch) -> replay spooled DELs -> converge
host routes, rules and veths to the surviving assignments -> delete leaked ENIs. Only then does
the daemon serve. With a datapath, the node's pod routes are a second ledger: before converging,
every address a pod veth routes is made held by that pod (``vpccni.daemon.recover``), so a
checkpoint that lost an entry can never hand a running pod's address to another. With
``recover_from`` (``--recover``) the checkpoint's files are first moved aside and the checkpoint
is rebuilt from EC2 (reconcile) plus that cross-check, and a report says what was recovered.

The provisioning variables (``NodeOptions.provisioning``) shape this: with provisioning off
nothing is tagged or released at start-up (inactive-kind CIDRs stay, unused); in IMDS-only mode
EC2 is not called at all - the VPC, subnet and security groups come from the primary interface in
IMDS, the instance type from IMDS, limits from the shipped table; the leaked-ENI sweep runs only
when ``leaked_eni_cleanup`` (each switch that is off is logged once, with the variable behind it).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.aws_types import CloudError, ImdsInterface, InstanceIdentity
from vpccni.core.checkpoint import ReleaseRecord
from vpccni.core.config import ConfigError, IpamConfig
from vpccni.core.config import refusals as startup_refusals
from vpccni.core.datastore import Datastore
from vpccni.core.limits import InstanceTable
from vpccni.core.maxpods import MaxPodsOptions, compute_max_pods
from vpccni.core.model import cidr_kind_matches
from vpccni.core.pool_rules import NodeLimits
from vpccni.daemon.cluster import NoClusterSource
from vpccni.daemon.datapath import Datapath, imds_subnets
from vpccni.daemon.pool_manager import PoolManager
from vpccni.daemon.recover import adopt_routed_pods, prepare_recovery, recovery_report
from vpccni.daemon.service import IpamService
from vpccni.daemon.spool import SpoolReplay, replay_spool
from vpccni.daemon.takeover import TakeoverOptions, TakeoverReport, take_over
from vpccni.engine import ProvisioningPolicy
from vpccni.ports import (
    CheckpointStore,
    Clock,
    ClusterSource,
    Ec2,
    EniLink,
    Imds,
    Metrics,
    NullMetrics,
)
from vpccni.settings_eni import ProvisioningSettings

log = logging.getLogger("vpccni.ipamd")


@dataclass(frozen=True)
class NodeOptions:
    """Start-up choices (upstream's variables are in ``provisioning`` only)."""

    spool_dir: Path
    cluster_name: str = ""
    max_pods: int | None = None
    recover_from: Path | None = None
    """``--recover``: the checkpoint directory to move aside and rebuild (needs a datapath)."""
    takeover: TakeoverOptions | None = None
    """Upstream's checkpoint, imported at a first start (``vpccni.daemon.takeover``)."""
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    """What the daemon may do to EC2 (the upstream variables of ``vpccni.settings_eni``)."""


@dataclass
class Node:
    """Everything a running daemon is made of."""

    identity: InstanceIdentity
    vpc_cidrs: tuple[IPv4Network, ...]
    config: IpamConfig
    limits: NodeLimits
    service: IpamService
    pool: PoolManager
    spool: SpoolReplay
    stale_entries: int
    cluster: ClusterSource = field(default_factory=NoClusterSource)
    """The cluster as the daemon sees it (Node labels, ENIConfigs); read ``view()`` per tick."""
    takeover: TakeoverReport | None = None
    """What was imported from upstream's aws-node when vpccni took this node over."""


@dataclass(frozen=True)
class NodePorts:
    """The world as the daemon sees it."""

    ec2: Ec2
    imds: Imds
    clock: Clock
    store: CheckpointStore
    table: InstanceTable
    metrics: Metrics = field(default_factory=NullMetrics)
    make_datapath: Callable[[IPv4Network], Datapath] | None = None
    cluster: ClusterSource = field(default_factory=NoClusterSource)


def bootstrap(config: IpamConfig, options: NodeOptions, ports: NodePorts) -> Node:
    """Bring the node's IPAM up to date and return it, ready to serve."""
    ec2, imds, clock, store = ports.ec2, ports.imds, ports.clock, ports.store
    refusals = startup_refusals(config)
    identity = imds.identity()
    limits_entry = ports.table.get(identity.instance_type)
    if config.prefix_delegation and not limits_entry.prefixes_allowed:
        refusals.append(
            f"ENABLE_PREFIX_DELEGATION=true on {identity.instance_type}, which is "
            f"{limits_entry.hypervisor_label}: prefixes need Nitro (upstream silently falls back)"
        )
    if refusals:
        raise ConfigError(refusals)
    primary = next((i for i in imds.interfaces() if i.mac == identity.primary_mac), None)
    if primary is None:
        raise CloudError(f"IMDS lists no interface for the primary MAC {identity.primary_mac}")
    _log_provisioning(options.provisioning)
    # eni-max-pods.txt's figure; with custom networking `vpccni max-pods --custom-networking`'s
    # (the primary ENI carries no pod address)
    max_pods_default = compute_max_pods(
        limits_entry, MaxPodsOptions(custom_networking=config.custom_networking)
    ).uncapped
    limits = NodeLimits(
        max_enis=limits_entry.enis,
        ipv4_per_eni=limits_entry.ipv4_per_eni,
        max_pods=options.max_pods or max_pods_default,
        trunking=limits_entry.trunking,
    )
    context = _node_context(ec2, identity, primary, options)
    datastore = Datastore(config.mode, config.ip_cooldown_seconds)
    service = IpamService(datastore, store, clock)
    pool = _pool_manager(config, limits, service, context, ports, provisioning=options.provisioning)
    pool.engine.cluster = ports.cluster  # custom networking reads the node's ENIConfig from it
    if ports.make_datapath is not None:
        if primary.subnet_cidr is None:
            raise CloudError("IMDS gives no subnet CIDR for the primary interface")
        pool.datapath = ports.make_datapath(primary.subnet_cidr)
        pool.datapath.subnet_of = imds_subnets(imds)  # each ENI's own subnet and gateway
        primary_link = EniLink(identity.primary_mac, identity.local_ipv4, primary.subnet_cidr, 0)
        pool.datapath.host.setup_node(primary_link, primary.vpc_cidrs)
    recovery = None
    if options.recover_from is not None:  # before anything reads the damaged files
        if pool.datapath is None:
            raise ConfigError(["--recover needs the datapath (--host-datapath or --netns)"])
        recovery = prepare_recovery(options.recover_from)
    pool.reconcile_or_raise(force_ec2=True)
    takeover = take_over(options.takeover, pool.datapath, service, clock.now())  # before restore
    stale = _restore(service, store)
    if options.provisioning.provisioning:  # else nothing may be released: they stay, unused
        _release_inactive_kind(pool)
    spool = replay_spool(options.spool_dir, service)
    if pool.datapath is not None:
        datapath = pool.datapath
        adoption = adopt_routed_pods(
            service,
            datapath.host.pod_routes(),
            lambda a: (
                datapath.wiring(a.key, a.meta, "", a.address, datastore.eni_of(a.address)).host_veth
            ),
            recovery.hints if recovery is not None else (),
        )
        if recovery is not None:
            for line in recovery_report(recovery, adoption, service):
                log.warning("%s", line)
        datapath.converge(service)  # after the replay: released pods lose their links
    try:
        leaked = pool.lifecycle.cleanup_leaked_enis()
    except CloudError as error:
        log.warning("leaked-ENI cleanup failed: %s", error)
        leaked = []
    log.info(
        "node %s (%s) ready: %d ENIs, %d pods restored, %d stale, %d spooled DELs, %d leaked ENIs",
        identity.instance_id,
        identity.instance_type,
        len(datastore.enis()),
        len(datastore.assignments()),
        stale,
        spool.released,
        len(leaked),
    )
    return Node(
        identity,
        primary.vpc_cidrs,
        config,
        limits,
        service,
        pool,
        spool,
        stale,
        ports.cluster,
        takeover,
    )


def _node_context(
    ec2: Ec2, identity: InstanceIdentity, primary: ImdsInterface, options: NodeOptions
) -> NodeContext:
    """Where this node's ENIs go and how they are tagged: EC2's view of the instance, with the
    primary interface in IMDS filling gaps (and standing in for EC2 in IMDS-only mode)."""
    provisioning = options.provisioning
    instance = None if provisioning.imds_only else ec2.describe_instance(identity.instance_id)
    groups = primary.security_group_ids or (instance.security_groups if instance else ())
    return NodeContext(
        instance_id=identity.instance_id,
        vpc_id=(instance.vpc_id if instance else "") or primary.vpc_id,
        subnet_id=(instance.subnet_id if instance else "") or primary.subnet_id,
        security_groups=tuple(sorted(groups)),
        cluster_name=options.cluster_name,
        extra_tags=provisioning.additional_tags,
        availability_zone=identity.availability_zone,
    )


def _pool_manager(
    config: IpamConfig,
    limits: NodeLimits,
    service: IpamService,
    context: NodeContext,
    ports: NodePorts,
    *,
    provisioning: ProvisioningSettings,
) -> PoolManager:
    """The pool manager over an ENI lifecycle that may do what ``provisioning`` allows."""
    lifecycle = EniLifecycle(
        ports.ec2,
        ports.clock,
        context,
        random.Random(),
        provisioning=provisioning.provisioning,
        leaked_cleanup=provisioning.leaked_eni_cleanup,
    )
    policy = ProvisioningPolicy(
        provisioning.provisioning, provisioning.imds_only, provisioning.manage_untagged
    )
    return PoolManager(
        service, lifecycle, config, limits, ports.metrics, imds=ports.imds, policy=policy
    )


def _log_provisioning(provisioning: ProvisioningSettings) -> None:
    """Say once, at start, which of EC2's changes the daemon will not make, and why."""
    if provisioning.imds_only:
        log.warning(
            "ENABLE_IMDS_ONLY_MODE=true: the node's ENIs are read from IMDS only (no EC2 call, no "
            "tags) and nothing is provisioned: pods get the addresses already on attached ENIs"
        )
        if not provisioning.manage_untagged:
            log.warning(
                "MANAGE_UNTAGGED_ENI=false with ENABLE_IMDS_ONLY_MODE=true: IMDS shows no tags, "
                "so every secondary ENI is unmanaged (as upstream); only the primary ENI is used"
            )
    elif not provisioning.provisioning:
        log.warning(
            "DISABLE_NETWORK_RESOURCE_PROVISIONING=true: no ENI or address is created, assigned, "
            "released, freed or tagged; pods get the addresses already on attached ENIs "
            "(reconcile adds what another tool assigns)"
        )
    if not provisioning.leaked_eni_cleanup:
        why = (
            "DISABLE_LEAKED_ENI_CLEANUP=true"
            if provisioning.provisioning
            else "provisioning is off, so nothing is deleted"
        )
        log.info("leaked-ENI cleanup is off: %s", why)
    if not provisioning.manage_untagged:
        log.info(
            "MANAGE_UNTAGGED_ENI=false: attached ENIs without this node's instance_id tag are "
            "left alone unless tagged node.k8s.amazonaws.com/no_manage=false"
        )


def _restore(service: IpamService, store: CheckpointStore) -> int:
    state = store.load()
    with service.lock:
        stale = service.datastore.restore(state)
        now = service.clock.now()
        for assignment in stale:
            store.append(ReleaseRecord(assignment.key, assignment.address, now))
    for assignment in stale:
        log.warning(
            "checkpoint: %s held %s, which is on no attached ENI; released",
            assignment.key,
            assignment.address,
        )
    return len(stale)


def _release_inactive_kind(pool: PoolManager) -> None:
    """Give back unused CIDRs of the kind the current mode does not hand out."""
    mode = pool.config.mode
    for view in pool.service.views():
        unused = [
            IPv4Network(c.cidr)
            for c in view.cidrs
            if c.assigned == 0 and not cidr_kind_matches(IPv4Network(c.cidr), mode)
        ]
        if not unused:
            continue
        removed = pool.service.remove_unused_cidrs(view.eni_id, unused)
        try:
            pool.lifecycle.release_cidrs(view.eni_id, removed)
        except CloudError as error:
            log.warning("releasing inactive-kind CIDRs of %s failed: %s", view.eni_id, error)
