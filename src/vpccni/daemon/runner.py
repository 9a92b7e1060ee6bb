"""Assembles and runs the daemon: adapters, bootstrap, servers, the pool loop, shutdown.

Everything comes from one validated :class:`~vpccni.settings.Settings`, built by the caller.
The pool loop ticks every ``tick_seconds`` (5 s as upstream), reconciles with EC2 every
``reconcile_seconds`` (60 s) and sweeps leaked ENIs every ``cleanup_seconds`` (1 h), measured
on the daemon's clock (the system's, or the emulator's with ``VPCCNI_CLOCK=emulator``); with a
datapath, the leaked-pod sweep (``vpccni.daemon.sweep``) runs every ``tick_seconds``. SIGTERM
or SIGINT stops growth at once (``terminating``), lets in-flight requests and the current tick
finish, closes the servers, the cluster source and the checkpoint, and exits 0.

The cluster source (``vpccni.daemon.cluster``: the Kubernetes API, ENIConfig files or nothing)
is opened before the node starts; with custom networking start-up waits for the API, otherwise
for at most 30 s. Every tick first applies a changed max pods (the Node's
``status.capacity.pods``, else ``--max-pods``, else the ``eni-max-pods.txt`` figure).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.adapters.clock import SystemClock
from vpccni.adapters.ec2_boto3 import Boto3Ec2, make_ec2_client
from vpccni.adapters.emulator_time import RemoteEmulatorClock
from vpccni.adapters.host_network import NetlinkHostNetwork
from vpccni.adapters.imds_http import ImdsV2
from vpccni.adapters.instance_data import load_instance_table
from vpccni.adapters.node_lock import lock_node
from vpccni.adapters.pod_network import NetlinkPodNetwork
from vpccni.adapters.prometheus_metrics import PrometheusMetrics
from vpccni.cloud.guarded_ec2 import GuardedEc2
from vpccni.cloud.retry import Backoff
from vpccni.core.aws_types import CloudError
from vpccni.core.config import IpamConfig, capacity_warnings
from vpccni.core.model import PodKey, PodMeta
from vpccni.daemon.bootstrap import Node, NodeOptions, NodePorts, bootstrap
from vpccni.daemon.cluster import (
    describe,
    follow_max_pods,
    max_pods_choice,
    open_source,
    startup_max_pods_warning,
    table_max_pods,
    wait_for_api,
)
from vpccni.daemon.datapath import Datapath, imds_node
from vpccni.daemon.introspection import (
    Health,
    no_address_cause,
    routes,
    serve_introspection,
    serve_metrics,
)
from vpccni.daemon.rpc import RpcHooks, RpcServer, delete_pod
from vpccni.daemon.spool import replay_spool
from vpccni.daemon.sweep import PodSweep, run_sweep
from vpccni.daemon.takeover import TakeoverOptions
from vpccni.ports import Clock, Imds, Metrics, NullMetrics
from vpccni.settings import DaemonSettings, DatapathSettings, Settings
from vpccni.settings_eni import ProvisioningSettings

log = logging.getLogger("vpccni.ipamd")


def run_daemon(settings: Settings) -> int:
    """Start, serve until signalled, stop cleanly; returns the exit code."""
    cloud, options = settings.cloud, settings.daemon
    lock_node(options.checkpoint_dir, options.socket_path)  # held until the process exits
    cluster = open_source(settings.cluster, settings.ipam)  # a bad ENIConfig file: refused now
    log.info("cluster: %s", describe(settings.cluster))
    imds = ImdsV2(cloud.imds_endpoint, timeout_seconds=cloud.http_timeout)
    identity = imds.identity()
    endpoint = cloud.ec2(identity.region, settings.provisioning.cni_version)
    clock: Clock = SystemClock()
    if options.emulator_clock and endpoint.endpoint_url is not None:
        clock = RemoteEmulatorClock(endpoint.endpoint_url)
    metrics: Metrics = NullMetrics()
    prometheus = None
    if options.metrics_bind is not None:
        prometheus = PrometheusMetrics()
        metrics = prometheus
    ec2 = GuardedEc2(Boto3Ec2(make_ec2_client(endpoint)), clock, metrics)
    store = FileCheckpointStore(options.checkpoint_dir)

    def node_options() -> NodeOptions:
        known = cluster.view().node
        return NodeOptions(
            options.spool_dir,
            options.cluster_name,
            (known.max_pods if known is not None else None) or options.max_pods,
            options.checkpoint_dir if options.recover else None,
            None
            if options.recover
            else TakeoverOptions(options.upstream_checkpoint, options.checkpoint_dir),
            provisioning=settings.provisioning,
        )

    node = _bootstrap_until_ready(
        settings.ipam,
        node_options,
        NodePorts(
            ec2,
            imds,
            clock,
            store,
            load_instance_table(),
            metrics,
            _datapath_factory(options, settings.datapath, metrics, imds),
            cluster,
        ),
        lambda stop: wait_for_api(cluster, settings.ipam, stop),
    )
    if node is None:
        cluster.close()
        return 0
    limits, ipam = node.limits, settings.ipam
    for warning in capacity_warnings(
        ipam, limits.eni_cap(ipam), limits.addresses_per_eni(ipam.mode)
    ):
        log.warning("%s", warning)
    table = table_max_pods(limits, ipam.custom_networking)
    choice = max_pods_choice(cluster.view(), options.max_pods, table)
    log.info("max pods %d (%s)", choice[0], choice[1])
    max_pods_warning = startup_max_pods_warning(choice, ipam, limits)
    if max_pods_warning is not None:
        log.warning("%s", max_pods_warning)
    return _serve(
        _Running(
            node,
            options,
            clock,
            metrics,
            prometheus,
            settings.datapath,
            store,
            settings.provisioning,
        )
    )


def _datapath_factory(
    options: DaemonSettings, datapath: DatapathSettings, metrics: Metrics, imds: Imds
) -> Callable[[IPv4Network], Datapath] | None:
    """Pod and host networking in ``--netns`` (or this namespace with ``--host-datapath``)."""
    if options.datapath_netns is None and not options.host_datapath:
        return None
    netns = options.datapath_netns

    def make(subnet: IPv4Network) -> Datapath:
        return Datapath(
            NetlinkPodNetwork(netns),
            NetlinkHostNetwork(netns, datapath),
            subnet,
            datapath.mtu,
            datapath.veth_prefix,
            metrics,
            node_link=imds_node(imds),  # the VPC's CIDR blocks, re-read every 30 s
        )

    return make


def _bootstrap_until_ready(
    config: IpamConfig,
    options: Callable[[], NodeOptions],
    ports: NodePorts,
    wait_for_cluster: Callable[[threading.Event], bool],
) -> Node | None:
    """Wait for the cluster as upstream does, then bootstrap, retrying cloud failures with
    backoff (upstream exits and is restarted); ``options`` is asked again on every attempt (the
    Node's max pods may have arrived)."""
    stopping = threading.Event()
    main_pid = os.getpid()

    def on_signal(number: int, frame: object) -> None:
        if os.getpid() != main_pid:
            os._exit(0)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not wait_for_cluster(stopping):
        return None
    backoff = Backoff(attempts=1_000_000, base=0.5, cap=30.0)
    rng = random.Random()
    attempt = 0
    while not stopping.is_set():
        try:
            return bootstrap(config, options(), ports)
        except CloudError as error:
            wait = backoff.delay(attempt, rng)
            log.warning("start-up failed (%s); retrying in %.1f s", error, wait)
            attempt += 1
            stopping.wait(wait)
    return None


@dataclass(frozen=True)
class _Running:
    node: Node
    options: DaemonSettings
    clock: Clock
    metrics: Metrics
    prometheus: PrometheusMetrics | None
    datapath: DatapathSettings
    store: FileCheckpointStore
    provisioning: ProvisioningSettings


def _serve(running: _Running) -> int:
    node, options, metrics = running.node, running.options, running.metrics
    prometheus, store = running.prometheus, running.store
    networkutils = running.datapath.document()
    stop = threading.Event()
    main_pid = os.getpid()
    hooks = RpcHooks(
        datapath=node.pool.datapath,
        ready=lambda: not stop.is_set(),
        on_add=metrics.add_request,
        on_del=metrics.del_request,
        on_no_address=metrics.no_address,
        why_no_address=lambda: no_address_cause(node),
    )
    rpc = RpcServer(options.socket_path, node.service, hooks)
    rpc_thread = threading.Thread(target=rpc.serve_forever, daemon=True)
    health = Health(
        options.tick_seconds,
        rpc_serving=lambda: rpc_thread.is_alive() and options.socket_path.is_socket(),
        ready=hooks.ready,
    )
    servers: list[Any] = [rpc]
    # /healthz and /readyz are served even with DISABLE_INTROSPECTION (then nothing else is).
    table = (
        {}
        if options.introspection_bind is None
        else routes(node, lambda: networkutils, running.provisioning)
    )
    servers.append(serve_introspection(options.health_bind, table, health))
    if prometheus is not None and options.metrics_bind is not None:
        servers.append(serve_metrics(options.metrics_bind, prometheus.exposition))
    threads = [rpc_thread]
    threads += [threading.Thread(target=s.serve_forever, daemon=True) for s in servers[1:]]
    for thread in threads:
        thread.start()
    if node.pool.datapath is not None:
        sweep = PodSweep(node.service, node.pool.datapath, options.pod_sweep_grace, metrics)
        run_sweep(sweep, options.tick_seconds, stop)

    def on_signal(number: int, frame: object) -> None:
        if os.getpid() != main_pid:  # a forked helper (pyroute2's netns workers): just exit
            os._exit(0)
        log.info("signal %d: stop growing, finish in-flight work, exit", number)
        node.pool.state.terminating = True
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("serving the plugin API on %s", options.socket_path)
    _pool_loop(node, running, hooks, stop, health)
    for server in servers:
        server.shutdown()
        server.server_close()
    node.cluster.close()
    store.close()
    log.info("stopped")
    return 0


def _pool_loop(
    node: Node, running: _Running, hooks: RpcHooks, stop: threading.Event, health: Health
) -> None:
    """Tick until ``stop``; reconcile and sweep when their intervals have passed on the clock.

    Every pass is reported to ``health`` (``/healthz``), failed or not.
    """
    options, metrics, clock = running.options, running.metrics, running.clock
    last_reconcile = last_cleanup = None
    node.pool.report()
    health.tick_finished()
    while not stop.wait(options.tick_seconds):
        health.tick_started()
        try:
            follow_max_pods(node, options.max_pods)  # the Node's capacity arrived or changed
            node.pool.tick()
            metrics.pods_waiting(len(hooks.waiting))
            _drain_spool(node, options, hooks)
            now = clock.now()
            last_reconcile = last_reconcile if last_reconcile is not None else now
            last_cleanup = last_cleanup if last_cleanup is not None else now
            if _due(now, last_reconcile, options.reconcile_seconds):
                node.pool.reconcile()
                last_reconcile = now
            if _due(now, last_cleanup, options.cleanup_seconds):
                node.pool.lifecycle.cleanup_leaked_enis()
                last_cleanup = now
            if node.pool.datapath is not None:
                node.pool.datapath.follow_vpc_cidrs(now)  # SNAT exclusions follow the VPC
        except Exception:
            log.exception("pool manager tick failed; retrying on the next tick")
        finally:
            health.tick_finished()


def _due(now: float, last: float, interval: float) -> bool:
    """``interval`` has passed since ``last`` (or the clock stepped back: act, start over)."""
    return now - last >= interval or now < last


def _drain_spool(node: Node, options: DaemonSettings, hooks: RpcHooks) -> None:
    """Release DELs a plugin spooled although the daemon runs (it could not connect in time)."""

    def release(key: PodKey, addresses: list[IPv4Address]) -> bool:
        held = node.service.lookup(key) is not None
        prev = {"prevResult": {"ips": [{"address": str(a)} for a in addresses]}}
        delete_pod(key, PodMeta(), prev, node.service, hooks.datapath)
        return held

    replay = replay_spool(options.spool_dir, node.service, release)
    if replay.released or replay.bad:
        log.info("spooled DELs: %d released, %d unreadable", replay.released, len(replay.bad))
