"""The main job as root, `vpccni demo --datapath` (what `bash scripts/run.sh` runs): after the
traffic proofs the pods are deleted through the plugin and the pool shrinks on the emulator's
clock, as the README describes, saying why the spare ENIs stay meanwhile; nothing is left in
the temporary directory, no namespace, no socket (issue #17 item 5)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.netns.conftest import ip


def test_datapath_demo_shrinks_the_pool_and_leaves_nothing(
    netns_factory: Callable[[], str],
) -> None:
    netns_factory()  # root, or fail loudly in CI
    before = set(ip("netns", "list").split())
    tmpdir = Path(tempfile.mkdtemp(prefix="vd3-", dir="/tmp"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vpccni.cli.main", "demo", "--datapath", "--pods", "11"],
            capture_output=True,
            text=True,
            check=False,
            timeout=240,
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        left_in_tmp = list(tmpdir.iterdir())
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    out = done.stdout
    sections = out.split("\n== ")[1:]
    titles = [section.splitlines()[0] for section in sections]
    assert len(titles) == 4, titles
    assert titles[1] == "11 pods wired through the CNI exec path"
    assert "11 assigned" in sections[1]
    assert "DEL 11 pods through the plugin" in sections[1]
    assert titles[2].startswith("31 s later (emulator clock): ")
    assert re.search(
        r"^why the pool does not shrink yet: eni-00000000000000003 is \d+ s old \(ENIs are "
        r"freed after 60 s\)",
        sections[2],
        re.MULTILINE,
    ), sections[2]
    assert titles[3].startswith("a minute later (emulator clock): ")
    assert "9 addresses, 0 assigned" in sections[3]
    assert "eni-00000000000000002" not in sections[3]
    assert "datapath demo done; removed " in out
    assert left_in_tmp == []
    leftover = [n for n in ip("netns", "list").split() if n.startswith("vd") and n not in before]
    assert leftover == [], leftover
