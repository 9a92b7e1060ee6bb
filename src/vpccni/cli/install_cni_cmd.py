"""``vpccni install-cni``: put the CNI plugin and the network config where the runtime looks.

Upstream's node entrypoint order, kept: first the plugin (``vpccni-cni`` in the bin dir, written
atomically and then run once for VERSION) - the static Go binary when one is available
(``--plugin-binary``, else ``/usr/lib/vpccni/vpccni-cni``), else the single-file Python plugin
for a fast interpreter of at least Python 3.8 (``--plugin`` forces one): a launcher behind its
shebang that runs ``vpccni-cni.d/cni.py`` from bytecode that interpreter compiled at install
time, so no pod's ADD pays for compiling it - then,
only once the daemon answers a ``status`` request over its socket, the conflist
``10-vpccni.conflist``, whose appearance is what tells the runtime that the node's network is
ready. Then upstream's ``10-aws.conflist``, which would sort first and win, is moved aside to
``10-aws.conflist.vpccni-replaced`` (and said so). The work is ``vpccni.node.plugin_install``'s,
shared with ``node-init`` and ``node-run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vpccni.errors import InvalidInput
from vpccni.node import plugin_install
from vpccni.node.plugin_install import (
    CONFLIST_NAME,
    DEBIAN_PYTHON,
    PLUGIN_NAME,
    STATIC_PLUGIN,
    choose_interpreter,
    existing_directory,
    install_plugin,
    render_conflist,
    wait_for_daemon,
    write_atomically,
)
from vpccni.plugin import cni

__all__ = [
    "CONFLIST_NAME",
    "PLUGIN_NAME",
    "choose_interpreter",
    "install_plugin",
    "render_conflist",
    "wait_for_daemon",
    "write_atomically",
]

MTU_RANGE = (576, 9001)


def register(subparsers: Any) -> None:
    """Add the ``install-cni`` subcommand."""
    parser = subparsers.add_parser(
        "install-cni",
        help="install the vpccni-cni plugin and, once ipamd answers, its network config",
        description="Write the plugin vpccni-cni into the CNI bin dir (atomically): the static "
        f"binary when one is available ({STATIC_PLUGIN} or --plugin-binary), else the Python "
        "plugin (a launcher behind a shebang, with cni.py and its bytecode, compiled by that "
        "interpreter, in vpccni-cni.d beside it); wait until the daemon answers a status "
        "request on its socket, then write 10-vpccni.conflist (vpccni-cni chained with "
        "portmap, and bandwidth with --bandwidth) into the conf dir, and move upstream's "
        "10-aws.conflist (which would sort first and win) aside to "
        "10-aws.conflist.vpccni-replaced.",
    )
    add_plugin_arguments(parser)
    parser.add_argument("--bin-dir", required=True, type=Path, help="e.g. /opt/cni/bin")
    parser.add_argument("--conf-dir", required=True, type=Path, help="e.g. /etc/cni/net.d")
    parser.add_argument("--socket", default=cni.DEFAULT_SOCKET, help="the daemon's socket")
    parser.add_argument("--spool-dir", default=cni.DEFAULT_SPOOL_DIR, help="DEL records")
    parser.add_argument(
        "--network-name", default="aws-cni", help="the conflist's network name (default aws-cni)"
    )
    parser.add_argument("--mtu", type=int, default=9001, help="pod MTU, 576-9001")
    parser.add_argument("--bandwidth", action="store_true", help="chain the bandwidth plugin")
    parser.add_argument("--wait-seconds", type=float, default=60.0, help="how long to wait")
    parser.add_argument(
        "--no-wait", action="store_true", help="write the conflist without asking the daemon"
    )
    parser.set_defaults(run=run)


def add_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """``--plugin``, ``--plugin-binary`` and ``--interpreter`` (also ``node-init``'s and
    ``node-run``'s)."""
    parser.add_argument(
        "--plugin",
        choices=plugin_install.KINDS,
        default="auto",
        help="which plugin to install: static (the Go binary, needs nothing on the host), "
        "python (needs Python >= 3.8 on the host) or auto (static when available; default)",
    )
    parser.add_argument(
        "--plugin-binary",
        type=Path,
        help=f"the static plugin to install (default {STATIC_PLUGIN} when it exists)",
    )
    parser.add_argument(
        "--interpreter",
        help=f"Python for the Python plugin's shebang (default {DEBIAN_PYTHON} when present, "
        "else this Python); never a shell shim such as pyenv's",
    )


def choose(args: argparse.Namespace) -> plugin_install.PluginChoice:
    """The plugin the flags ask for (see :func:`plugin_install.choose_plugin`)."""
    return plugin_install.choose_plugin(args.plugin, args.plugin_binary, args.interpreter)


def installed_line(path: Path, choice: plugin_install.PluginChoice) -> str:
    """What was installed and why, e.g. ``installed /opt/cni/bin/vpccni-cni: static plugin (no
    interpreter needed)`` (see :func:`plugin_install.describe_plugin`)."""
    return plugin_install.describe_plugin(path, choice)


def run(args: argparse.Namespace) -> str:
    """Install the plugin, wait for the daemon, install the conflist; say what was done."""
    bin_dir = existing_directory(args.bin_dir, "--bin-dir")
    conf_dir = existing_directory(args.conf_dir, "--conf-dir")
    check_options(args)
    choice = choose(args)
    plugin = plugin_install.install(choice, bin_dir)
    if not args.no_wait:
        wait_for_daemon(args.socket, args.network_name, args.wait_seconds)
    conflist = render_conflist(
        args.network_name, args.socket, args.spool_dir, args.mtu, bandwidth=args.bandwidth
    )
    path = plugin_install.install_conflist(conf_dir, conflist)
    lines = [
        installed_line(plugin, choice),
        plugin_install.describe_conflist(path, conflist, args.socket),
        *plugin_install.retire_upstream_conflists(conf_dir),
    ]
    return "\n".join(lines)


def check_options(args: argparse.Namespace) -> None:
    """The values that end up in the conflist, checked like the plugin will check them."""
    if not cni.is_cni_name(args.network_name):
        raise InvalidInput(
            f"--network-name {args.network_name!r}: use letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    for flag, value, limit in (
        ("--socket", args.socket, cni.MAX_SOCKET_PATH),
        ("--spool-dir", args.spool_dir, 4096),
    ):
        if why := cni.bad_path(value, limit):
            raise InvalidInput(f"{flag} {value!r} {why}")
    low, high = MTU_RANGE
    if not low <= args.mtu <= high:
        raise InvalidInput(f"--mtu {args.mtu} is outside {low}-{high}")
    if args.wait_seconds < 0:
        raise InvalidInput("--wait-seconds must not be negative")
