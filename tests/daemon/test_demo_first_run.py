"""`vpccni demo` as a new user meets it: it says why spare ENIs stay, marks the emulator's
virtual time, and leaves no temporary directory or socket behind unless ``--keep`` is given
(issue #17 item 5).

Each run gets a private TMPDIR (short, under /tmp: the daemon's Unix sockets live in it), so
"nothing left behind" is checked exactly even while other tests run demos.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmpdir_env() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vd3-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def demo(tmpdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "demo", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env={**os.environ, "TMPDIR": str(tmpdir), **env},
    )


def test_the_demo_says_why_the_pool_keeps_its_enis_and_cleans_up(tmpdir_env: Path) -> None:
    done = demo(tmpdir_env, "--pods", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    sections = done.stdout.split("\n== ")[1:]
    titles = [section.splitlines()[0] for section in sections]
    assert len(titles) == 4, titles
    # Virtual time is marked wherever the demo moved the emulator's clock.
    assert "(emulator clock)" not in titles[0] + titles[1]
    assert titles[2].startswith("31 s later (emulator clock): ")
    assert titles[3].startswith("a minute later (emulator clock): ")
    # While the spare ENIs stay, the pool rules' reason is printed with each ENI's age.
    why = re.search(
        r"^why the pool does not shrink yet: eni-00000000000000003 is (\d+) s old \(ENIs are "
        r"freed after 60 s\), eni-00000000000000002 is (\d+) s old",
        sections[2],
        re.MULTILINE,
    )
    assert why is not None, sections[2]
    assert all(31 <= int(age) < 60 for age in why.groups())
    assert "27 addresses, 0 assigned" in sections[2]
    # A minute later they are gone.
    assert "9 addresses, 0 assigned" in sections[3]
    assert "eni-00000000000000002" not in sections[3]
    assert "why the pool does not shrink" not in sections[3]
    # Each pod's address is shown; nothing is left in the temporary directory.
    assert re.search(r"^ADD pod-0: 10\.0\.1\.\d+ \(plugin API\)$", done.stdout, re.MULTILINE)
    assert re.search(r"demo done; removed \S+/vpccni-demo-\S+ \(--keep", done.stdout)
    assert list(tmpdir_env.iterdir()) == []


def test_keep_leaves_the_demo_running_and_says_how_to_stop_it(tmpdir_env: Path) -> None:
    done = demo(tmpdir_env, "--pods", "2", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    stop = re.search(r"^stop it with: kill ([\d ]+); rm -rf (\S+)$", done.stdout, re.MULTILINE)
    assert stop is not None, done.stdout[-2000:]
    pids = [int(pid) for pid in stop.group(1).split()]
    directory = Path(stop.group(2))
    try:
        assert len(pids) == 2
        assert directory.parent == tmpdir_env
        assert (directory / "ipamd.sock").is_socket()
        introspection = f"unix:{directory / 'introspection.sock'}"
        status = subprocess.run(
            [sys.executable, "-m", "vpccni.cli.main", "status", "--introspection", introspection],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert "2 assigned" not in status.stdout  # the pods were deleted
    finally:
        for pid in pids:  # the emulator and ipamd this test's demo started
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    # Stopped with SIGTERM, ipamd removes its sockets: nothing stale is left in the directory.
    assert not (directory / "ipamd.sock").exists()
    assert not (directory / "introspection.sock").exists()


def test_a_failed_demo_keeps_its_logs_and_says_where_in_one_line(tmpdir_env: Path) -> None:
    done = demo(tmpdir_env, "--pods", "2", WARM_IP_TARGET="abc")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: demo: ipamd exited with status 2 while waiting for ipamd: ")
    assert "WARM_IP_TARGET='abc' is not an integer" in line
    kept = re.search(r"the demo's logs are kept in (\S+)$", line)
    assert kept is not None, line
    assert (Path(kept.group(1)) / "ipamd.log").read_text()
    assert [p.name for p in tmpdir_env.iterdir()] == [Path(kept.group(1)).name]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instance-type", "c5.lrage"], "unknown instance type 'c5.lrage'"),
        (["--pods", "28"], "--pods 28: give 1 to 27 (a c5.large holds 27 pod addresses"),
        (["--pods", "0"], "--pods 0: give 1 to 27"),
        (["--datapath", "--pods", "1"], "the traffic proofs need 2 pods"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    tmpdir_env: Path, args: list[str], message: str
) -> None:
    done = demo(tmpdir_env, *args)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert message in line
    assert list(tmpdir_env.iterdir()) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
