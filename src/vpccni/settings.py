"""The daemon's settings: read once from the environment and the flags, validated, passed down.

:func:`read_settings` is the only place ``vpccni ipamd`` reads ``os.environ``; it hands the
environment and the command-line flags to :func:`parse_settings`, which returns one frozen
:class:`Settings` or raises ``ConfigError`` naming every bad value (variable or flag, its value,
why, what is accepted) - a bad value is never replaced by a default. Everything below it takes
the parts it needs as arguments. The values are parsed by ``vpccni.core.config``'s one reader
(Go's ``ParseBool`` / ``Atoi`` rules), which also parses the IPAM variables into ``IpamConfig``
(it lives in the core because ``vpccni explain`` and the planners parse their ``env`` with it).

The parts: ``ipam`` (the warm-pool variables), ``cloud`` (EC2: ``AWS_ENDPOINT_URL_EC2``, else
upstream's ``AWS_EC2_ENDPOINT``; ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else IMDS's;
``AWS_RETRY_MODE``, ``AWS_MAX_ATTEMPTS``, ``HTTP_TIMEOUT`` of at least 10 s; IMDS:
``AWS_EC2_METADATA_SERVICE_ENDPOINT``), ``datapath`` (upstream's networkutils variables) and
``daemon`` (the flags, ``CLUSTER_NAME``, ``DISABLE_METRICS``, ``DISABLE_INTROSPECTION``,
``INTROSPECTION_BIND_ADDRESS``, ``AWS_VPC_K8S_CNI_LOGLEVEL``, ``VPCCNI_SDK_LOGLEVEL``,
``AWS_VPC_K8S_CNI_LOG_FILE``, ``VPCCNI_CLOCK``,
``VPCCNI_POD_SWEEP_GRACE_SECONDS``, ``AWS_VPC_K8S_CNI_BACKING_STORE``: upstream's checkpoint,
taken over at a first start) and ``cluster`` (where the Node and the ENIConfigs
come from: ``--kube-api`` / ``--kube-token-file`` / ``--kube-ca-file``, ``--eniconfig-dir``,
``--node-label``, ``--node-annotation``, ``MY_NODE_NAME``, and the pod's own API access:
``KUBERNETES_SERVICE_HOST`` / ``_PORT`` or ``CLUSTER_ENDPOINT`` with a service-account token;
docs/kubernetes.md) and ``provisioning`` (what the daemon may do to EC2:
``DISABLE_NETWORK_RESOURCE_PROVISIONING``, ``ENABLE_IMDS_ONLY_MODE``, ``MANAGE_UNTAGGED_ENI``,
``DISABLE_LEAKED_ENI_CLEANUP``, ``ADDITIONAL_ENI_TAGS``, ``VPC_CNI_VERSION``;
:mod:`vpccni.settings_eni`); upstream's variables vpccni does not act on are refused unless
they keep their default, or validated and noted (``upstream_only``, :mod:`vpccni.settings_upstream`,
whose catalogue lists every upstream variable and what vpccni does with it). Not read here:
credentials and botocore's own configuration (profiles, CA bundle), which botocore takes from
its standard chain; the CNI plugin's variables, read by the plugin in its own process;
``VPCCNI_DEBUG``, which ``vpccni``'s entry point reads for every command to show a traceback.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, ip_address
from pathlib import Path
from urllib.parse import urlsplit

from vpccni.adapters.ec2_boto3 import Ec2Endpoint
from vpccni.adapters.imds_http import DEFAULT_ENDPOINT
from vpccni.adapters.kubernetes_api import SERVICE_ACCOUNT_DIR, in_cluster_endpoint
from vpccni.core.config import (
    DNS_SUBDOMAIN,
    ConfigError,
    IpamConfig,
    SettingsReader,
    absolute_file,
    in_range,
    object_name,
    parse_int,
    parse_seconds,
    read_ipam_config,
)
from vpccni.settings_eni import ProvisioningSettings, read_provisioning
from vpccni.settings_upstream import UpstreamOnly, read_upstream_only

RETRY_MODES = ("standard", "adaptive")
MIN_HTTP_TIMEOUT = 10
RANDOMIZE_SNAT = {"none": 0, "hashrandom": 1, "prng": 2}
CLOCKS = ("system", "emulator")
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes with its terminating NUL
MAX_TAG_VALUE = 256
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_VETH_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,4}")
_CIDR = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}")
URL_ACCEPTED = "an http:// or https:// URL such as http://127.0.0.1:5309"
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
MIN_SECONDS, MAX_SECONDS = 0.05, 86400.0  # below: a busy loop; above: a day
SECONDS_ACCEPTED = "a number of seconds from 0.05 to 86400, such as 5 or 0.2"
BIND_ACCEPTED = (
    "HOST:PORT with HOST an IP address, localhost or empty (every interface) and PORT 1 to 65535"
)
LOG_FILE_ACCEPTED = "stdout, stderr, or an absolute file path"
UPSTREAM_BACKING_STORE = "/var/run/aws-node/ipam.json"
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "pyroute2")


@dataclass(frozen=True)
class CloudSettings:
    """How this process reaches EC2 and IMDS. ``region`` None: ask IMDS."""

    ec2_endpoint_url: str | None = None
    region: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 3
    http_timeout: float = float(MIN_HTTP_TIMEOUT)
    imds_endpoint: str = DEFAULT_ENDPOINT

    def ec2(self, region: str, cni_version: str = "") -> Ec2Endpoint:
        """The EC2 endpoint for ``region`` (this one's region wins when set); ``cni_version``
        (``VPC_CNI_VERSION``) goes into the user agent."""
        return Ec2Endpoint(
            region=self.region or region,
            endpoint_url=self.ec2_endpoint_url,
            retry_mode=self.retry_mode,
            max_attempts=self.max_attempts,
            timeout_seconds=self.http_timeout,
            cni_version=cni_version,
        )


@dataclass(frozen=True)
class DatapathSettings:
    """Upstream's networkutils variables: the node's host networking and the pods' veths."""

    connmark: int = 0x80
    exclude_snat_cidrs: tuple[IPv4Network, ...] | None = None
    external_snat: bool = False
    external_service_cidrs: tuple[IPv4Network, ...] | None = None
    mtu: int = 9001
    veth_prefix: str = "eni"
    node_port_support: bool = True
    randomize_snat: str = "prng"

    @property
    def random_snat_code(self) -> int:
        """Upstream's number for ``randomize_snat`` (none 0, hashrandom 1, prng 2)."""
        return RANDOMIZE_SNAT[self.randomize_snat]

    def document(self) -> dict[str, object]:
        """Upstream's ``/v1/networkutils-env-settings`` document."""

        def cidrs(found: tuple[IPv4Network, ...] | None) -> list[str] | None:
            return None if found is None else [str(cidr) for cidr in found]

        return {
            "AWS_VPC_K8S_CNI_CONNMARK": self.connmark,
            "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": cidrs(self.exclude_snat_cidrs),
            "AWS_VPC_K8S_CNI_EXTERNALSNAT": self.external_snat,
            "AWS_EXTERNAL_SERVICE_CIDRS": cidrs(self.external_service_cidrs),
            "AWS_VPC_ENI_MTU": self.mtu,
            "AWS_VPC_K8S_CNI_VETHPREFIX": self.veth_prefix,
            "AWS_VPC_CNI_NODE_PORT_SUPPORT": self.node_port_support,
            "AWS_VPC_K8S_CNI_RANDOMIZESNAT": self.random_snat_code,
        }


@dataclass(frozen=True)
class DaemonFlags:
    """``vpccni ipamd``'s command-line flags as given: text, parsed with the environment."""

    socket: str = "/run/vpccni/ipamd.sock"
    checkpoint_dir: str = "/var/lib/vpccni/ipam"
    spool_dir: str = "/var/lib/vpccni/del-spool"
    introspection_bind: str = "127.0.0.1:61679"
    metrics_bind: str = ":61678"
    tick_seconds: str = "5"
    reconcile_seconds: str = "60"
    cleanup_seconds: str = "3600"
    max_pods: str | None = None
    netns: str | None = None
    host_datapath: bool = False
    recover: bool = False
    kube_api: str | None = None
    kube_token_file: str | None = None
    kube_ca_file: str | None = None
    eniconfig_dir: str | None = None
    node_labels: tuple[str, ...] = ()
    node_annotations: tuple[str, ...] = ()

    def values(self) -> dict[str, str | None]:
        """Each text flag by its command-line name (None: not given)."""
        return {
            "--socket": self.socket,
            "--checkpoint-dir": self.checkpoint_dir,
            "--spool-dir": self.spool_dir,
            "--introspection-bind": self.introspection_bind,
            "--metrics-bind": self.metrics_bind,
            "--tick-seconds": self.tick_seconds,
            "--reconcile-seconds": self.reconcile_seconds,
            "--cleanup-seconds": self.cleanup_seconds,
            "--max-pods": self.max_pods,
            "--netns": self.netns,
            "--kube-api": self.kube_api,
            "--kube-token-file": self.kube_token_file,
            "--kube-ca-file": self.kube_ca_file,
            "--eniconfig-dir": self.eniconfig_dir,
        }


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon listens and keeps its files, how often it acts, what it serves.

    ``introspection_bind`` None: ``DISABLE_INTROSPECTION`` (``health_bind`` still serves
    ``/healthz`` and ``/readyz`` there); ``metrics_bind`` None: no
    ``/metrics`` (``--metrics-bind none`` or ``DISABLE_METRICS``); ``max_pods`` None: the
    instance table's figure.
    """

    socket_path: Path = Path("/run/vpccni/ipamd.sock")
    checkpoint_dir: Path = Path("/var/lib/vpccni/ipam")
    spool_dir: Path = Path("/var/lib/vpccni/del-spool")
    introspection_bind: str | None = "127.0.0.1:61679"
    health_bind: str = "127.0.0.1:61679"
    """Where ``/healthz`` and ``/readyz`` are served: the introspection address, whether or not
    ``DISABLE_INTROSPECTION`` turns the rest of introspection off."""
    metrics_bind: tuple[str, int] | None = ("0.0.0.0", 61678)
    tick_seconds: float = 5.0
    reconcile_seconds: float = 60.0
    cleanup_seconds: float = 3600.0
    max_pods: int | None = None
    cluster_name: str = ""
    emulator_clock: bool = False
    log_level: int = logging.INFO
    """``AWS_VPC_K8S_CNI_LOGLEVEL``: vpccni's own messages."""
    sdk_log_level: int = logging.WARNING
    """``VPCCNI_SDK_LOGLEVEL``: botocore, boto3, urllib3, pyroute2 (DEBUG shows wire traffic)."""
    log_file: str = "stderr"
    """``AWS_VPC_K8S_CNI_LOG_FILE``: ``stdout``, ``stderr`` or an absolute path (appended)."""
    datapath_netns: str | None = None
    host_datapath: bool = False
    recover: bool = False
    """``--recover``: move the checkpoint aside and rebuild it from EC2 and the datapath."""
    pod_sweep_grace: float = 60.0
    """``VPCCNI_POD_SWEEP_GRACE_SECONDS``: a pod gone without DEL this long is released."""
    upstream_checkpoint: Path = Path(UPSTREAM_BACKING_STORE)
    """``AWS_VPC_K8S_CNI_BACKING_STORE``: upstream ipamd's checkpoint, imported (read only) when
    vpccni starts on a node without a checkpoint of its own (``vpccni.daemon.takeover``)."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the daemon's view of the cluster comes from (docs/kubernetes.md).

    ``source`` is ``api`` (``--kube-api URL``, or in-cluster: a service-account token and
    ``KUBERNETES_SERVICE_HOST`` or ``CLUSTER_ENDPOINT``), ``files`` (``--eniconfig-dir`` and/or
    ``--node-label`` / ``--node-annotation``) or ``none`` (``note`` says why, when it is not
    obvious).
    """

    source: str = "none"
    api_url: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    in_cluster: bool = False
    node_name: str = ""
    """``MY_NODE_NAME``: the Node the API source reads (needed for it)."""
    eniconfig_dir: Path | None = None
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_annotations: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    service_host: str | None = None
    """``KUBERNETES_SERVICE_HOST`` as read (kubelet sets it in every pod)."""
    service_port: int = 443
    """``KUBERNETES_SERVICE_PORT`` as read."""
    endpoint_override: str | None = None
    """``CLUSTER_ENDPOINT`` as read: upstream's API server address override (with the token)."""


@dataclass(frozen=True)
class Settings:
    """Everything ``vpccni ipamd`` is told, validated."""

    ipam: IpamConfig
    cloud: CloudSettings
    datapath: DatapathSettings
    daemon: DaemonSettings
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    upstream_only: UpstreamOnly = field(default_factory=UpstreamOnly)


def read_settings(flags: DaemonFlags) -> Settings:
    """The daemon's settings from this process's environment and ``flags``."""
    return parse_settings(os.environ, flags)


def parse_settings(
    env: Mapping[str, str],
    flags: DaemonFlags | None = None,
    *,
    service_account: Path = SERVICE_ACCOUNT_DIR,
) -> Settings:
    """Validate every variable in ``env`` the daemon reads, and ``flags``; refuse bad values.

    ``service_account`` is where a pod's service-account token would be (in-cluster API access).
    """
    flags = flags or DaemonFlags()
    variables = SettingsReader(env)
    given = SettingsReader(flags.values(), empty_is_unset=False)
    ipam = read_ipam_config(variables)
    cloud = _cloud(variables)
    datapath = _datapath(variables)
    daemon = _daemon(variables, given, flags)
    provisioning = read_provisioning(variables)
    upstream_only = read_upstream_only(variables)
    cluster_problems: list[str] = []
    cluster = _cluster(variables, given, flags, service_account, cluster_problems)
    problems = variables.problems + given.problems + cluster_problems
    if ipam.custom_networking and cluster.source == "api" and not cluster.node_name:
        problems.append(
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true needs the node's ENIConfig, named by its "
            "Node's labels, but MY_NODE_NAME is not set; set it to the node's name (the "
            "DaemonSet takes it from spec.nodeName)"
        )
    if daemon.emulator_clock and cloud.ec2_endpoint_url is None:
        problems.append(
            "VPCCNI_CLOCK='emulator' needs the emulator's address but no EC2 endpoint is set; "
            "set AWS_ENDPOINT_URL_EC2 to the emulator (e.g. http://127.0.0.1:5309) or unset "
            "VPCCNI_CLOCK"
        )
    if flags.netns is not None and flags.host_datapath:
        problems.append("--netns and --host-datapath contradict each other; give one of them")
    if flags.recover and flags.netns is None and not flags.host_datapath:
        problems.append(
            "--recover rebuilds the checkpoint from EC2 and the node's pod routes, so it needs "
            "the datapath: add --host-datapath (or --netns NAME); without it a rebuilt "
            "checkpoint could hand a running pod's address to another"
        )
    if problems:
        raise ConfigError(problems)
    return Settings(ipam, cloud, datapath, daemon, cluster, provisioning, upstream_only)


def _cloud(env: SettingsReader) -> CloudSettings:
    standard = env.value("AWS_ENDPOINT_URL_EC2", _url, None, URL_ACCEPTED)
    upstream = env.value("AWS_EC2_ENDPOINT", _url, None, URL_ACCEPTED)
    region_accepted = "a region name such as us-west-2 (lowercase letters, digits, dashes)"
    region = env.value("AWS_REGION", _region, None, region_accepted)
    default_region = env.value("AWS_DEFAULT_REGION", _region, None, region_accepted)
    return CloudSettings(
        ec2_endpoint_url=standard or upstream,
        region=region or default_region,
        retry_mode=env.choice("AWS_RETRY_MODE", "standard", RETRY_MODES),
        max_attempts=env.integer("AWS_MAX_ATTEMPTS", 3, 1),
        http_timeout=float(env.integer("HTTP_TIMEOUT", MIN_HTTP_TIMEOUT, MIN_HTTP_TIMEOUT)),
        imds_endpoint=env.value(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT", _url, DEFAULT_ENDPOINT, URL_ACCEPTED
        ),
    )


def _datapath(env: SettingsReader) -> DatapathSettings:
    defaults = DatapathSettings()
    cidrs_accepted = "IPv4 CIDRs separated by commas, such as 10.0.0.0/8,172.16.0.0/12"
    return DatapathSettings(
        connmark=env.value(
            "AWS_VPC_K8S_CNI_CONNMARK", _connmark, defaults.connmark, "1 to 2^32-1 (e.g. 0x80)"
        ),
        exclude_snat_cidrs=env.value(
            "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", _cidrs, None, cidrs_accepted
        ),
        external_snat=env.flag("AWS_VPC_K8S_CNI_EXTERNALSNAT", defaults.external_snat),
        external_service_cidrs=env.value(
            "AWS_EXTERNAL_SERVICE_CIDRS", _cidrs, None, cidrs_accepted
        ),
        mtu=env.integer("AWS_VPC_ENI_MTU", defaults.mtu, 576, 9001),
        veth_prefix=env.value(
            "AWS_VPC_K8S_CNI_VETHPREFIX",
            _veth_prefix,
            defaults.veth_prefix,
            "1 to 4 letters, digits, '_', '.' or '-', not eth, lo or vlan",
        ),
        node_port_support=env.flag("AWS_VPC_CNI_NODE_PORT_SUPPORT", defaults.node_port_support),
        randomize_snat=env.choice(
            "AWS_VPC_K8S_CNI_RANDOMIZESNAT", defaults.randomize_snat, tuple(RANDOMIZE_SNAT)
        ),
    )


def _daemon(env: SettingsReader, given: SettingsReader, flags: DaemonFlags) -> DaemonSettings:
    defaults = DaemonSettings()
    introspection_accepted = BIND_ACCEPTED + ", or unix:PATH"
    introspection = given.value(
        "--introspection-bind", _introspection_bind, None, introspection_accepted
    )
    introspection = env.value(
        "INTROSPECTION_BIND_ADDRESS", _introspection_bind, introspection, introspection_accepted
    )
    metrics = given.value("--metrics-bind", _metrics_bind, None, BIND_ACCEPTED + ", or none")
    return DaemonSettings(
        socket_path=given.value("--socket", _unix_path, defaults.socket_path, _UNIX_ACCEPTED),
        checkpoint_dir=given.value("--checkpoint-dir", _path, defaults.checkpoint_dir, "a path"),
        spool_dir=given.value("--spool-dir", _path, defaults.spool_dir, "a path"),
        introspection_bind=None if env.flag("DISABLE_INTROSPECTION", False) else introspection,
        health_bind=introspection if introspection is not None else defaults.health_bind,
        metrics_bind=None if env.flag("DISABLE_METRICS", False) else metrics,
        tick_seconds=_seconds(given, "--tick-seconds", defaults.tick_seconds),
        reconcile_seconds=_seconds(given, "--reconcile-seconds", defaults.reconcile_seconds),
        cleanup_seconds=_seconds(given, "--cleanup-seconds", defaults.cleanup_seconds),
        max_pods=given.value("--max-pods", _max_pods, None, "1 or more"),
        cluster_name=env.value(
            "CLUSTER_NAME", _cluster_name, "", f"at most {MAX_TAG_VALUE} characters"
        ),
        emulator_clock=env.choice("VPCCNI_CLOCK", "system", CLOCKS) == "emulator",
        log_level=env.value(
            "AWS_VPC_K8S_CNI_LOGLEVEL",
            _log_level,
            defaults.log_level,
            LOG_LEVELS_ACCEPTED,
        ),
        sdk_log_level=env.value(
            "VPCCNI_SDK_LOGLEVEL", _log_level, defaults.sdk_log_level, LOG_LEVELS_ACCEPTED
        ),
        log_file=env.value("AWS_VPC_K8S_CNI_LOG_FILE", _log_file, "stderr", LOG_FILE_ACCEPTED),
        datapath_netns=given.value("--netns", _text, None, "a namespace name or path"),
        host_datapath=flags.host_datapath,
        recover=flags.recover,
        pod_sweep_grace=float(
            env.integer("VPCCNI_POD_SWEEP_GRACE_SECONDS", int(defaults.pod_sweep_grace), 10, 86400)
        ),
        upstream_checkpoint=env.value(
            "AWS_VPC_K8S_CNI_BACKING_STORE",
            _file_path,
            defaults.upstream_checkpoint,
            "an absolute file path, such as " + UPSTREAM_BACKING_STORE,
        ),
    )


def _cluster(
    env: SettingsReader,
    given: SettingsReader,
    flags: DaemonFlags,
    service_account: Path,
    problems: list[str],
) -> ClusterSettings:
    """Which cluster source runs: explicit flags first, then the pod's own API access."""
    node_name = env.value("MY_NODE_NAME", _node_name, "", "a Node name (a DNS subdomain)")
    override = env.value("CLUSTER_ENDPOINT", _url, None, URL_ACCEPTED)
    host = env.value("KUBERNETES_SERVICE_HOST", _host, None, "an IP address or host name")
    port = env.integer("KUBERNETES_SERVICE_PORT", 443, 1, 65535)
    url = given.value("--kube-api", _url, None, URL_ACCEPTED)
    token = given.value("--kube-token-file", _existing_file, None, "a readable file")
    ca = given.value("--kube-ca-file", _existing_file, None, "a readable PEM file")
    directory = given.value("--eniconfig-dir", _directory, None, "an existing directory")
    labels = _pairs(flags.node_labels, "--node-label", _label_value, problems)
    annotations = _pairs(flags.node_annotations, "--node-annotation", str, problems)
    files = flags.eniconfig_dir is not None or bool(flags.node_labels or flags.node_annotations)
    if flags.kube_api is None and (flags.kube_token_file or flags.kube_ca_file):
        problems.append("--kube-token-file and --kube-ca-file go with --kube-api URL; add it")
    if flags.kube_api is not None and files:
        problems.append(
            "--kube-api and --eniconfig-dir/--node-label/--node-annotation contradict each "
            "other: the Node and ENIConfigs come from the API or from files; give one"
        )
    read = ClusterSettings(
        node_name=node_name, service_host=host, service_port=port, endpoint_override=override
    )
    if files:
        return replace(
            read,
            source="files",
            eniconfig_dir=directory,
            node_labels=labels,
            node_annotations=annotations,
        )
    if url is not None:
        return replace(read, source="api", api_url=url, token_file=token, ca_file=ca)
    endpoint = in_cluster_endpoint(host, port, override, service_account)
    if endpoint is None:
        note = ""
        if host or override:
            note = (
                f"no service-account token at {service_account / 'token'} "
                "(automountServiceAccountToken: false?)"
            )
        return replace(read, note=note)
    return replace(
        read,
        source="api",
        api_url=endpoint.url,
        token_file=endpoint.token_file,
        ca_file=endpoint.ca_file,
        in_cluster=True,
    )


def _node_name(raw: str) -> str:
    return object_name(raw, "a Node name (lowercase letters, digits, '-' and '.')")


def _host(raw: str) -> str:
    try:
        ip_address(raw)
    except ValueError:
        if len(raw) > 253 or not DNS_SUBDOMAIN.fullmatch(raw.lower()):
            raise ValueError("is not an IP address or host name") from None
    return raw


def _pairs(
    raw: tuple[str, ...], flag: str, check: Callable[[str], str], problems: list[str]
) -> dict[str, str]:
    """``KEY=VALUE`` flags (repeatable) as a mapping; bad ones are added to ``problems``."""
    found: dict[str, str] = {}
    for item in raw:
        key, equals, value = item.partition("=")
        try:
            if not equals:
                raise ValueError("is not KEY=VALUE")
            _qualified_key(key)
            found[key] = check(value)
        except ValueError as error:
            problems.append(
                f"{flag} {item!r} {error}; accepted: KEY=VALUE with KEY a Kubernetes key such as "
                "k8s.amazonaws.com/eniConfig"
            )
    return found


def _qualified_key(raw: str) -> str:
    prefix, slash, name = raw.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"has the key prefix {prefix!r}, which is not a DNS subdomain")
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"has the key {raw!r}, which is not a Kubernetes label/annotation key")
    return raw


def _label_value(raw: str) -> str:
    if raw and not _LABEL_NAME.fullmatch(raw):
        raise ValueError("has a value that is not a label value (at most 63 letters, digits, -_.)")
    return raw


def _existing_file(raw: str) -> Path:
    path = _path(raw)
    if not path.is_file():
        raise ValueError("is not a file")
    return path


def _directory(raw: str) -> Path:
    path = _path(raw)
    if not path.is_dir():
        raise ValueError("is not a directory")
    return path


_UNIX_ACCEPTED = f"a path of at most {MAX_UNIX_PATH_BYTES} bytes"
LOG_LEVELS_ACCEPTED = "DEBUG, INFO, WARN, ERROR or FATAL (any case)"


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or raw != raw.strip():
        raise ValueError("is not an http:// or https:// URL")
    return raw


def _region(raw: str) -> str:
    if not _REGION.fullmatch(raw):
        raise ValueError("is not a region name")
    return raw


def _connmark(raw: str) -> int:
    return in_range(parse_int(raw, base_prefixes=True), 1, 2**32 - 1)


def _cidrs(raw: str) -> tuple[IPv4Network, ...]:
    found = []
    for item in raw.split(","):
        if not _CIDR.fullmatch(item.strip()):
            raise ValueError(f"has {item.strip()!r}, which is not an IPv4 CIDR (A.B.C.D/N)")
        try:
            found.append(IPv4Network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"has {item.strip()!r}, which is not an IPv4 CIDR") from None
    return tuple(found)


def _veth_prefix(raw: str) -> str:
    if not _VETH_PREFIX.fullmatch(raw) or raw in ("eth", "lo", "vlan"):
        raise ValueError("cannot prefix the host side of pod veths")
    return raw


def _text(raw: str) -> str:
    if not raw or raw != raw.strip():
        raise ValueError("is empty or has spaces around it")
    return raw


def _path(raw: str) -> Path:
    return Path(_text(raw))


def _file_path(raw: str) -> Path:
    return Path(absolute_file(raw))


def _unix_path(raw: str) -> Path:
    if len(os.fsencode(_text(raw))) > MAX_UNIX_PATH_BYTES:
        raise ValueError("is too long for a Unix socket")
    return Path(raw)


def _tcp_bind(raw: str) -> tuple[str, int]:
    host, colon, port = raw.rpartition(":")
    if not colon or host != host.strip() or " " in host:
        raise ValueError("is not HOST:PORT")
    try:
        number = in_range(parse_int(port), 1, 65535)
    except ValueError:
        raise ValueError(f"has port {port!r}, which is not 1 to 65535") from None
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host not in ("", "localhost"):
        try:
            ip_address(literal)
        except ValueError:
            raise ValueError(f"has host {host!r}, which is not an IP address") from None
    return host, number


def parse_introspection_bind(raw: str) -> str:
    """An introspection endpoint, ``host:port`` or ``unix:PATH`` (also ``vpccni status``'s)."""
    return _introspection_bind(raw)


def _introspection_bind(raw: str) -> str:
    if raw.startswith("unix:"):
        _unix_path(raw[len("unix:") :])
    else:
        _tcp_bind(raw)
    return raw


def _metrics_bind(raw: str) -> tuple[str, int] | None:
    if raw == "none":
        return None
    host, port = _tcp_bind(raw)
    return host or "0.0.0.0", port


def _seconds(given: SettingsReader, name: str, default: float) -> float:
    def parse(raw: str) -> float:
        value = parse_seconds(raw)
        if value < MIN_SECONDS:
            raise ValueError(f"is below {MIN_SECONDS:g} s (the loop would spin a core)")
        if value > MAX_SECONDS:
            raise ValueError(f"is above {MAX_SECONDS:g} s (a day)")
        return value

    return given.value(name, parse, default, SECONDS_ACCEPTED)


def _max_pods(raw: str) -> int:
    return in_range(parse_int(raw), 1)


def _cluster_name(raw: str) -> str:
    if len(raw) > MAX_TAG_VALUE:
        raise ValueError("is too long for an EC2 tag value")
    return raw


def _log_file(raw: str) -> str:
    if raw in ("stdout", "stderr"):
        return raw
    if not raw.startswith("/") or raw.endswith("/") or raw != raw.strip():
        raise ValueError("is not stdout, stderr or an absolute file path")
    return raw


def _log_level(raw: str) -> int:
    if raw.lower() not in LOG_LEVELS:
        raise ValueError("is not a log level")
    return LOG_LEVELS[raw.lower()]
