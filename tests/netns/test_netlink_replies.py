"""pyroute2 0.9.7 parks the kernel's acknowledgement of every ``get`` in a queue nothing reads
(about 1.5 kB each): the daemon's netlink workers drop them after each call, so RSS does not
grow with pod churn (benchmarks/daemon_rss.py measured ~25 kB per ADD/DEL before)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vpccni.adapters.netlink_kit import NetlinkWorkers, drop_stale_replies


def parked(ipr: Any) -> int:
    return int(ipr.asyncore.msg_queue.root.qsize())


def test_a_get_parks_its_acknowledgement_and_the_workers_drop_it(
    netns_factory: Callable[[], str],
) -> None:
    workers = NetlinkWorkers(netns_factory(), 1, "vt-replies")

    def five_gets(ipr: Any) -> int:
        for _ in range(5):
            ipr.link("get", index=1)
        return parked(ipr)

    try:
        assert workers.run(five_gets) == 5  # pyroute2 parks one reply per get (the bug)
        assert workers.run(parked) == 0  # the worker dropped them once the call returned
        assert workers.run(drop_stale_replies) == 0
    finally:
        workers.close()
