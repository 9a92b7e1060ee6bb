"""The CNI configuration: vpccni's conflist first in the conf dir, every plugin it chains
installed, and the ``vpccni-cni`` binary the one the daemon's version ships.

The runtime (containerd, CRI-O) uses only the first configuration file in the conf dir, by
name; a file left behind by another CNI (upstream's ``10-aws.conflist``, a bridge from a test)
that sorts first silently takes over every new pod.
"""

from __future__ import annotations

from vpccni.doctor.evidence import ConfDir, InstalledPlugin, Missing
from vpccni.doctor.result import Result, failed, passed, skipped, warned
from vpccni.node.plugin_install import CONFLIST_NAME, PLUGIN_NAME

CONFLIST = ("cni.conflist", f"the first CNI configuration chains {PLUGIN_NAME}")
CHAINED = ("cni.chained-plugins", "every plugin the conflist chains is installed")
PLUGIN = ("cni.plugin-version", f"{PLUGIN_NAME} is the plugin of the daemon's version")
INSTALL = "vpccni install-cni --bin-dir {bin} --conf-dir {conf}"


def conflist(found: ConfDir | Missing, socket: str, bin_dir: str) -> Result:
    """The first file in the conf dir is a configuration whose first plugin is vpccni-cni and
    whose socket is the daemon's."""
    if isinstance(found, Missing):
        return failed(
            *CONFLIST,
            found.why,
            "create the directory and let the daemon write its conflist (vpccni node-run does; "
            "or " + INSTALL.format(bin=bin_dir, conf="DIR") + ")",
        )
    install = INSTALL.format(bin=bin_dir, conf=found.path)
    if not found.files:
        return failed(
            *CONFLIST,
            f"no network configuration in {found.path}: the runtime reports the node's network "
            "as not ready and starts no pod",
            f"the daemon writes {CONFLIST_NAME} once it answers: check it is running, or {install}",
        )
    first = found.files[0]
    order = ", ".join(f.name for f in found.files)
    if first.error:
        return failed(
            *CONFLIST,
            f"{first.name} sorts first in {found.path} ({order}) and {first.error}",
            f"remove or fix {found.path}/{first.name}",
        )
    if first.plugin_types[:1] != (PLUGIN_NAME,):
        return _not_first(found, install)
    if first.socket and first.socket != socket:
        return failed(
            *CONFLIST,
            f"{first.name} sends the plugin to {first.socket}, but the daemon listens at {socket}",
            f"reinstall the conflist for the daemon's socket: {install} --socket {socket}",
        )
    return passed(
        *CONFLIST,
        f"{first.name} is first of {len(found.files)} in {found.path}: network "
        f"{first.network}, {' -> '.join(first.plugin_types)}, socket {first.socket or 'default'}",
    )


def _not_first(found: ConfDir, install: str) -> Result:
    """The runtime's first configuration is another CNI's (vpccni's comes later, or nowhere)."""
    first = found.files[0]
    ours = [f for f in found.files if f.plugin_types[:1] == (PLUGIN_NAME,)]
    order = ", ".join(f.name for f in found.files)
    chain = " -> ".join(first.plugin_types) or "no plugin"
    if not ours:
        return failed(
            *CONFLIST,
            f"no configuration in {found.path} chains {PLUGIN_NAME} ({order}); the "
            f"runtime uses {first.name} ({chain})",
            f"{install}, and remove {first.name} if it belongs to another CNI",
        )
    return failed(
        *CONFLIST,
        f"{first.name} ({chain}) sorts before {ours[0].name} in {found.path} ({order}): the "
        "runtime uses only the first, so new pods do not get vpccni's networking",
        f"move {found.path}/{first.name} out of the conf dir (e.g. upstream's "
        "10-aws.conflist left behind)",
    )


def chained_plugins(
    found: ConfDir | Missing, present: frozenset[str] | Missing, bin_dir: str
) -> Result:
    """Every plugin type of vpccni's conflist has an executable in the bin dir."""
    if isinstance(found, Missing):
        return skipped(*CHAINED, found.why)
    if isinstance(present, Missing):
        return skipped(*CHAINED, present.why)
    ours = next((f for f in found.files if f.plugin_types[:1] == (PLUGIN_NAME,)), None)
    if ours is None:
        return skipped(*CHAINED, f"no configuration in {found.path} chains {PLUGIN_NAME}")
    missing = [name for name in ours.plugin_types if name not in present]
    if missing:
        return failed(
            *CHAINED,
            f"{ours.name} chains {' -> '.join(ours.plugin_types)} but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not in {bin_dir}: every pod ADD fails there",
            f"install the CNI reference plugins ({', '.join(missing)}) into {bin_dir} (the "
            "containernetworking-plugins package, or the AMI's /opt/cni/bin)",
        )
    return passed(*CHAINED, f"{', '.join(ours.plugin_types)} are all in {bin_dir}")


def plugin_version(
    found: InstalledPlugin | Missing, daemon_version: str | Missing, own_version: str, bin_dir: str
) -> Result:
    """The installed plugin is byte for byte the one vpccni ``daemon_version`` installs."""
    fix = (
        f"reinstall it with the daemon's vpccni: restart the DaemonSet's pod (its init container "
        f"installs it) or vpccni install-cni --bin-dir {bin_dir}"
    )
    if isinstance(found, Missing):
        return failed(*PLUGIN, f"no plugin: {found.why}", fix)
    if found.version_error:
        return failed(*PLUGIN, f"{found.path} {found.version_error}", fix)
    described = f"{found.path} is a {found.kind} plugin (sha256 {found.digest}…)"
    daemon, seen = (
        ("", f"the daemon's version is unknown: {daemon_version.why}")
        if isinstance(daemon_version, Missing)
        else (daemon_version, f"the daemon is vpccni {daemon_version}")
    )
    if found.same_as_shipped is None:
        return warned(
            *PLUGIN,
            f"{described}; cannot tell its version: {found.reference}",
            "run the doctor in the daemon's container (kubectl -n kube-system exec "
            "daemonset/vpccni -c vpccni-node -- vpccni doctor), whose image holds the reference",
        )
    if not found.same_as_shipped:
        return failed(
            *PLUGIN,
            f"{described}, not the plugin vpccni {own_version} ships ({found.reference}): an "
            "older or foreign plugin may speak another protocol to the daemon",
            fix,
        )
    if daemon and daemon != own_version:
        return failed(
            *PLUGIN,
            f"{described}: the plugin of vpccni {own_version}, but the daemon is vpccni {daemon}",
            fix,
        )
    return passed(*PLUGIN, f"{described}, the one vpccni {own_version} ships; {seen}")
