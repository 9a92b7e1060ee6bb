"""The HTTP front under hostile or broken input: every answer AWS-shaped, no thread held forever.

Raw sockets send what boto3 never would (bad Content-Length, truncated bodies, odd list indices,
idle connections past the cap); boto3 is used for the region check. Each case asserts the status,
EC2's error code and that the emulator still serves the next request.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import client, http, launch, network
from vpccni.core.limits import InstanceTable
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator


def exchange(server: EmulatorServer, raw: bytes, *, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of one raw HTTP request; the body is read up to Content-Length."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body.decode()


def post(form: str, *, length: str | None = None) -> bytes:
    body = form.encode()
    header = length if length is not None else str(len(body))
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {header}\r\n\r\n".encode()
        + body
    )


def error_code(body: str) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", body)
    assert match, body
    return match.group(1)


def still_serves(server: EmulatorServer) -> None:
    status, body = exchange(server, post("Action=DescribeVpcs&Version=2016-11-15"))
    assert status == 200, body


@pytest.mark.parametrize(
    "form",
    [
        "Action=DescribeNetworkInterfaces&Filter.%C2%B2.Name=x",  # a superscript two
        "Action=DescribeNetworkInterfaces&Filter." + "7" * 5000 + ".Name=x",
        "Action=DescribeNetworkInterfaces&Filter.0.Name=x",
        "Action=DescribeNetworkInterfaces&NetworkInterfaceId.x=eni-1",
    ],
    ids=["superscript-index", "5000-digit-index", "zero-index", "letter-index"],
)
def test_bad_list_indices_are_ec2_client_errors(server: EmulatorServer, form: str) -> None:
    status, body = exchange(server, post(form + "&Version=2016-11-15"))
    assert status == 400, body
    assert error_code(body) == "InvalidParameterValue"
    assert "index" in body
    still_serves(server)


@pytest.mark.parametrize(
    ("length", "code"),
    [
        ("abc", "MalformedQueryString"),
        ("-5", "MalformedQueryString"),
        ("9437184", "InvalidRequest"),
    ],
)
def test_bad_or_huge_content_length_is_a_400(
    server: EmulatorServer, length: str, code: str
) -> None:
    status, body = exchange(server, post("Action=DescribeVpcs", length=length))
    assert status == 400, body
    assert error_code(body) == code
    assert "Content-Length" in body
    still_serves(server)


def test_bad_content_length_on_admin_and_imds_paths(server: EmulatorServer) -> None:
    raw = b"POST /admin/knobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    status, body = exchange(server, raw)
    assert status == 400
    assert "Content-Length" in body
    raw = b"PUT /imds/i-1/latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    assert exchange(server, raw)[0] == 400


def test_a_body_shorter_than_its_content_length_times_out(table: InstanceTable) -> None:
    server = EmulatorServer(Emulator(table), read_timeout=0.5)
    server.start()
    try:
        started = time.monotonic()
        status, body = exchange(server, post("Action=DescribeVpcs", length="100"))
        assert status == 400, body
        assert error_code(body) == "RequestTimeout"
        assert time.monotonic() - started < 5
        still_serves(server)
    finally:
        server.stop()


def test_concurrent_connections_are_bounded(table: InstanceTable) -> None:
    server = EmulatorServer(Emulator(table), max_connections=3)
    server.start()
    host, port = server.server_address[:2]
    idle = [socket.create_connection((str(host), int(port)), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.2)
        with socket.create_connection((str(host), int(port)), timeout=5) as extra:
            extra.sendall(post("Action=DescribeVpcs"))
            status, body = read_response(extra)
        assert status == 503
        assert error_code(body) == "ServiceUnavailable"
        idle.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the freed slot is released when its thread sees the close
            status, _ = exchange(server, post("Action=DescribeVpcs&Version=2016-11-15"))
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_imds_refuses_a_token_put_carrying_x_forwarded_for(server: EmulatorServer) -> None:
    ec2 = client(server)
    instance = launch(ec2, network(ec2))
    url = server.imds_endpoint(instance["InstanceId"]) + "latest/api/token"
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    status, _ = http(url, "PUT", {**ttl, "X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert http(url, "PUT", ttl)[0] == 200


def test_a_region_the_emulator_does_not_serve_is_refused(server: EmulatorServer) -> None:
    ec2 = client(server)
    network(ec2)
    other: Any = boto3.client(
        "ec2",
        endpoint_url=server.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as error:
        other.describe_subnets()
    assert error.value.response["Error"]["Code"] == "AuthFailure"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    message = error.value.response["Error"]["Message"]
    assert "eu-west-1" in message
    assert "us-west-2" in message
    assert len(ec2.describe_subnets()["Subnets"]) == 1


def test_query_signed_for_another_region_is_refused_too(server: EmulatorServer) -> None:
    credential = quote("x/20240101/ap-south-1/ec2/aws4_request", safe="")
    request = f"GET /?Action=DescribeVpcs&X-Amz-Credential={credential} HTTP/1.1\r\nHost: x\r\n\r\n"
    status, body = exchange(server, request.encode())
    assert status == 401
    assert error_code(body) == "AuthFailure"


@pytest.mark.parametrize(
    "form",
    [
        "Action=CreateTags&ResourceId.1=eni-00000000000000001&Tag.1.Colour=red",
        "Action=CreateNetworkInterface&SubnetId=subnet-00000000000000001&Ipv4Prefix.1.Size=28",
    ],
    ids=["tag-without-known-members", "prefix-without-known-members"],
)
def test_a_list_item_with_no_known_member_is_refused(server: EmulatorServer, form: str) -> None:
    status, body = exchange(server, post(form + "&Version=2016-11-15"))
    assert status == 400, body
    assert error_code(body) == "InvalidParameterValue"
    still_serves(server)
