"""What goes into a support bundle, gathered read-only with the doctor's probes.

Sections (each file capped by ``archive.CAPS``):

* ``introspection/``: ``/v1/enis``, ``/v1/pods``, ``/v1/explain``, the env settings,
  ``/v1/eni-configs``, ``/healthz``, ``/readyz``; ``metrics/metrics.txt``; ``status/``: the
  plugin socket's ``status`` answer and ``vpccni status``' table - all only while the daemon
  answers (the index says so when it does not);
* ``daemon/``: its process (PID, command line, the CNI's variables of its environment with
  their values, the other variables by name only: never a credential) and its settings as the
  daemon's parser reads them;
* ``logs/``: the daemon's log file, the plugin's, ``--log`` files, upstream's log directory and
  kubelet's logs of vpccni pods (the newest end of each);
* ``checkpoint/``: the state loaded from a private copy (``state.json``) and, with
  ``--include-pod-names``, the files themselves;
* ``network/``: ``ip`` addr, link, rule, route (every table), neigh; ``iptables-save`` (every
  table: filter, nat, mangle, raw); relevant sysctls - in ``--netns`` when given;
* ``cni/``: the conf dir's files, the plugin (kind, digest, VERSION answer, whether it is this
  vpccni's) and the bin dir; ``kubelet/max-pods.json``.

Pod names are learnt first (``/v1/pods`` and the checkpoint), so every later section is
redacted with them.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpccni import __version__
from vpccni.bundle.archive import CAPS, BundleWriter
from vpccni.bundle.redact import Redactor
from vpccni.deploy.variables import KNOWN_VARIABLES
from vpccni.doctor.evidence import DaemonProcess, HttpAnswer, KubeletMaxPods, Missing
from vpccni.doctor.probes import daemon as daemon_probe
from vpccni.doctor.probes import files, kubelet
from vpccni.doctor.probes.netns import CommandFailed, command, in_netns
from vpccni.doctor.run import DaemonView, DoctorOptions, locate
from vpccni.errors import VpccniError
from vpccni.node.sysctl import Sysctl, dotted
from vpccni.settings import Settings

INTROSPECTION = (
    ("enis", "/v1/enis"),
    ("pods", "/v1/pods"),
    ("explain", "/v1/explain"),
    ("ipamd-env-settings", "/v1/ipamd-env-settings"),
    ("networkutils-env-settings", "/v1/networkutils-env-settings"),
    ("eni-configs", "/v1/eni-configs"),
    ("healthz", "/healthz"),
    ("readyz", "/readyz"),
)
NETWORK = (
    ("ip-addr.txt", ["ip", "-d", "addr", "show"]),
    ("ip-link.txt", ["ip", "-d", "-s", "link", "show"]),
    ("ip-rule.txt", ["ip", "rule", "show"]),
    ("ip-route.txt", ["ip", "route", "show", "table", "all"]),
    ("ip-neigh.txt", ["ip", "neigh", "show"]),
    ("iptables-save.txt", ["iptables-save", "-c"]),
)
SYSCTLS = (
    ("net", "ipv4", "ip_forward"),
    ("net", "ipv4", "tcp_early_demux"),
    ("net", "ipv4", "ip_local_port_range"),
    ("net", "ipv4", "neigh", "default", "gc_thresh1"),
    ("net", "ipv4", "neigh", "default", "gc_thresh2"),
    ("net", "ipv4", "neigh", "default", "gc_thresh3"),
    ("net", "netfilter", "nf_conntrack_max"),
)
PER_INTERFACE = ("rp_filter", "forwarding", "accept_local", "proxy_arp")
LOG_GLOBS = (
    "/var/log/aws-routed-eni/*.log",
    "/var/log/pods/*_vpccni-*/*/*.log",
)
HOST_PREFIX = "/host/"
"""The DaemonSet mounts the host's log directory under /host: the same file from the host."""


@dataclass(frozen=True)
class BundleOptions:
    """Where to look (as the doctor) and what to include."""

    where: DoctorOptions
    logs: tuple[Path, ...] = ()
    include_pod_names: bool = False


@dataclass
class Collector:
    """Fills one bundle."""

    options: BundleOptions
    writer: BundleWriter
    redactor: Redactor
    render_status: Callable[[dict[str, Any], list[dict[str, Any]]], str] | None = None

    def put_json(self, path: str, value: Any, note: str = "") -> None:
        text = json.dumps(self.redactor.document(value), indent=1, default=str) + "\n"
        self.writer.add(path, self.redactor.text(text).encode(), note)

    def put_text(self, path: str, text: str, note: str = "", original: int | None = None) -> None:
        self.writer.add(path, self.redactor.text(text).encode(), note, original)

    def collect(self) -> dict[str, Any]:
        """Every section; returns the index's summary."""
        where = self.options.where
        view = locate(where)
        settings = view.settings if isinstance(view.settings, Settings) else None
        socket_path = settings.daemon.socket_path if settings else where.socket
        reply = daemon_probe.rpc_status(socket_path)
        documents = self._introspection(view) if not isinstance(reply, Missing) else {}
        checkpoint_dir = settings.daemon.checkpoint_dir if settings else where.checkpoint_dir
        state = files.loaded_copy(checkpoint_dir)
        self._learn(documents.get("pods"), state)
        if isinstance(reply, Missing):
            why = f"the daemon does not answer at {socket_path}: {reply.why}"
            for name in ("introspection", "metrics", "status"):
                self.writer.lack(name, why)
            daemon = f"down: {why}"
        else:
            self._daemon_sections(view, reply, documents)
            daemon = f"up (socket {socket_path})"
        self._process(view)
        self._logs(settings)
        self._checkpoint(checkpoint_dir, state)
        self._network(where.netns)
        self._cni(where)
        self._kubelet(where.kubelet_config)
        return {
            "vpccni": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(),
            "daemon": daemon,
            "netns": where.netns or "this process's",
            "pod_names": "included (--include-pod-names)"
            if self.options.include_pod_names
            else "redacted: each pod name is a pseudonym pod-<hash>, the same in every file",
        }

    def _introspection(self, view: DaemonView) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, path in INTROSPECTION:
            address = view.health if path in ("/healthz", "/readyz") else view.introspection
            answer = daemon_probe.http_get(address, path, view.netns)
            if isinstance(answer, Missing):
                self.writer.lack(f"introspection/{name}.json", answer.why)
                continue
            found[name] = _decoded(answer)
        return found

    def _learn(self, pods: Any, state: Any) -> None:
        names = [str(p.get("name", "")) for p in pods or [] if isinstance(p, dict)]
        if state is not None and not isinstance(state, str):
            names += [a.meta.name for a in state.assignments.values()]
        self.redactor.learn(names)

    def _daemon_sections(
        self, view: DaemonView, reply: dict[str, Any], documents: dict[str, Any]
    ) -> None:
        for name, _ in INTROSPECTION:
            if name in documents:
                self.put_json(f"introspection/{name}.json", documents[name])
        if view.metrics is None:
            self.writer.lack("metrics", "the daemon serves no /metrics (DISABLE_METRICS)")
        else:
            answer = daemon_probe.http_get(view.metrics, "/metrics", view.netns)
            if isinstance(answer, Missing):
                self.writer.lack("metrics", answer.why)
            else:
                self.put_text("metrics/metrics.txt", answer.body.decode(errors="replace"))
        self.put_json("status/plugin-status.json", reply)
        explain, pods = documents.get("explain"), documents.get("pods")
        if self.render_status is None or not isinstance(explain, dict) or "enis" not in explain:
            self.writer.lack("status/status.txt", "/v1/explain did not answer")
            return
        try:
            text = self.render_status(explain, pods if isinstance(pods, list) else [])
        except (KeyError, TypeError, ValueError) as error:
            self.writer.lack("status/status.txt", f"cannot render: {error!r}")
            return
        self.put_text("status/status.txt", text + "\n")

    def _process(self, view: DaemonView) -> None:
        process = view.process
        if not isinstance(process, DaemonProcess):
            self.writer.lack("daemon/process.json", process.why)
            return
        known = {n: v for n, v in sorted(process.environ.items()) if n in KNOWN_VARIABLES}
        self.put_json(
            "daemon/process.json",
            {
                "pid": process.pid,
                "cmdline": list(process.cmdline),
                "netns": process.netns,
                "environment": known,
                "other_variables": sorted(set(process.environ) - set(known)),
            },
        )
        if isinstance(view.settings, Settings):
            self.put_json("daemon/settings.json", dataclasses.asdict(view.settings))
        else:
            self.writer.lack("daemon/settings.json", view.settings.why)

    def _logs(self, settings: Settings | None) -> None:
        candidates = list(self.options.logs)
        if settings is not None and settings.daemon.log_file.startswith("/"):
            candidates.append(_on_host(Path(settings.daemon.log_file)))
        conf = files.conf_dir(self.options.where.conf_dir)
        if not isinstance(conf, Missing):
            candidates += [_on_host(Path(f.plugin_log)) for f in conf.files if f.plugin_log]
        for pattern in LOG_GLOBS:
            candidates += [Path(p) for p in sorted(glob.glob(pattern))]
        seen: set[str] = set()
        for path in candidates:
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            name = _unique(f"logs/{path.name}", {e.path for e in self.writer.entries})
            data, size = _tail(Path(real), CAPS["logs"])
            self.put_text(name, _whole_lines(data, size), f"from {path}", original=size)
        if not seen:
            self.writer.lack(
                "logs",
                "no log file found: the daemon logs to its stderr (kubectl -n kube-system logs "
                "daemonset/vpccni -c vpccni-node > ipamd.log, then --log ipamd.log)",
            )

    def _checkpoint(self, directory: Path, state: Any) -> None:
        if state is None:
            self.writer.lack("checkpoint", f"no checkpoint in {directory} (no pod had an address)")
            return
        if isinstance(state, str):
            self.put_text("checkpoint/load.txt", f"{directory}: {state}\n")
        else:
            self.put_json(
                "checkpoint/state.json",
                {
                    "directory": str(directory),
                    "assignments": [
                        {
                            "network": a.key.network,
                            "container_id": a.key.container_id,
                            "ifname": a.key.ifname,
                            "address": str(a.address),
                            "namespace": a.meta.namespace,
                            "name": a.meta.name,
                            "assigned_at": a.assigned_at,
                        }
                        for a in state.assignments.values()
                    ],
                    "cooldowns": {str(k): v for k, v in state.cooldowns.items()},
                },
            )
        if not self.options.include_pod_names:
            self.writer.lack(
                "checkpoint files",
                "left out: they name pods (state.json has the content, names redacted; "
                "--include-pod-names adds the files)",
            )
            return
        for path in sorted(directory.glob("ipam.*")):
            try:
                self.writer.add(f"checkpoint/{path.name}", path.read_bytes())
            except OSError as error:
                self.writer.lack(f"checkpoint/{path.name}", error.strerror or str(error))

    def _network(self, netns: str | None) -> None:
        for name, argv in NETWORK:
            try:
                self.put_text(f"network/{name}", command(argv, netns, timeout=30))
            except CommandFailed as error:
                self.writer.lack(f"network/{name}", str(error))
        try:
            self.put_text("network/sysctl.txt", in_netns(netns, _sysctls))
        except (OSError, VpccniError) as error:
            self.writer.lack("network/sysctl.txt", str(error))

    def _cni(self, where: DoctorOptions) -> None:
        conf = files.conf_dir(where.conf_dir)
        if isinstance(conf, Missing):
            self.writer.lack("cni/conf", conf.why)
        else:
            for item in conf.files:
                try:
                    text = (where.conf_dir / item.name).read_text(errors="replace")
                except OSError as error:
                    self.writer.lack(f"cni/conf/{item.name}", error.strerror or str(error))
                    continue
                self.put_text(f"cni/conf/{item.name}", text)
        plugin = files.installed_plugin(where.bin_dir)
        present = files.bin_dir_names(where.bin_dir)
        self.put_json(
            "cni/plugin.json",
            {
                "bin_dir": str(where.bin_dir),
                "plugin": dataclasses.asdict(plugin)
                if not isinstance(plugin, Missing)
                else {"missing": plugin.why},
                "this_vpccni": __version__,
                "bin_dir_executables": sorted(present)
                if not isinstance(present, Missing)
                else present.why,
            },
        )

    def _kubelet(self, config: Path | None) -> None:
        found = kubelet.kubelet_max_pods(config)
        if isinstance(found, KubeletMaxPods):
            self.put_json("kubelet/max-pods.json", dataclasses.asdict(found))
        else:
            self.writer.lack("kubelet/max-pods.json", found.why)


def _decoded(answer: HttpAnswer) -> Any:
    try:
        body: Any = json.loads(answer.body)
    except ValueError:
        body = answer.body.decode(errors="replace")
    return body if answer.status == 200 else {"http_status": answer.status, "body": body}


def _on_host(path: Path) -> Path:
    """A path inside the DaemonSet's container (``/host/...``) as the host sees it."""
    text = str(path)
    if not path.exists() and text.startswith(HOST_PREFIX):
        return Path("/" + text[len(HOST_PREFIX) :])
    return path


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}.{number}"
    return candidate


def _tail(path: Path, cap: int) -> tuple[bytes, int]:
    """At most the last ``cap`` bytes of ``path`` (read without loading the rest), and its size."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - cap))
        return stream.read(cap), size


def _whole_lines(data: bytes, size: int) -> str:
    """A log's tail from its first whole line (when it was cut)."""
    if len(data) < size and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return data.decode(errors="replace")


def _sysctls() -> str:
    """``key = value`` for the relevant sysctls of the calling thread's namespace."""
    sysctl = Sysctl()
    keys = list(SYSCTLS)
    try:
        interfaces = sorted(os.listdir(sysctl.root / "net" / "ipv4" / "conf"))
    except OSError:
        interfaces = []
    keys += [("net", "ipv4", "conf", name, key) for name in interfaces for key in PER_INTERFACE]
    lines = []
    for key in keys:
        if sysctl.exists(key):
            try:
                lines.append(f"{dotted(key)} = {sysctl.read(key)}")
            except VpccniError as error:
                lines.append(str(error))
    return "\n".join(lines) + "\n"
