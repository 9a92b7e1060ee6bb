"""Host forwarding: the iptables FORWARD policy, IPv4 forwarding, ``rp_filter``.

Pod traffic is forwarded by the host (pod veth <-> ENI), so the FORWARD chain must accept it:
its policy ACCEPT, or (many custom AMIs set DROP) explicit ACCEPT rules for both directions of
the pod interfaces (``<veth prefix>+``). A catch-all ``-j DROP``/``-j REJECT`` rule counts as a
DROP policy from where it stands. ``rp_filter`` is the larger of ``all`` and the interface's
value: strict (1) drops replies to pods on secondary ENIs, which arrive on one interface and are
routed by another; upstream sets 2 (loose) on the primary interface, and 0 works too.
"""

from __future__ import annotations

from vpccni.doctor.evidence import ForwardChain, Missing, RpFilter
from vpccni.doctor.result import Result, failed, passed, warned

FORWARD = ("host.forward-policy", "iptables FORWARD accepts pod traffic")
IP_FORWARD = ("host.ip-forward", "IPv4 forwarding is on")
RP_FILTER = ("host.rp-filter", "rp_filter of the primary interface is not strict")
DROPS = ("DROP", "REJECT")


def forward_policy(chain: ForwardChain | Missing, veth_prefix: str) -> Result:
    """ACCEPT policy, or DROP with ACCEPT rules for both directions of ``<prefix>+``."""
    if isinstance(chain, Missing):
        return warned(
            *FORWARD,
            f"cannot read the FORWARD chain: {chain.why}",
            "run the doctor as root on the node (iptables must be installed)",
        )
    interfaces = f"{veth_prefix}+"
    before, catch_all = _split_at_catch_all(chain.rules)
    if chain.policy not in DROPS and catch_all is None:
        return passed(
            *FORWARD, f"FORWARD policy {chain.policy}, {len(chain.rules)} rules, no catch-all drop"
        )
    blocked_by = f"the rule `{catch_all}`" if catch_all else f"policy {chain.policy}"
    accepted = _accepted_directions(before, interfaces)
    if accepted == {"-i", "-o"}:
        return passed(
            *FORWARD,
            f"FORWARD drops by {blocked_by}, but ACCEPT rules for {interfaces} in both "
            "directions come first",
        )
    missing = " or ".join(f"{side} {interfaces}" for side in ("-i", "-o") if side not in accepted)
    return failed(
        *FORWARD,
        f"FORWARD drops by {blocked_by} and no ACCEPT rule before it matches {missing}: pod "
        "traffic to and from other hosts is dropped (many custom AMIs set DROP)",
        f"iptables -P FORWARD ACCEPT (and persist it), or iptables -I FORWARD -i {interfaces} -j "
        f"ACCEPT; iptables -I FORWARD -o {interfaces} -j ACCEPT",
    )


def _target(words: list[str]) -> str:
    return words[words.index("-j") + 1] if "-j" in words[:-1] else ""


def _split_at_catch_all(rules: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The rules before the first unconditional DROP/REJECT, and that rule (None: none)."""
    for position, rule in enumerate(rules):
        words = rule.split()
        if _target(words) in DROPS and words[2:3] == ["-j"]:  # no match before the target
            return list(rules[:position]), rule
    return list(rules), None


def _accepted_directions(rules: list[str], interfaces: str) -> set[str]:
    """``-i`` when some ACCEPT rule takes traffic from the pods, ``-o`` to them."""
    found: set[str] = set()
    for rule in rules:
        words = rule.split()
        if _target(words) != "ACCEPT":
            continue
        if words[2:3] == ["-j"]:
            return {"-i", "-o"}
        for side in ("-i", "-o"):
            if side in words[:-1] and words[words.index(side) + 1] == interfaces:
                found.add(side)
    return found


def ip_forward(value: str | Missing) -> Result:
    """``net.ipv4.ip_forward`` must be 1."""
    if isinstance(value, Missing):
        return warned(*IP_FORWARD, f"cannot read it: {value.why}", "run the doctor as root")
    if value == "1":
        return passed(*IP_FORWARD, "net.ipv4.ip_forward = 1")
    return failed(
        *IP_FORWARD,
        f"net.ipv4.ip_forward = {value}: the host does not forward pod traffic",
        "sysctl -w net.ipv4.ip_forward=1 (vpccni node-init sets it; persist it in /etc/sysctl.d)",
    )


def rp_filter(found: RpFilter | Missing) -> Result:
    """The effective ``rp_filter`` (max of ``all`` and the interface) must not be 1."""
    if isinstance(found, Missing):
        return warned(*RP_FILTER, f"cannot read it: {found.why}", "run the doctor as root")
    effective = max(found.interface_value, found.all_value)
    evidence = (
        f"net.ipv4.conf.{found.interface}.rp_filter = {found.interface_value}, "
        f"net.ipv4.conf.all.rp_filter = {found.all_value} (effective {effective})"
    )
    if effective != 1:
        return passed(*RP_FILTER, evidence)
    return failed(
        *RP_FILTER,
        evidence + ": strict reverse-path filtering drops replies for pods on secondary ENIs",
        f"sysctl -w net.ipv4.conf.{found.interface}.rp_filter=2 (loose; the kernel takes the "
        "larger of it and all's; vpccni node-init sets it)",
    )
