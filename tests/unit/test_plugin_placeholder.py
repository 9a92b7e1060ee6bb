"""The placeholder `vpccni-cni`: answers VERSION, succeeds on DEL, errors in CNI JSON otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def cni(command: str) -> subprocess.CompletedProcess[str]:
    bin_dir = sys.executable.rsplit("/", 1)[0]
    env = {**os.environ, "CNI_COMMAND": command}
    return subprocess.run(
        [f"{bin_dir}/vpccni-cni"], env=env, input="", capture_output=True, text=True, check=False
    )


def test_version() -> None:
    done = cni("VERSION")
    assert done.returncode == 0
    body = json.loads(done.stdout)
    assert body["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]


def test_del_succeeds() -> None:
    assert cni("DEL").returncode == 0


def test_unknown_command_is_a_cni_error() -> None:
    done = cni("BOGUS")
    assert done.returncode != 0
    body = json.loads(done.stdout)
    assert body["code"] == 4
    assert "Traceback" not in done.stderr


def test_add_without_daemon_says_try_again_later() -> None:
    done = cni("ADD")
    assert json.loads(done.stdout)["code"] == 11
