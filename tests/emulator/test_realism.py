"""Realism knobs on the pure emulator: AWS's bucket figures, faults, IMDS tokens, knob parsing."""

from __future__ import annotations

from typing import Any

import pytest

from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import Ec2Error, EmulatorSetupError
from vpccni.emulator.realism import Knobs, RateLimiter, knobs_from_json, knobs_to_json
from vpccni.emulator.service import Emulator


def codes(
    emulator: Emulator, action: str, params: dict[str, Any], times: int, now: float
) -> list[str]:
    found = []
    for _ in range(times):
        try:
            emulator.call(action, params, now)
            found.append("ok")
        except Ec2Error as error:
            found.append(error.code)
    return found


@pytest.mark.parametrize(
    ("action", "params", "size", "refill"),
    [
        ("DescribeSubnets", {}, 100, 20),
        ("DescribeNetworkInterfaces", {}, 50, 10),
        ("DescribeNetworkInterfaces", {"MaxResults": 5}, 100, 20),
        ("DetachNetworkInterface", {"AttachmentId": "eni-attach-1"}, 50, 5),
        ("UnassignPrivateIpAddresses", {"NetworkInterfaceId": "eni-1"}, 100, 5),
        ("CreateTags", {"Resources": ["eni-1"], "Tags": []}, 100, 10),
    ],
)
def test_buckets_have_aws_sizes_and_refill_rates(
    table: InstanceTable, action: str, params: dict[str, Any], size: int, refill: int
) -> None:
    emulator = Emulator(table)
    first = codes(emulator, action, params, size + 1, now=100.0)
    assert "RequestLimitExceeded" not in first[:size]
    assert first[size] == "RequestLimitExceeded"
    # One second later exactly ``refill`` more calls get through.
    later = codes(emulator, action, params, refill + 1, now=101.0)
    assert later.count("RequestLimitExceeded") == 1
    assert later[-1] == "RequestLimitExceeded"


def test_each_api_has_its_own_bucket_and_limits_can_be_turned_off(table: InstanceTable) -> None:
    emulator = Emulator(table, Knobs(buckets={}))
    codes(emulator, "DescribeVpcs", {}, 100, now=0.0)
    assert codes(emulator, "DescribeVpcs", {}, 1, now=0.0) == ["RequestLimitExceeded"]
    assert codes(emulator, "DescribeSubnets", {}, 1, now=0.0) == ["ok"]
    emulator.set_knobs(Knobs(rate_limits=False))
    assert "RequestLimitExceeded" not in codes(emulator, "DescribeVpcs", {}, 500, now=0.0)


def test_faults_are_reproducible_from_the_seed(table: InstanceTable) -> None:
    knobs = knobs_from_json({"faults": {"*": {"rate": 0.3}}, "seed": 42, "rate_limits": False})
    runs = [codes(Emulator(table, knobs), "DescribeVpcs", {}, 40, 0.0) for _ in range(2)]
    assert runs[0] == runs[1]
    assert 0 < runs[0].count("InternalError") < 40


def test_a_fault_after_acting_keeps_the_change(table: InstanceTable) -> None:
    knobs = knobs_from_json(
        {"faults": {"CreateVpc": {"rate": 1, "code": "Unavailable", "after": True}}}
    )
    emulator = Emulator(table, knobs)
    with pytest.raises(Ec2Error) as error:
        emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, 0.0)
    assert error.value.http_status == 503
    assert len(emulator.model.store.vpcs) == 1


def test_imds_tokens_are_per_node_and_expire(table: InstanceTable) -> None:
    emulator = Emulator(table)
    vpc = emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, 0.0)["Vpc"]["VpcId"]
    subnet = emulator.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": "10.0.0.0/24"}, 0.0)
    launch = {
        "MinCount": 2,
        "MaxCount": 2,
        "InstanceType": "m5.large",
        "SubnetId": subnet["Subnet"]["SubnetId"],
    }
    first, second = [
        i["InstanceId"] for i in emulator.call("RunInstances", launch, 0.0)["Instances"]
    ]
    token = emulator.imds_token(first, "60", 1.0).body
    assert emulator.imds_get(first, "/meta-data/instance-id", token, 2.0).body == first
    assert emulator.imds_get(second, "/meta-data/instance-id", token, 2.0).status == 401
    assert emulator.imds_get(first, "/meta-data/instance-id", None, 2.0).status == 401
    assert emulator.imds_get(first, "/meta-data/instance-id", token, 61.0).status == 401
    assert emulator.imds_token(first, "0", 1.0).status == 400
    assert emulator.imds_token(first, None, 1.0).status == 400


def test_knobs_round_trip_and_bad_knobs_are_named() -> None:
    document = {
        "rate_limits": False,
        "latency": {"*": 0.01},
        "attach_delay": 2,
        "imds_lag": 5,
        "buckets": {"CreateTags": {"size": 3, "refill": 1}},
        "seed": 3,
        "faults": {"AttachNetworkInterface": {"rate": 0.1, "code": "Unavailable", "after": False}},
        "detach_delay": 1,
        "random_addresses": True,
    }
    knobs = knobs_from_json(document)
    assert knobs_from_json(knobs_to_json(knobs)) == knobs
    for bad, words in [
        ({"imds_lag": -1}, "imds_lag must be a finite number >= 0"),
        ({"nonsense": 1}, "unknown field(s) nonsense"),
        ({"faults": {"*": {"rate": 2}}}, "rate must be between 0 and 1"),
        ({"faults": {"*": {"rate": 0.1, "code": "Boom"}}}, "code must be one of"),
    ]:
        with pytest.raises(EmulatorSetupError, match=words.replace("(", r"\(").replace(")", r"\)")):
            knobs_from_json(bad)


def test_many_requests_at_one_instant_take_what_one_by_one_would() -> None:
    one_by_one, at_once = RateLimiter(Knobs()), RateLimiter(Knobs())
    key = "AttachNetworkInterface"
    for now, count in [(0.0, 30), (0.0, 30), (1.5, 10), (1.5, 0), (9.0, 80), (100.0, 3)]:
        admitted = 0
        for _ in range(count):
            try:
                one_by_one.take(key, now)
                admitted += 1
            except Ec2Error:
                pass
        assert at_once.take_many(key, now, count) == admitted
        assert at_once.levels(now) == one_by_one.levels(now)
    assert RateLimiter(Knobs(rate_limits=False)).take_many(key, 0.0, 10_000) == 10_000
