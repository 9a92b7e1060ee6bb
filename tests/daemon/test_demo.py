"""The main job, `vpccni demo`, runs end to end and shows the pool grow and shrink."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_cleans_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "demo", "--pods", "10"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    sections = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(sections) == 4
    first, grown, _, shrunk = out.split("\n== ")[1:]
    assert "9 addresses, 0 assigned" in first
    assert "10 assigned" in grown
    assert "eni-00000000000000002" in grown
    assert "9 addresses, 0 assigned" in shrunk
    assert "eni-00000000000000002" not in shrunk
    assert "demo done" in out
    assert "Traceback" not in done.stderr
