"""The node image leaves planning's openpyxl and matplotlib out (the ``planning`` extra): the
commands that need them say so in one line instead of failing with a traceback, and nothing
else imports them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vpccni.cli.main import main

GUIDE = {
    "subnet_cidr": "10.0.0.0/24",
    "node_groups": [{"instance_type": "c5.large", "pods": [1, 1, 0]}],
}


@pytest.mark.parametrize(
    ("missing", "command", "message"),
    [
        ("openpyxl", ("plan", "--xlsx", "out.xlsx"), "--xlsx needs openpyxl"),
        ("matplotlib", ("plan", "--plot", "out.png"), "--plot needs matplotlib"),
        ("matplotlib", ("simulate", "--plot", "out.png"), "--plot needs matplotlib"),
    ],
)
def test_a_missing_planning_library_is_a_one_line_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
    command: tuple[str, ...],
    message: str,
) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(GUIDE))
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    verb, flag, output = command
    code = main([verb, str(scenario), flag, str(tmp_path / output)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {message}")
    assert "pip install 'vpccni[planning]'" in err
    assert err.count("\n") == 1
    assert not (tmp_path / output).exists()


def test_the_daemon_side_never_imports_the_planning_libraries() -> None:
    probe = (
        "import sys; import vpccni.cli.main, vpccni.daemon.runner, vpccni.node.supervise; "
        "print(sorted(m for m in ('openpyxl', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
