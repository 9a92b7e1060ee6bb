"""`vpccni status --netns`: the emulator and the daemon run inside a network namespace of our own,
and status reaches the daemon's TCP introspection endpoint there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.netns.conftest import ip

SCENARIO = {
    "vpcs": [
        {"name": "v", "cidr": "10.0.0.0/16", "subnets": [{"name": "s", "cidr": "10.0.1.0/24"}]}
    ],
    "instances": [{"name": "n", "type": "c5.large", "subnet": "s"}],
}


def test_status_enters_the_daemons_namespace(
    netns_factory: Callable[[], str], tmp_path: Path
) -> None:
    node = netns_factory()
    ip("-n", node, "link", "set", "lo", "up")
    (tmp_path / "scenario.json").write_text(json.dumps(SCENARIO))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    cli = [sys.executable, "-m", "vpccni.cli.main"]
    inside = ["ip", "netns", "exec", node]
    emulator = subprocess.Popen(
        [
            *inside,
            *cli,
            "emulator",
            "--port",
            "5309",
            "--scenario",
            str(tmp_path / "scenario.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon_env = {
        **env,
        "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5309",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:5309/imds/i-00000000000000001/",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-west-2",
    }
    daemon = None
    try:
        time.sleep(1.5)
        daemon = subprocess.Popen(
            [
                *inside,
                *cli,
                "ipamd",
                "--socket",
                str(tmp_path / "s.sock"),
                "--checkpoint-dir",
                str(tmp_path / "ck"),
                "--spool-dir",
                str(tmp_path / "sp"),
                "--introspection-bind",
                "127.0.0.1:61679",
                "--metrics-bind",
                "none",
                "--tick-seconds",
                "0.2",
            ],
            env=daemon_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        out = ""
        while time.monotonic() < deadline:
            done = subprocess.run(
                [*cli, "status", "--netns", node],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            out = done.stdout
            if done.returncode == 0 and "9 addresses" in out:
                break
            time.sleep(0.3)
        assert "mode secondary-ip: 9 addresses, 0 assigned" in out, out
        outside = subprocess.run(
            [*cli, "status"], capture_output=True, text=True, env=env, check=False
        )
        assert outside.returncode != 0 or "9 addresses" not in outside.stdout
    finally:
        for process in (daemon, emulator):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
