"""Fixtures for the emulator tests: a model, a running server on 127.0.0.1 and a boto3 client.

The server runs in-process on port 0 in a background thread and is stopped after each test that
uses it. boto3 is used unmodified, pointed at the server with ``endpoint_url``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from vpccni.core.limits import InstanceTable
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.realism import Knobs, knobs_from_json
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator

EmulatorFactory = Callable[..., EmulatorServer]


@pytest.fixture
def model(table: InstanceTable) -> Ec2Model:
    return Ec2Model(table)


@pytest.fixture
def start_server(table: InstanceTable) -> Iterator[EmulatorFactory]:
    """Start servers with given knobs (JSON form); all are stopped at the end of the test."""
    servers: list[EmulatorServer] = []

    def start(**knobs: Any) -> EmulatorServer:
        emulator = Emulator(table, knobs_from_json(knobs, Knobs()))
        server = EmulatorServer(emulator, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: EmulatorFactory) -> EmulatorServer:
    return start_server()


def client(server: EmulatorServer, **config: Any) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=server.endpoint,
        region_name="us-west-2",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(**config) if config else None,
    )


@pytest.fixture
def ec2(server: EmulatorServer) -> Any:
    return client(server)


def admin(server: EmulatorServer, path: str, payload: Any = None) -> Any:
    """Call the admin API (POST when there is a payload)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{server.endpoint}/admin/{path}", data=data, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of one plain HTTP request."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def network(ec2: Any, vpc_cidr: str = "10.0.0.0/16", subnet_cidr: str = "10.0.1.0/24") -> str:
    """Create a VPC and one subnet; returns the subnet id."""
    vpc = ec2.create_vpc(CidrBlock=vpc_cidr)["Vpc"]
    return str(ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock=subnet_cidr)["Subnet"]["SubnetId"])


def launch(ec2: Any, subnet_id: str, instance_type: str = "c5.large") -> dict[str, Any]:
    reservation = ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
    )
    instance: dict[str, Any] = reservation["Instances"][0]
    return instance
