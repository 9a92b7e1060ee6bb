"""The container runtime's side of CNI, for tests and the benchmark: exec the installed plugin.

``Runtime`` sets the ``CNI_*`` variables and writes the network config on stdin the way
containerd or kubelet do, pointing the plugin at a daemon socket and a spool directory through
``VPCCNI_SOCKET`` and ``VPCCNI_SPOOL_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETWORK = "aws-cni"
VERSIONS = ("0.4.0", "1.0.0", "1.1.0")  # the versions that allow every verb but GC and STATUS
ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")  # as upstream
POD_ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"


@dataclass(frozen=True)
class Outcome:
    """What one plugin run printed and returned."""

    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def network_config(version: str, **extra: Any) -> dict[str, Any]:
    """One plugin's config as a runtime passes it from a conflist (name and version filled in)."""
    return {"cniVersion": version, "name": NETWORK, "type": "vpccni-cni", "mtu": 9001, **extra}


def exec_plugin(plugin: Path, env: dict[str, str], stdin: bytes) -> Outcome:
    """Run the plugin once as a process with exactly ``env`` (plus PATH)."""
    done = subprocess.run(
        [str(plugin)],
        env={"PATH": os.defpath, **env},
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())


@dataclass
class Runtime:
    """Calls the plugin like a container runtime, for one daemon socket and spool directory."""

    plugin: Path
    socket: Path
    spool: Path
    netns: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(
        self, command: str, container_id: str = "c0ffee", ifname: str = "eth0"
    ) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": POD_ARGS,
            "CNI_PATH": "/opt/cni/bin",
            "VPCCNI_SOCKET": str(self.socket),
            "VPCCNI_SPOOL_DIR": str(self.spool),
            **self.extra_env,
        }

    def call(
        self,
        command: str,
        config: dict[str, Any] | bytes,
        container_id: str = "c0ffee",
        ifname: str = "eth0",
        **env: str,
    ) -> Outcome:
        stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
        variables = {**self.env(command, container_id, ifname), **env}
        return exec_plugin(self.plugin, {k: v for k, v in variables.items() if v != "-"}, stdin)
