"""The wire layer agrees with botocore both ways: what boto3 sends decodes to the parameters it
was called with, and what the emulator sends parses back to the result it meant.

botocore's own EC2 serializer and parser are the other side here, so these are contract tests,
not mirror-image tests of our code. Hypothesis draws parameters and results from the service
model's shapes.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import botocore.parsers
import botocore.serialize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpccni.emulator import wire
from vpccni.emulator.service import HANDLERS

TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_./: *", min_size=1, max_size=12)
INPUT_OPERATIONS = [
    "CreateNetworkInterface",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "DescribeNetworkInterfaces",
    "ModifyNetworkInterfaceAttribute",
    "AttachNetworkInterface",
    "CreateTags",
    "DeleteTags",
    "DescribeSubnets",
    "DescribeInstanceTypes",
]
OUTPUT_OPERATIONS = [
    "DescribeNetworkInterfaces",
    "AssignPrivateIpAddresses",
    "AttachNetworkInterface",
    "DescribeSubnets",
    "CreateVpc",
    "DescribeInstanceTypes",
]


SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.integers(min_value=-5, max_value=10**6),
    "long": st.integers(min_value=-5, max_value=10**6),
    "boolean": st.booleans(),
    "timestamp": st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=datetime.UTC)),
    "float": st.floats(min_value=0, max_value=1e6, allow_nan=False),
    "double": st.floats(min_value=0, max_value=1e6, allow_nan=False),
}


def shape_strategy(shape: Any, depth: int, *, output: bool) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "structure":
        if depth == 0:
            return st.just({})
        members = {
            name: shape_strategy(member, depth - 1, output=output)
            for name, member in shape.members.items()
            if output or member.type_name not in ("timestamp", "blob", "float", "double")
        }
        found = st.fixed_dictionaries({}, optional=members)
        return found if output else found.filter(bool)
    if kind == "list":
        size = 0 if output else 1
        return st.lists(
            shape_strategy(shape.member, depth, output=output), min_size=size, max_size=3
        )
    return SCALARS.get(kind, TEXT)


def operation_with(kind: str) -> st.SearchStrategy[tuple[str, Any]]:
    names = INPUT_OPERATIONS if kind == "input" else OUTPUT_OPERATIONS

    def for_name(name: str) -> st.SearchStrategy[tuple[str, Any]]:
        model = wire.operation(name)
        shape = model.input_shape if kind == "input" else model.output_shape
        return st.tuples(st.just(name), shape_strategy(shape, 4, output=kind == "output"))

    return st.sampled_from(names).flatmap(for_name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=operation_with("input"))
def test_what_botocore_serializes_decodes_to_the_same_parameters(case: tuple[str, Any]) -> None:
    name, params = case
    serializer = botocore.serialize.create_serializer("ec2", include_validation=False)
    request = serializer.serialize_to_request(params, wire.operation(name))
    # Through a real form encoding, as the HTTP front sees it.
    fields = parse_qs(urlencode(request["body"]), keep_blank_values=True)
    form = {key: values[-1] for key, values in fields.items()}
    assert wire.decode_request(name, form) == params


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=operation_with("output"))
def test_what_we_encode_botocore_parses_back(case: tuple[str, Any]) -> None:
    name, result = case
    body = wire.encode_response(name, result, "req-1")
    parsed = botocore.parsers.create_parser("ec2").parse(
        {"body": body, "headers": {}, "status_code": 200}, wire.operation(name).output_shape
    )
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    assert parsed == result


def test_errors_parse_as_ec2_errors() -> None:
    body = wire.encode_error("AttachmentLimitExceeded", "Interface count 4 exceeds", "req-2")
    parsed = botocore.parsers.create_parser("ec2").parse(
        {"body": body, "headers": {}, "status_code": 400}, None
    )
    assert parsed["Error"] == {
        "Code": "AttachmentLimitExceeded",
        "Message": "Interface count 4 exceeds",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req-2"


def test_every_handler_is_a_real_ec2_operation() -> None:
    model = wire.service_model()
    assert set(HANDLERS) <= set(model.operation_names)


def test_views_fit_the_output_shapes(table: Any) -> None:
    from vpccni.emulator.service import Emulator

    emulator = Emulator(table)

    def call(action: str, params: dict[str, Any]) -> list[str]:
        dropped: list[str] = []
        wire.encode_response(action, emulator.call(action, params, 0.0), "r", dropped)
        return sorted({name.split(".", 1)[1] for name in dropped})

    vpc = emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, 0.0)["Vpc"]["VpcId"]
    subnet = emulator.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": "10.0.0.0/24"}, 0.0)
    subnet_id = subnet["Subnet"]["SubnetId"]
    launch = {"MinCount": 1, "MaxCount": 1, "InstanceType": "m5.large", "SubnetId": subnet_id}
    create = {"SubnetId": subnet_id, "Ipv4PrefixCount": 1, "SecondaryPrivateIpAddressCount": 0}
    for action, params in [
        ("DescribeVpcs", {}),
        ("DescribeSubnets", {}),
        ("CreateNetworkInterface", create),
        ("DescribeNetworkInterfaces", {}),
        ("DescribeInstanceTypes", {"InstanceTypes": ["p4d.24xlarge", "c5.metal"]}),
        ("DescribeSecurityGroups", {}),
    ]:
        assert call(action, params) == [], action
    # An instance's ENIs have a smaller shape than NetworkInterface; exactly these stay out.
    per_instance = ["AvailabilityZone", "RequesterManaged", "TagSet"]
    expected = sorted(
        [f"Instances.NetworkInterfaces.{k}" for k in per_instance]
        + [f"Instances.NetworkInterfaces.Attachment.{k}" for k in ("InstanceId", "InstanceOwnerId")]
    )
    assert call("RunInstances", launch) == expected
    assert call("DescribeInstances", {}) == sorted(f"Reservations.{k}" for k in expected)
