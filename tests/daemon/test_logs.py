"""The daemon's logs: our level for our messages, the SDK quiet unless asked, no secret ever.

A session token (as IRSA credentials carry) is planted in the daemon's environment; botocore
then sends it as ``X-Amz-Security-Token`` on every EC2 call. At every level, with the SDK's
wire logging on or off, the token appears in no log. ``AWS_VPC_K8S_CNI_LOG_FILE`` is honoured.
The plugin's log is tested with the plugin (``tests/plugin/test_plugin_log.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

TOKEN = "FwoGZXIvYXdzEPLANTEDSESSIONTOKENc2VjcmV0LXRva2Vu"
SECRET = "PLANTEDsecretACCESSkey0123456789abcdefgh"


@pytest.mark.parametrize(
    ("level", "sdk_level"),
    [("DEBUG", None), ("DEBUG", "DEBUG"), ("INFO", "INFO"), ("ERROR", "DEBUG")],
)
def test_no_token_in_the_log_at_any_level(
    make_node: Any, level: str, sdk_level: str | None
) -> None:
    env = {
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_VPC_K8S_CNI_LOGLEVEL": level,
    }
    if sdk_level is not None:
        env["VPCCNI_SDK_LOGLEVEL"] = sdk_level
    node = make_node("c5.large", **env)
    log_file = node.directory / "logs" / "ipamd.log"
    node.env["AWS_VPC_K8S_CNI_LOG_FILE"] = str(log_file)
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    assert node.add("web-0")["ok"]
    node.wait_for(lambda: len(node.enis()) == 2, what="the warm ENI")
    assert node.stop() == 0
    written = log_file.read_text()
    everything = written + node.log()
    assert TOKEN not in everything
    assert SECRET not in everything
    assert ("botocore" in written) == (sdk_level in ("DEBUG", "INFO"))  # only when asked
    wire = "X-Amz-Security-Token" in written
    assert wire == (sdk_level == "DEBUG")
    if wire:
        assert "X-Amz-Security-Token': b'<redacted>'" in written  # headers logged, redacted
    if level in ("DEBUG", "INFO"):
        assert "serving the plugin API" in written
    else:
        assert "serving the plugin API" not in written
