"""The daemon loads pyroute2's IPRoute without the package's ``__init__`` (which imports every
pyroute2 module: ~7 MiB of RSS the daemon never uses), and the full package is still there for
anyone who asks for it. Checked in fresh interpreters, since pytest's own process may already
hold pyroute2."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import vpccni.daemon.runner
lean = sorted(m for m in sys.modules if m.startswith("pyroute2"))
import pyroute2
state = "lean" if "__getattr__" in pyroute2.__dict__ else "full"
from pyroute2 import NDB, IPRoute
from vpccni.adapters.pyroute2_lean import IPRoute as Ours, NetlinkError
from pyroute2.netlink.exceptions import NetlinkError as Theirs
print(json.dumps({
    "lean": lean,
    "state": state,
    "after": "lean" if "__getattr__" in pyroute2.__dict__ else "full",
    "same_class": IPRoute is Ours,
    "same_error": NetlinkError is Theirs,
    "ndb": NDB.__module__,
    "version": pyroute2.__version__,
}))
"""


def probe() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return dict(json.loads(done.stdout))


def test_the_daemon_imports_only_the_pyroute2_modules_it_uses() -> None:
    found = probe()
    lean = found["lean"]
    assert isinstance(lean, list)
    assert "pyroute2.iproute.linux" in lean
    for heavy in ("pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.conntrack", "pyroute2.ethtool"):
        assert heavy not in lean, heavy
    assert found["state"] == "lean"


def test_the_whole_package_is_still_there_on_demand() -> None:
    found = probe()
    assert found["after"] == "full"
    assert found["same_class"] is True
    assert found["same_error"] is True
    assert found["ndb"] == "pyroute2.ndb.main"
    assert found["version"] == "0.9.7"
