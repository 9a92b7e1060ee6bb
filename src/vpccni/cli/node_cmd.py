"""``vpccni node-init`` and ``vpccni node-run``: the DaemonSet's init and main containers.

Both validate every variable first, with the daemon's one strict parser (``vpccni.settings``)
and the node variables' (``vpccni.node.env``); a bad value exits 1 (as upstream's entrypoint)
naming the variable and why, before anything is started or written. See ``docs/image.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from vpccni.adapters.imds_http import ImdsV2
from vpccni.cli import install_cni_cmd, ipamd_cmd
from vpccni.errors import VpccniError
from vpccni.node.env import NodeSettings, parse_node_settings
from vpccni.node.init import HostView, node_init
from vpccni.node.plugin_install import PluginChoice, existing_directory
from vpccni.node.supervise import RunPlan, node_run
from vpccni.settings import DaemonFlags, Settings, parse_settings

EXIT_BAD_CONFIG = 1  # upstream's entrypoint exits 1 on a bad variable


class StartError(VpccniError):
    """A setting or flag node-init / node-run cannot start with (exit 1, as upstream)."""

    exit_code = EXIT_BAD_CONFIG


def register(subparsers: Any) -> None:
    """Add ``node-init`` and ``node-run``."""
    init = subparsers.add_parser(
        "node-init",
        help="init container: host sysctls for the primary ENI and the plugin binary",
        description="Find the primary interface (IMDS mac), set net.ipv4.conf.<primary>."
        "rp_filter=2, net.ipv4.ip_forward=1 and net.ipv4.tcp_early_demux (0 with "
        "DISABLE_TCP_EARLY_DEMUX, else 1), and install the plugin into HOST_CNI_BIN_PATH "
        "(default /host/opt/cni/bin). Needs a privileged container in the host's network "
        "namespace.",
    )
    install_cni_cmd.add_plugin_arguments(init)
    init.set_defaults(run=run_init)
    run = subparsers.add_parser(
        "node-run",
        help="main container: ipamd as a child, then the plugin and (once ipamd answers) the "
        "conflist; forwards SIGTERM",
        description="Validate the settings (exit 1 naming a bad variable), install the plugin "
        "into HOST_CNI_BIN_PATH, start `vpccni ipamd` (with --host-datapath unless --datapath "
        "none, plus IPAMD_FLAGS), wait until it answers ready on its socket, write "
        "10-vpccni.conflist into HOST_CNI_CONFDIR_PATH, and stay in the foreground; SIGTERM "
        "and SIGINT are forwarded to ipamd and node-run exits with its status.",
    )
    install_cni_cmd.add_plugin_arguments(run)
    run.add_argument(
        "--datapath",
        choices=("host", "none"),
        default="host",
        help="host: ipamd wires pods and host networking in its own network namespace (the "
        "node's; default); none: IPAM only (tests, or --netns given in IPAMD_FLAGS)",
    )
    run.add_argument(
        "ipamd_flags",
        nargs=argparse.REMAINDER,
        metavar="-- IPAMD_FLAGS",
        help="flags for `vpccni ipamd` (e.g. -- --tick-seconds 5)",
    )
    run.set_defaults(run=run_node)


def say(line: str) -> None:
    print(f"vpccni: {line}", flush=True)


def _settings(flags: DaemonFlags) -> tuple[Settings, NodeSettings]:
    try:
        settings = parse_settings(os.environ, flags)
        return settings, parse_node_settings(os.environ, settings.datapath.mtu)
    except VpccniError as error:
        raise StartError(str(error)) from None


def _choice(args: argparse.Namespace, node: NodeSettings, *, conflist: bool) -> PluginChoice:
    """The plugin to install, once the host directories are known to be usable."""
    try:
        existing_directory(node.bin_dir, "HOST_CNI_BIN_PATH")
        if conflist:
            existing_directory(node.conf_dir, "HOST_CNI_CONFDIR_PATH")
        return install_cni_cmd.choose(args)
    except VpccniError as error:
        raise StartError(str(error)) from None


def run_init(args: argparse.Namespace) -> str:
    """node-init: validate, then sysctls and the plugin."""
    settings, node = _settings(DaemonFlags())
    choice = _choice(args, node, conflist=False)
    imds = ImdsV2(settings.cloud.imds_endpoint, timeout_seconds=settings.cloud.http_timeout)
    node_init(imds, node, choice, HostView(), say)
    return "vpccni: node-init done"


def ipamd_arguments(args: argparse.Namespace) -> list[str]:
    """The flags node-run gives ipamd: ``--host-datapath`` (unless ``--datapath none``), then
    what follows ``--``."""
    given = list(args.ipamd_flags)
    if given[:1] == ["--"]:
        given = given[1:]
    return (["--host-datapath"] if args.datapath == "host" else []) + given


def run_node(args: argparse.Namespace) -> str:
    """node-run: validate everything, then supervise ipamd (see ``vpccni.node.supervise``)."""
    from vpccni.cli.main import build_parser  # main imports this module

    flags = ipamd_arguments(args)
    try:
        parsed = build_parser("ipamd").parse_args(["ipamd", *flags])
    except VpccniError as error:
        raise StartError(f"ipamd flags {' '.join(flags)!r}: {error}") from None
    settings, node = _settings(ipamd_cmd.daemon_flags(parsed))
    choice = _choice(args, node, conflist=True)
    plan = RunPlan(
        ipamd=[sys.executable, "-m", "vpccni.cli.main", "ipamd", *flags],
        socket=settings.daemon.socket_path,
        spool_dir=settings.daemon.spool_dir,
        node=node,
        choice=choice,
    )
    return "vpccni: " + node_run(plan, say)
