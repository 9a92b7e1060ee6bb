"""The node's rules follow the VPC's CIDR blocks (upstream re-reads them every 30 s): read at the
first tick, again once 30 s have passed on the daemon's clock, applied only when they changed;
an IMDS failure or an empty answer changes nothing and is retried at the next read; a failed
apply is counted and retried."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import cast

import pytest

from tests.unit.test_datapath_eni_subnet import NO_PODS, NODE, Host
from vpccni.core.aws_types import CloudError, ImdsInterface, InstanceIdentity
from vpccni.daemon.datapath import Datapath, imds_node
from vpccni.errors import VpccniError
from vpccni.ports import EniLink, Imds, NullMetrics

PRIMARY = EniLink("02:00:00:00:00:01", IPv4Address("10.0.1.10"), NODE, 0)
FIRST = (IPv4Network("10.0.0.0/16"),)
BOTH = (*FIRST, IPv4Network("100.64.0.0/16"))


class Recording(Host):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[IPv4Network, ...]] = []
        self.refuse = False

    def setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        if self.refuse:
            raise VpccniError("iptables-restore failed: test")
        assert primary == PRIMARY
        self.applied.append(tuple(vpc_cidrs))


class Errors(NullMetrics):
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, fn: str) -> None:
        self.errors.append(fn)


def following(answers: list[tuple[IPv4Network, ...] | Exception]) -> tuple[Datapath, Recording]:
    host = Recording()

    def node_link() -> tuple[EniLink, tuple[IPv4Network, ...]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return PRIMARY, answer

    return Datapath(NO_PODS, host, NODE, metrics=Errors(), node_link=node_link), host


def test_read_at_once_then_every_30_seconds_and_applied_only_when_changed() -> None:
    path, host = following([FIRST, FIRST, BOTH])
    assert path.follow_vpc_cidrs(1000.0)  # the first tick
    assert not path.follow_vpc_cidrs(1029.9)  # not read: 30 s have not passed
    assert not path.follow_vpc_cidrs(1030.0)  # read, unchanged
    assert path.follow_vpc_cidrs(1060.0)  # read, a block was associated
    assert host.applied == [FIRST, BOTH]


def test_a_clock_stepped_back_reads_at_once() -> None:
    path, host = following([FIRST, BOTH])
    path.follow_vpc_cidrs(1000.0)
    assert path.follow_vpc_cidrs(900.0)
    assert host.applied == [FIRST, BOTH]


def test_imds_failure_or_an_empty_answer_changes_nothing_and_is_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, host = following([FIRST, CloudError("IMDS timed out"), (), BOTH])
    path.follow_vpc_cidrs(0.0)
    assert not path.follow_vpc_cidrs(30.0)
    assert not path.follow_vpc_cidrs(60.0)  # never SNAT the VPC because IMDS said nothing
    assert path.follow_vpc_cidrs(90.0)
    assert host.applied == [FIRST, BOTH]
    assert "reading the VPC's CIDR blocks from IMDS failed: IMDS timed out" in caplog.text
    assert "IMDS lists no CIDR block for the VPC" in caplog.text


def test_a_failed_apply_is_counted_and_retried_at_the_next_read() -> None:
    path, host = following([FIRST, BOTH, BOTH])
    path.follow_vpc_cidrs(0.0)
    host.refuse = True
    assert not path.follow_vpc_cidrs(30.0)
    assert cast(Errors, path.metrics).errors == ["datapathVpcCidrs"]
    host.refuse = False
    assert path.follow_vpc_cidrs(60.0)
    assert host.applied == [FIRST, BOTH]


class Metadata:
    def __init__(self) -> None:
        self.identities = 0

    def identity(self) -> InstanceIdentity:
        self.identities += 1
        return InstanceIdentity(
            "i-1", "c5.large", "us-west-2", "us-west-2a", PRIMARY.mac, PRIMARY.primary_ip
        )

    def interfaces(self) -> list[ImdsInterface]:
        return [
            ImdsInterface(
                PRIMARY.mac,
                "eni-1",
                0,
                0,
                (PRIMARY.primary_ip,),
                (),
                "subnet-1",
                NODE,
                "vpc-1",
                BOTH,
                (),
            )
        ]


def test_imds_node_reads_the_primary_interface_and_the_vpc_blocks() -> None:
    imds = Metadata()
    node_link = imds_node(cast(Imds, imds))
    assert node_link() == (PRIMARY, BOTH)
    assert node_link() == (PRIMARY, BOTH)
    assert imds.identities == 1  # the primary's MAC and address never change
