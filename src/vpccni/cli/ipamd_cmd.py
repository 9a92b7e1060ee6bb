"""``vpccni ipamd``: the node daemon (see docs/ipamd.md).

The flags are taken as text and parsed with the environment by ``vpccni.settings``, so a bad
flag and a bad variable are refused the same way, all of them in one message.

Logging: vpccni's own messages at ``AWS_VPC_K8S_CNI_LOGLEVEL``; the SDK and HTTP libraries
(botocore, boto3, urllib3, pyroute2) at ``VPCCNI_SDK_LOGLEVEL`` (WARNING unless asked: their
DEBUG output is every request's headers); everything else at WARNING. Written to
``AWS_VPC_K8S_CNI_LOG_FILE`` (``stderr`` by default, ``stdout``, or a file, appended). Every
line passes through :class:`RedactingFormatter`, so credentials, session and IMDS tokens and
request signatures never reach the log, whatever level is asked for.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

from vpccni.errors import InvalidInput
from vpccni.settings import SDK_LOGGERS, DaemonFlags, DaemonSettings, read_settings

_SECRET = re.compile(
    r"(?i)(x-amz-security-token|x-aws-ec2-metadata-token|authorization|aws_session_token|"
    r"aws_secret_access_key|aws_security_token|sessiontoken|secretaccesskey|signature|"
    r"credential|token)(['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,&}]+)"
)


class RedactingFormatter(logging.Formatter):
    """Formats, then replaces the value after any credential-like name with ``<redacted>``."""

    def format(self, record: logging.LogRecord) -> str:
        return _SECRET.sub(r"\1\2<redacted>", super().format(record))


def configure_logging(daemon: DaemonSettings) -> None:
    """Our level for ``vpccni``, the SDK's for its libraries, one redacting handler."""
    handler: logging.Handler
    if daemon.log_file in ("stdout", "stderr"):
        handler = logging.StreamHandler(sys.stdout if daemon.log_file == "stdout" else sys.stderr)
    else:
        try:
            Path(daemon.log_file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(daemon.log_file, encoding="utf-8")
        except OSError as error:
            raise InvalidInput(
                f"cannot open the log file {daemon.log_file} (AWS_VPC_K8S_CNI_LOG_FILE): "
                f"{error.strerror}; fix its directory's permissions or choose another path"
            ) from None
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("vpccni").setLevel(daemon.log_level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(daemon.sdk_log_level)


def register(subparsers: Any) -> None:
    """Add the ``ipamd`` subcommand."""
    defaults = DaemonFlags()
    parser = subparsers.add_parser(
        "ipamd",
        help="run the node daemon (IPAM, warm pool, plugin API, introspection, metrics)",
        description="Run the node daemon. Configuration comes from upstream's environment "
        "variables (WARM_ENI_TARGET, WARM_IP_TARGET, MINIMUM_IP_TARGET, WARM_PREFIX_TARGET, "
        "ENABLE_PREFIX_DELEGATION, MAX_ENI, IP_COOLDOWN_PERIOD, ...) and AWS_ENDPOINT_URL_EC2 / "
        "AWS_EC2_METADATA_SERVICE_ENDPOINT for the cloud; invalid values are refused.",
    )
    parser.add_argument(
        "--socket",
        default=defaults.socket,
        help=f"the plugin API socket (default {defaults.socket})",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=defaults.checkpoint_dir,
        help=f"where the pool's checkpoint lives (default {defaults.checkpoint_dir})",
    )
    parser.add_argument(
        "--spool-dir",
        default=defaults.spool_dir,
        help=f"DELs the plugin recorded while the daemon was down (default {defaults.spool_dir})",
    )
    parser.add_argument(
        "--introspection-bind",
        default=defaults.introspection_bind,
        help="host:port or unix:PATH (INTROSPECTION_BIND_ADDRESS overrides)",
    )
    parser.add_argument(
        "--metrics-bind",
        default=defaults.metrics_bind,
        help="host:port for /metrics, or 'none' (default :61678, all interfaces, as upstream)",
    )
    parser.add_argument(
        "--tick-seconds",
        default=defaults.tick_seconds,
        help=f"how often the warm pool is checked (default {defaults.tick_seconds})",
    )
    parser.add_argument(
        "--reconcile-seconds",
        default=defaults.reconcile_seconds,
        help=f"how often the pool is reconciled, IMDS first (default {defaults.reconcile_seconds})",
    )
    parser.add_argument(
        "--cleanup-seconds",
        default=defaults.cleanup_seconds,
        help=f"how often leaked ENIs are looked for (default {defaults.cleanup_seconds})",
    )
    parser.add_argument(
        "--max-pods",
        help="kubelet's max pods when the Kubernetes API does not give the Node's "
        "status.capacity.pods (default: the eni-max-pods.txt figure)",
    )
    cluster = parser.add_argument_group(
        "the cluster",
        "Where the Node (labels, annotations, max pods) and the ENIConfigs come from: the "
        "Kubernetes API in a pod with a service-account token (at the in-cluster address or "
        "CLUSTER_ENDPOINT; MY_NODE_NAME names the Node), --kube-api, or files "
        "(see docs/kubernetes.md)",
    )
    cluster.add_argument(
        "--kube-api", metavar="URL", help="the API server (instead of the in-cluster address)"
    )
    cluster.add_argument(
        "--kube-token-file", metavar="FILE", help="bearer token for --kube-api (re-read on change)"
    )
    cluster.add_argument("--kube-ca-file", metavar="FILE", help="CA bundle for an https --kube-api")
    cluster.add_argument(
        "--eniconfig-dir",
        metavar="DIR",
        help="ENIConfig YAML (what 'kubectl get eniconfigs -o yaml' prints), re-read on change",
    )
    cluster.add_argument(
        "--node-label",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a label of this node, for the file source (repeatable)",
    )
    cluster.add_argument(
        "--node-annotation",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an annotation of this node, for the file source (repeatable)",
    )
    parser.add_argument(
        "--netns",
        metavar="NAME",
        help="wire pods and host networking in this network namespace (the node's)",
    )
    parser.add_argument(
        "--host-datapath",
        action="store_true",
        help="wire pods and host networking in the daemon's own namespace (production nodes)",
    )
    parser.add_argument(
        "--recover",
        action="store_true",
        help="the checkpoint is damaged: move its files aside (never deleted), rebuild it from "
        "EC2 and the node's pod routes, report what was and was not recovered, then serve "
        "(needs --host-datapath or --netns; see docs/checkpoint.md)",
    )
    parser.set_defaults(run=run)


def daemon_flags(args: argparse.Namespace) -> DaemonFlags:
    """The parsed ``ipamd`` command line as the settings parser takes it (also node-run's)."""
    return DaemonFlags(
        socket=args.socket,
        checkpoint_dir=args.checkpoint_dir,
        spool_dir=args.spool_dir,
        introspection_bind=args.introspection_bind,
        metrics_bind=args.metrics_bind,
        tick_seconds=args.tick_seconds,
        reconcile_seconds=args.reconcile_seconds,
        cleanup_seconds=args.cleanup_seconds,
        max_pods=args.max_pods,
        netns=args.netns,
        host_datapath=args.host_datapath,
        recover=args.recover,
        kube_api=args.kube_api,
        kube_token_file=args.kube_token_file,
        kube_ca_file=args.kube_ca_file,
        eniconfig_dir=args.eniconfig_dir,
        node_labels=tuple(args.node_label),
        node_annotations=tuple(args.node_annotation),
    )


def run(args: argparse.Namespace) -> str:
    """Run the daemon until it is signalled."""
    # Here, not at the top: node-run parses ipamd's flags with this module and must not load
    # the daemon (pyroute2, botocore, prometheus_client) into its own long-lived process.
    from vpccni.daemon.runner import run_daemon

    settings = read_settings(daemon_flags(args))
    configure_logging(settings.daemon)
    log = logging.getLogger("vpccni.ipamd")
    if settings.upstream_only.pod_name:
        log.info("running as pod %s", settings.upstream_only.pod_name)
    for note in settings.upstream_only.notes:
        log.warning("%s", note)
    run_daemon(settings)
    return "ipamd stopped"
