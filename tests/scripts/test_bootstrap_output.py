"""The README's set-up command on a fresh checkout prints a few lines, not apt's and pip's output
(issue #17: "On a fresh Debian 12 the main job prints under 15 lines before its own output").

A fresh machine is simulated as closely as this one allows without changing it: the repository's
files (as a fresh clone would have them, this working tree's versions) are copied to a new
directory with no ``.venv``, and ``bash scripts/run.sh`` runs there for real (venv, pip install,
the demo). Only the Debian step is played: a ``dpkg-query`` that reports every package missing
and an ``apt-get`` that prints what a real install prints (``sudo`` passes through), first in
``PATH``, so bootstrap takes its apt branch without installing anything. The same checkout then
shows a second run is silent, and a failing apt-get and a failing pip are reported with the
log's last 40 lines and its path. Slow (pip, ~20-60 s), never skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APT_LINES = 80  # what a fresh Debian printed before the main job's first line (issue #17)

FAKE_DPKG_QUERY = "#!/bin/sh\n# every package is missing\nexit 1\n"
FAKE_APT_GET = f"""#!/bin/sh
# apt-get as a fresh Debian 12 runs it, without installing anything
case "$1" in
  update)
    for n in $(seq 1 8); do echo "Get:$n http://deb.debian.org/debian bookworm InRelease"; done
    echo "Reading package lists..."
    ;;
  install)
    for n in $(seq 1 {APT_LINES}); do
      echo "Unpacking fake-package-$n (1.0-1) ..."
    done
    echo "Setting up fake-packages (1.0-1) ..."
    ;;
esac
"""
FAILING_APT_GET = """#!/bin/sh
case "$1" in
  update) for n in $(seq 1 60); do echo "Get:$n http://deb.debian.org/debian bookworm"; done ;;
  install) echo "Reading package lists..."; echo "E: Unable to locate package python3-venv"
           exit 100 ;;
esac
"""
FAKE_SUDO = '#!/bin/sh\n[ "$1" = -v ] && exit 0\nexec "$@"\n'


@dataclass
class FirstRun:
    checkout: Path
    output: str
    returncode: int

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a fresh clone has them (no .venv, no build output)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    assert not (destination / ".venv").exists()
    return destination


def fake_tools(directory: Path, apt_get: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", apt_get), ("sudo", FAKE_SUDO)):
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return directory


def run(
    checkout: Path, *command: str, fake: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    if fake is not None:
        env["PATH"] = f"{fake}:{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(
        list(command),
        cwd=checkout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    base = tmp_path_factory.mktemp("fresh")
    checkout = fresh_copy(base / "vpccni")
    fake = fake_tools(base / "fake-debian", FAKE_APT_GET)
    done = run(checkout, "bash", "scripts/run.sh", fake=fake)
    yield FirstRun(checkout, done.stdout, done.returncode)
    shutil.rmtree(base, ignore_errors=True)


def test_the_main_job_prints_under_15_lines_before_its_own_output(first_run: FirstRun) -> None:
    assert first_run.returncode == 0, first_run.output[-4000:]
    lines = first_run.lines
    own = next(i for i, line in enumerate(lines) if line.startswith("$ vpccni "))
    before = lines[:own]
    assert len(before) < 15, before
    # Nothing but bootstrap's own lines: one per step, each ending with its time.
    assert len(before) == 3, before
    apt, venv, pip = before
    assert apt.startswith("bootstrap: installing Debian packages: python3 python3-venv iproute2"), (
        apt
    )
    assert venv.startswith("bootstrap: creating .venv with "), venv
    assert re.fullmatch(
        r"bootstrap: installing vpccni into \.venv \(pip, ~20 s\)\.* done in \d+ s", pip
    ), pip
    for line in before:
        assert re.search(r"\.* done in \d+ s$", line), line
    # The demo (the main job's core) starts within the first 15 lines too.
    demo = next(i for i, line in enumerate(lines) if line.startswith("emulator on "))
    assert demo < 15, lines[: demo + 1]
    assert re.search(r"demo done; removed \S+", first_run.output), first_run.output[-2000:]


def test_apt_and_pip_output_goes_to_the_log_only(first_run: FirstRun) -> None:
    assert "Unpacking fake-package" not in first_run.output
    assert "Successfully installed" not in first_run.output
    log = (first_run.checkout / ".bootstrap.log").read_text()
    assert log.count("Unpacking fake-package-") == APT_LINES
    assert "Successfully installed" in log
    assert "=== " in log  # each step's output under a header naming it
    ignored = run(ROOT, "git", "check-ignore", "-q", "--no-index", ".bootstrap.log")
    assert ignored.returncode == 0, "git must ignore .bootstrap.log"


def test_a_second_run_installs_nothing_and_prints_nothing_of_its_own(first_run: FirstRun) -> None:
    done = run(first_run.checkout, "bash", "scripts/run.sh", "max-pods", "c5.large")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[0].startswith("instance type  c5.large"), done.stdout
    assert "bootstrap:" not in done.stdout


def test_a_failing_apt_get_prints_its_last_40_lines_and_the_log(
    first_run: FirstRun, tmp_path: Path
) -> None:
    fake = fake_tools(tmp_path / "failing-debian", FAILING_APT_GET)
    done = run(first_run.checkout, "bash", "scripts/bootstrap.sh", fake=fake)
    assert done.returncode == 100
    lines = done.stdout.splitlines()
    assert lines[0].startswith("bootstrap: installing Debian packages: ")
    assert re.search(r"\(apt-get\)\.* failed \(exit status 100 after \d+ s\)$", lines[0]), lines[0]
    quoted = [line for line in lines if line.startswith("  | ")]
    assert len(quoted) == 40
    assert quoted[-1] == "  | E: Unable to locate package python3-venv"
    log = first_run.checkout / ".bootstrap.log"
    assert lines[-1] == (f"bootstrap: the full output is in {log}; fix the cause above and re-run")
    assert len(lines) == 1 + 1 + 40 + 1


def test_a_failing_pip_is_reported_the_same_way_and_not_marked_installed(
    first_run: FirstRun,
) -> None:
    pyproject = first_run.checkout / "pyproject.toml"
    stamp = first_run.checkout / ".venv" / ".vpccni-installed"
    good, installed = pyproject.read_text(), stamp.read_text()
    try:
        pyproject.write_text(good + "\nthis is [not toml\n")
        done = run(first_run.checkout, "bash", "scripts/bootstrap.sh")
    finally:
        pyproject.write_text(good)
    assert done.returncode != 0
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"bootstrap: installing vpccni into \.venv \(pip, ~20 s\)\.* failed \(exit status \d+ "
        r"after \d+ s\)",
        lines[0],
    ), lines[0]
    assert any("TOML" in line or "toml" in line for line in lines if line.startswith("  | "))
    assert lines[-1].startswith("bootstrap: the full output is in ")
    assert stamp.read_text() == installed  # not marked installed: the next run tries again
