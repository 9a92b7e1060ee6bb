"""The pod sweep's list of up pod veths comes from a stdlib dump (``link_names``), not from
pyroute2, whose decoded dump is ~28 kB of cyclic garbage per link (the daemon's RSS grew ~60 kB
per pod that existed, benchmarks/daemon_rss.py): the same names, and nothing left to collect."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.netns.conftest import ip

SRC = str(Path(__file__).resolve().parents[2] / "src")
SCRIPT = """
import gc, sys
sys.path.insert(0, sys.argv[1])
from pyroute2 import IPRoute
from vpccni.adapters.link_names import up_links
with IPRoute() as ipr:
    by_pyroute2 = sorted(
        str(link.get_attr("IFLA_IFNAME"))
        for link in ipr.get_links()
        if str(link.get_attr("IFLA_IFNAME")).startswith("eni")
        and link.get_attr("IFLA_OPERSTATE") == "UP"
    )
gc.collect()
gc.disable()
names = sorted(up_links("eni"))
print(names == by_pyroute2, gc.collect(), " ".join(names))
"""


def test_up_links_lists_what_pyroute2_lists_and_leaves_no_garbage(
    netns_factory: Callable[[], str],
) -> None:
    node, pods = netns_factory(), netns_factory()
    for n in range(40):
        ip("-n", node, "link", "add", f"eni{n}", "type", "veth", "peer", f"p{n}", "netns", pods)
        if n % 4:  # every fourth pair left down: not listed
            ip("-n", node, "link", "set", f"eni{n}", "up")
            ip("-n", pods, "link", "set", f"p{n}", "up")
    ip("-n", node, "link", "add", "other0", "type", "veth", "peer", "q0", "netns", pods)
    ip("-n", node, "link", "set", "other0", "up")  # up, not a pod veth: not listed
    ip("-n", pods, "link", "set", "q0", "up")
    done = subprocess.run(
        ["ip", "netns", "exec", node, sys.executable, "-c", SCRIPT, SRC],
        capture_output=True,
        text=True,
        check=True,
    )
    same, garbage, names = done.stdout.split(" ", 2)
    assert same == "True"
    assert garbage == "0"  # pyroute2 leaves ~200 objects in cycles per link
    assert set(names.split()) == {f"eni{n}" for n in range(40) if n % 4}
