"""Backends for the cloud adapter tests: ``vpccni emulator`` and moto, both over real HTTP.

The adapter under test (``Backend.ec2``) runs on the daemon's own client (``make_ec2_client``:
botocore with the pruned EC2 model); set-up calls use a boto3 client with botocore's whole model.

The contract tests run once per backend, for the behaviours where moto matches EC2 (shapes,
filters, tags, attach/detach); EC2 limits, prefixes, exhaustion and IMDS run on the emulator
only, because moto does not implement them (``reference/environment.md`` section 6).
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests.cloud.recording_ec2 import recording_ec2  # noqa: F401 - a fixture for this directory
from vpccni.adapters.ec2_boto3 import Boto3Ec2, Ec2Endpoint, make_ec2_client
from vpccni.core.limits import InstanceTable
from vpccni.emulator.realism import Knobs, knobs_from_json
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
REGION = "us-west-2"


@dataclass
class Backend:
    """An EC2 endpoint with a raw boto3 client (for set-up) and our adapter on the daemon's
    client (the pruned model)."""

    name: str
    endpoint: str
    client: Any
    ec2: Boto3Ec2
    server: EmulatorServer | None = None

    def network(self, cidr: str = "10.0.1.0/24") -> tuple[str, str]:
        """A VPC and one subnet; returns (vpc id, subnet id)."""
        vpc = self.client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.client.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        return vpc, subnet

    def launch(self, subnet_id: str, instance_type: str = "c5.large") -> str:
        reply = self.client.run_instances(
            ImageId="ami-12345678",
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet_id,
        )
        return str(reply["Instances"][0]["InstanceId"])


def boto3_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(**config) if config else None,
        **CREDENTIALS,
    )


def daemon_adapter(endpoint: str) -> Boto3Ec2:
    """The EC2 port as the daemon makes it: botocore over the pruned model."""
    return Boto3Ec2(make_ec2_client(Ec2Endpoint(REGION, endpoint), **CREDENTIALS))


def backend_for(server: EmulatorServer, **config: Any) -> Backend:
    """A backend over a running emulator; ``config`` goes to the set-up client's Config."""
    client = boto3_client(server.endpoint, **config)
    return Backend("emulator", server.endpoint, client, daemon_adapter(server.endpoint), server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def start_emulator(table: InstanceTable, **knobs: Any) -> EmulatorServer:
    server = EmulatorServer(Emulator(table, knobs_from_json(knobs, Knobs())), "127.0.0.1", 0)
    server.start()
    return server


@pytest.fixture
def emulator(table: InstanceTable) -> Iterator[Backend]:
    server = start_emulator(table)
    yield backend_for(server)
    server.stop()


@pytest.fixture(params=["emulator", "moto"])
def backend(request: pytest.FixtureRequest, table: InstanceTable) -> Iterator[Backend]:
    if request.param == "moto":
        endpoint = request.getfixturevalue("moto_endpoint")
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()
        client = boto3_client(endpoint)
        yield Backend("moto", endpoint, client, daemon_adapter(endpoint))
        return
    server = start_emulator(table)
    yield backend_for(server)
    server.stop()


class VirtualClock:
    """Virtual time: sleeping only moves the clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.current = now

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += seconds


def advance(backend: Backend, seconds: float) -> None:
    assert backend.server is not None
    request = urllib.request.Request(
        f"{backend.endpoint}/admin/clock/advance",
        data=json.dumps({"seconds": seconds}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
