"""The daemon against the emulator reaches exactly upstream's ENI/IP counts as pods come and go."""

from __future__ import annotations

from typing import Any


def counts(node: Any) -> list[int]:
    """Secondary addresses per ENI as EC2 sees them."""
    return [len(eni.secondary_ips) for eni in node.enis()]


def pooled(node: Any) -> int:
    """ENIs in the daemon's pool (an ENI joins it once IMDS lists it, after EC2 has it)."""
    return len(node.introspect("/v1/explain")["enis"])


def test_c5_large_manifest_defaults_follow_upstream(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start()
    # Fresh node: F = 0 < WARM_ENI_TARGET x 9 -> the primary ENI gets 9 secondary IPs.
    node.wait_for(lambda: counts(node) == [9], what="9 IPs on the primary ENI")

    reply = node.add("pod-1")
    assert reply["ok"], reply
    assert reply["result"]["ips"][0]["gateway"] == "169.254.1.1"
    # One pod: F = 8 < 9 -> one warm ENI with 9 IPs.
    node.wait_for(lambda: counts(node) == [9, 9], what="a second ENI with 9 IPs")
    # its 60 s minimum lifetime counts from when it joined the pool: wait for that before
    # moving the clock (the daemon waits for IMDS to list a new ENI)
    node.wait_for(lambda: pooled(node) == 2, what="the second ENI in the pool")

    assert node.delete("pod-1")["ok"]
    # F = 18 >= (1 + 1) x 9, but the spare ENI is younger than a minute: it stays.
    node.advance(31)
    node.wait_for(lambda: node.introspect("/v1/explain")["cooldown"] == 0, what="cooldown over")
    assert counts(node) == [9, 9]
    node.advance(61)
    node.wait_for(lambda: counts(node) == [9], what="the spare ENI freed")
    status = node.introspect("/v1/explain")
    assert (status["total"], status["assigned"], len(status["enis"])) == (9, 0, 1)
    assert node.stop() == 0
