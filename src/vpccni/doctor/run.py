"""One doctor run: find the daemon, gather every piece of evidence, judge it.

Where things are looked for: the daemon is the holder of its socket's lock; its own settings
(read back from its command line and environment with the daemon's parser) say where its
introspection and metrics listeners are, which veth prefix, IMDS and EC2 endpoints, region and
cluster name it uses, unless an option says otherwise. Host checks run in ``netns`` (the lab's
node namespace) or here; the daemon's TCP listeners, IMDS and EC2 are reached from the daemon's
own namespace.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpccni import __version__
from vpccni.adapters.instance_data import load_instance_table
from vpccni.configcheck.source import DaemonSetFile
from vpccni.core.limits import InstanceLimits
from vpccni.doctor.checks import cni, daemon, host, iam, imds, manifest, pool
from vpccni.doctor.evidence import DaemonProcess, HttpAnswer, Metrics, Missing
from vpccni.doctor.probes import cloud, files, kubelet
from vpccni.doctor.probes import daemon as daemon_probe
from vpccni.doctor.probes import host as host_probe
from vpccni.doctor.result import Result
from vpccni.errors import VpccniError
from vpccni.settings import (
    CloudSettings,
    DaemonSettings,
    DatapathSettings,
    Settings,
    parse_settings,
)

DEFAULT_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_BIN_DIR = Path("/opt/cni/bin")
DEFAULT_METRICS = "127.0.0.1:61678"


@dataclass(frozen=True)
class DoctorOptions:
    """Where to look. ``None`` for an address: the daemon's own setting (or the default)."""

    socket: Path = DaemonSettings().socket_path
    checkpoint_dir: Path = DaemonSettings().checkpoint_dir
    introspection: str | None = None
    metrics: str | None = None
    conf_dir: Path = DEFAULT_CONF_DIR
    bin_dir: Path = DEFAULT_BIN_DIR
    netns: str | None = None
    """A path: where the host checks run (None: here)."""
    pod_netns: str | None = None
    manifest: DaemonSetFile | None = None
    kubelet_config: Path | None = None


@dataclass(frozen=True)
class DaemonView:
    """The daemon as found, and where its listeners and endpoints are."""

    process: DaemonProcess | Missing
    settings: Settings | Missing
    introspection: str
    health: str
    metrics: str | None
    netns: str | None


def locate(options: DoctorOptions) -> DaemonView:
    """Find the daemon and resolve its addresses (options first, then its settings)."""
    process = daemon_probe.find_daemon(options.socket, options.checkpoint_dir)
    settings: Settings | Missing = (
        daemon_probe.daemon_settings(process)
        if isinstance(process, DaemonProcess)
        else Missing("the daemon is not running")
    )
    own = settings.daemon if isinstance(settings, Settings) else DaemonSettings()
    introspection = options.introspection or own.introspection_bind or own.health_bind
    health = options.introspection or own.health_bind
    metrics = options.metrics
    if metrics is None:
        metrics = f"{own.metrics_bind[0]}:{own.metrics_bind[1]}" if own.metrics_bind else None
    netns = (
        None
        if isinstance(process, DaemonProcess) and process.same_netns
        else process.netns
        if isinstance(process, DaemonProcess)
        else options.netns
    )
    return DaemonView(process, settings, introspection, health, metrics, netns)


def _json(answer: HttpAnswer | Missing, what: str) -> Any:
    if isinstance(answer, Missing):
        return answer
    if answer.status != 200:
        return Missing(f"{what} answered HTTP {answer.status}")
    try:
        return json.loads(answer.body)
    except ValueError as error:
        return Missing(f"{what} is not JSON: {error}")


def _served(view: DaemonView) -> frozenset[str] | Missing:
    pods = _json(daemon_probe.http_get(view.introspection, "/v1/pods", view.netns), "/v1/pods")
    if isinstance(pods, Missing):
        return pods
    return frozenset(str(pod.get("address")) for pod in pods if isinstance(pod, dict))


def _checkpoint(options: DoctorOptions, view: DaemonView, up: bool) -> Result:
    """The copy against the daemon's pods; one retry for a pod added or deleted in between."""
    directory = (
        view.settings.daemon.checkpoint_dir
        if isinstance(view.settings, Settings)
        else options.checkpoint_dir
    )
    for _ in range(2):
        served = _served(view) if up else Missing("the daemon is down")
        result = daemon.checkpoint(files.checkpoint_copy(directory), served)
        if result.status.value != "fail" or isinstance(served, Missing):
            return result
    return result


def _metrics(view: DaemonView) -> Metrics | Missing:
    if view.metrics is None:
        return Missing("the daemon serves no /metrics (DISABLE_METRICS)")
    answer = daemon_probe.http_get(view.metrics, "/metrics", view.netns)
    if isinstance(answer, Missing):
        return answer
    return daemon_probe.parse_metrics(answer.body.decode(errors="replace"))


def _limits(instance_type: str) -> InstanceLimits | None:
    table = load_instance_table()
    return table.get(instance_type) if instance_type in table else None


def _ipv4_per_eni(instance_type: str) -> int | Missing:
    limits = _limits(instance_type)
    if limits is None:
        return Missing(f"instance type {instance_type!r} is not in vpccni's table")
    return limits.ipv4_per_eni


def diagnose(options: DoctorOptions) -> list[Result]:
    """Every check, in report order: host, cni, daemon, pool, imds, iam, manifest."""
    view = locate(options)
    settings = view.settings if isinstance(view.settings, Settings) else None
    datapath = settings.datapath if settings else DatapathSettings()
    socket = str(settings.daemon.socket_path if settings else options.socket)
    reply = daemon_probe.rpc_status(Path(socket))
    up = not isinstance(reply, Missing)
    explain = (
        _json(daemon_probe.http_get(view.introspection, "/v1/explain", view.netns), "/v1/explain")
        if up
        else Missing("the daemon is down")
    )
    metrics = _metrics(view) if up else Missing("the daemon is down")
    reach = settings.cloud if settings else _own_cloud_settings()
    seen = cloud.cloud_view(
        view.process,
        reach.imds_endpoint,
        reach.ec2_endpoint_url,
        reach.region,
        settings.daemon.cluster_name if settings else "",
    )
    identity = seen.identity if isinstance(seen.identity, dict) else {}
    per_eni = (
        _ipv4_per_eni(identity["instance_type"])
        if identity.get("instance_type")
        else Missing("IMDS gave no instance type")
    )
    interface = host_probe.primary_interface(options.netns, identity.get("primary_mac"))
    conf = files.conf_dir(options.conf_dir)
    results = [
        host.forward_policy(host_probe.forward_chain(options.netns), datapath.veth_prefix),
        host.ip_forward(host_probe.sysctl(options.netns, host_probe.IP_FORWARD)),
        host.rp_filter(host_probe.rp_filter(options.netns, interface)),
        cni.conflist(conf, socket, str(options.bin_dir)),
        cni.chained_plugins(conf, files.bin_dir_names(options.bin_dir), str(options.bin_dir)),
        cni.plugin_version(
            files.installed_plugin(options.bin_dir),
            metrics.build_version if isinstance(metrics, Metrics) else metrics,
            __version__,
            str(options.bin_dir),
        ),
        daemon.socket_answer(reply, socket),
        daemon.health(
            daemon_probe.http_get(view.health, "/healthz", view.netns),
            daemon_probe.http_get(view.health, "/readyz", view.netns),
            up,
        ),
        _checkpoint(options, view, up),
        *pool.subnets(explain, seen.instance, per_eni),
        pool.max_pods(kubelet.kubelet_max_pods(options.kubelet_config), explain, per_eni),
        imds.daemon_imds(seen),
        imds.pod_imds(
            cloud.pod_imds(options.pod_netns)
            if options.pod_netns
            else Missing("no --pod-netns given"),
            seen.instance,
        ),
        iam.credentials(view.process, reach.ec2_endpoint_url),
        *iam.dry_runs(seen),
        *iam.without_dry_run(explain, metrics),
        *manifest.policy(_manifest(options)),
        manifest.settings(_manifest(options), _limits(identity.get("instance_type", ""))),
    ]
    return results


def _own_cloud_settings() -> CloudSettings:
    """Without a running daemon: IMDS and EC2 as this process's environment names them (in the
    daemon's container, the same variables), else the defaults."""
    try:
        return parse_settings(os.environ).cloud
    except VpccniError:
        return CloudSettings()


def _manifest(options: DoctorOptions) -> DaemonSetFile | Missing:
    if options.manifest is None:
        return Missing(
            "no --manifest given (the daemon's RBAC does not read DaemonSets: save it with "
            "`kubectl -n kube-system get daemonset vpccni -o yaml > ds.yaml`, then --manifest "
            "ds.yaml)"
        )
    return options.manifest
