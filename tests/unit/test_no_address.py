"""``why_no_address``: each cause of "my pod has no IP" is named with its numbers."""

from __future__ import annotations

from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.no_address import Attaching, Failure, NoAddress, PoolFacts, why_no_address
from vpccni.core.pool_rules import CidrView, EniView, NodeLimits

NOW = 1_800_000_000.0
C5_LARGE = NodeLimits(max_enis=3, ipv4_per_eni=10, max_pods=29)
DEFAULTS = IpamConfig()
NO_FACTS = PoolFacts()


def eni(index: int, assigned: int, ips: int = 9, cooling: int = 0) -> EniView:
    cidrs = [
        CidrView(
            f"10.0.{index}.{i}/32",
            False,
            assigned=1 if i < assigned else 0,
            cooling=1 if assigned <= i < assigned + cooling else 0,
        )
        for i in range(ips)
    ]
    info = EniInfo(f"eni-{index}", index, primary=index == 0, created_at=NOW - 600)
    return EniView(info, tuple(cidrs))


def why(
    enis: list[EniView],
    config: IpamConfig = DEFAULTS,
    limits: NodeLimits = C5_LARGE,
    facts: PoolFacts = NO_FACTS,
) -> NoAddress:
    cause = why_no_address(enis, config, limits, facts, NOW)
    assert cause is not None
    return cause


def test_an_address_ready_means_no_cause() -> None:
    assert why_no_address([eni(0, 8)], IpamConfig(), C5_LARGE, PoolFacts(), NOW) is None


def test_node_full_names_enis_addresses_and_host_network_pods() -> None:
    cause = why([eni(0, 9), eni(1, 9), eni(2, 9)])
    assert cause.reason == "node_full"
    assert cause.message == (
        "node full: 3 of 3 ENIs, 27 of 27 addresses assigned "
        "(max pods 29 includes 2 host-network pods)"
    )
    assert not cause.retryable
    assert "prefix delegation" in cause.action


def test_max_eni_reached() -> None:
    cause = why([eni(0, 9)], IpamConfig(max_eni=1))
    assert (cause.reason, cause.retryable) == ("max_eni", False)
    assert cause.message == (
        "MAX_ENI reached: 1 of 1 ENIs (MAX_ENI=1; 3 allowed by the instance type), "
        "9 of 9 addresses assigned"
    )
    assert "raise MAX_ENI" in cause.action


def test_max_pods_reached() -> None:
    limits = NodeLimits(max_enis=3, ipv4_per_eni=10, max_pods=9)
    cause = why([eni(0, 9)], limits=limits)
    assert (cause.reason, cause.retryable) == ("max_pods", False)
    assert cause.message == (
        "max pods reached: 9 of 9 addresses assigned; the pool does not grow beyond max pods 9"
    )


def test_only_cooling_addresses_says_when_the_first_comes_back() -> None:
    facts = PoolFacts(cooling_released_at=(NOW - 18, NOW - 5, NOW - 3, NOW - 1, NOW - 400))
    cause = why([eni(0, 5, cooling=4)], IpamConfig(max_eni=1), facts=facts)
    assert (cause.reason, cause.retryable) == ("cooling", True)
    assert cause.message == (
        "addresses only cooling: 4 released, first reusable in 12 s (IP_COOLDOWN_PERIOD=30)"
    )


def test_cooling_on_a_node_that_can_grow() -> None:
    facts = PoolFacts(cooling_released_at=(NOW - 10,))
    cause = why([eni(0, 8, cooling=1)], facts=facts)
    assert cause.reason == "cooling"
    assert "first reusable in 20 s" in cause.message


def test_subnet_exhausted_names_the_subnet_its_free_count_and_the_pause() -> None:
    failure = Failure(
        "increaseIPPool", "InsufficientFreeAddressesInSubnet", "CreateNetworkInterface", "x", NOW
    )
    facts = PoolFacts(
        growth_failure=failure,
        insufficient_capacity_at=NOW - 20,
        subnet_id="subnet-0abc",
        subnet_free=0,
    )
    cause = why([eni(0, 9)], facts=facts)
    assert (cause.reason, cause.retryable) == ("subnet_exhausted", True)
    assert cause.message.startswith(
        "subnet exhausted: subnet-0abc has 0 free addresses (InsufficientFreeAddressesInSubnet "
        "at 07:59:40 UTC, 20 s ago), growth paused until 08:01:40 UTC (100 s more)"
    )


def test_subnet_exhaustion_pause_over_means_growing() -> None:
    facts = PoolFacts(insufficient_capacity_at=NOW - 121, subnet_id="subnet-0abc")
    assert why([eni(0, 9)], facts=facts).reason == "growing"


def test_throttled_names_the_api_and_the_pause() -> None:
    failure = Failure(
        "assign-ips", "RequestLimitExceeded", "AssignPrivateIpAddresses", "x", NOW - 2
    )
    cause = why([eni(0, 9)], facts=PoolFacts(growth_failure=failure, throttled_until=NOW + 8))
    assert (cause.reason, cause.retryable) == ("throttled", True)
    assert cause.message == (
        "EC2 refusing: throttled (RequestLimitExceeded on AssignPrivateIpAddresses, at "
        "07:59:58 UTC, 2 s ago), growth paused until 08:00:08 UTC (8 s more)"
    )


def test_throttled_after_the_pause_while_the_retry_runs() -> None:
    failure = Failure("assign-ips", "Throttling", "AssignPrivateIpAddresses", "x", NOW - 9)
    cause = why([eni(0, 9)], facts=PoolFacts(growth_failure=failure, throttled_until=NOW - 1))
    assert cause.reason == "throttled"
    assert cause.message.endswith("9 s ago), the pool manager is retrying")


def test_unauthorized_needs_a_change() -> None:
    failure = Failure(
        "assign-ips", "UnauthorizedOperation", "AssignPrivateIpAddresses", "denied", NOW - 4
    )
    cause = why([eni(0, 9)], facts=PoolFacts(growth_failure=failure))
    assert (cause.reason, cause.retryable) == ("unauthorized", False)
    assert cause.message.startswith(
        "EC2 refusing: UnauthorizedOperation on AssignPrivateIpAddresses (at 07:59:56 UTC, 4 s ago)"
    )
    assert "AmazonEKS_CNI_Policy" in cause.action


def test_other_ec2_error_is_named_with_its_code() -> None:
    failure = Failure("assign-ips", "InternalError", "AssignPrivateIpAddresses", "boom", NOW - 1)
    cause = why([eni(0, 9)], facts=PoolFacts(growth_failure=failure))
    assert (cause.reason, cause.retryable) == ("ec2_error", True)
    assert "InternalError on AssignPrivateIpAddresses" in cause.message


def test_an_eni_attaching() -> None:
    cause = why([eni(0, 9)], facts=PoolFacts(attaching=Attaching("eni-9", NOW - 3)))
    assert (cause.reason, cause.retryable) == ("attaching", True)
    assert cause.message == "growing: ENI eni-9 attaching since 3 s"
    creating = why([eni(0, 9)], facts=PoolFacts(attaching=Attaching("", NOW - 1)))
    assert creating.message == "growing: a new ENI being created since 1 s"


def test_an_attaching_eni_already_in_the_pool_is_not_the_cause() -> None:
    facts = PoolFacts(attaching=Attaching("eni-1", NOW - 3))
    assert why([eni(0, 9), eni(1, 0, ips=0)], facts=facts).reason == "growing"


def test_the_daemon_starting() -> None:
    cause = why([eni(0, 0, ips=0)], facts=PoolFacts(started=False))
    assert (cause.reason, cause.retryable) == ("starting", True)
    assert cause.message.startswith("the daemon is starting")


def test_growing_when_nothing_is_wrong() -> None:
    cause = why([eni(0, 9)])
    assert (cause.reason, cause.retryable) == ("growing", True)
    assert cause.message == (
        "growing: all 9 addresses are assigned; the pool manager adds addresses on its next pass"
    )


def test_a_full_node_is_full_even_while_ec2_throttles() -> None:
    failure = Failure("assign-ips", "RequestLimitExceeded", "AssignPrivateIpAddresses", "", NOW)
    facts = PoolFacts(growth_failure=failure, throttled_until=NOW + 30)
    assert why([eni(0, 9), eni(1, 9), eni(2, 9)], facts=facts).reason == "node_full"


def test_prefix_mode_node_full() -> None:
    config = IpamConfig(prefix_delegation=True)
    limits = NodeLimits(max_enis=1, ipv4_per_eni=2, max_pods=110)
    full = EniView(EniInfo("eni-0", 0, primary=True), (CidrView("10.0.0.16/28", True, 16),))
    cause = why([full], config, limits)
    assert cause.message.startswith("node full: 1 of 1 ENIs, 16 of 16 addresses assigned")
    assert "prefix delegation" not in cause.action


def test_provisioning_off_says_who_must_add_addresses() -> None:
    cause = why([eni(0, 7, cooling=2)], facts=PoolFacts(provisioning=False))
    assert (cause.reason, cause.retryable) == ("provisioning_off", True)
    assert cause.message == (
        "provisioning is off (DISABLE_NETWORK_RESOURCE_PROVISIONING or ENABLE_IMDS_ONLY_MODE): "
        "vpccni adds no address itself, and all 9 on the node's ENIs are taken "
        "(7 assigned, 2 cooling)"
    )
    assert cause.action.startswith("assign more addresses to the node's ENIs")
    assert (
        why_no_address([eni(0, 8)], DEFAULTS, C5_LARGE, PoolFacts(provisioning=False), NOW) is None
    )
