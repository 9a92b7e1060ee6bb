"""The node variables that shape the conflist, through a real ``vpccni node-run`` (with its ipamd
child against the emulator): ``ENABLE_BANDWIDTH_PLUGIN`` chains upstream's bandwidth plugin,
``AWS_VPC_K8S_PLUGIN_LOG_FILE`` / ``_LEVEL`` become the plugin's ``pluginLogFile`` /
``pluginLogLevel`` (the plugin runs in the runtime's environment, not the DaemonSet's, so the
conflist is how they reach it; ``tests/plugin/test_plugin_log.py`` shows the plugin obeying them).
The defaults are in ``tests/node/test_node_run.py``.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.node.test_node_run import host_dirs, node_run, wait_for


def test_the_conflist_carries_the_node_variables(make_node: Any) -> None:
    node = make_node()
    _, conf_dir = host_dirs(node)
    log = node.directory / "plugin" / "cni.log"
    node.env.update(
        ENABLE_BANDWIDTH_PLUGIN="true",
        AWS_VPC_K8S_PLUGIN_LOG_FILE=str(log),
        AWS_VPC_K8S_PLUGIN_LOG_LEVEL="Warn",
    )
    process = node_run(node)
    conflist = conf_dir / "10-vpccni.conflist"
    wait_for(conflist.exists, process, "the conflist")
    plugins = json.loads(conflist.read_text())["plugins"]
    assert [plugin["type"] for plugin in plugins] == ["vpccni-cni", "portmap", "bandwidth"]
    assert plugins[2] == {"type": "bandwidth", "capabilities": {"bandwidth": True}}
    assert (plugins[0]["pluginLogFile"], plugins[0]["pluginLogLevel"]) == (str(log), "Warn")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
