"""A secondary ENI's host networking is set up from its own subnet (IMDS ``subnet-ipv4-cidr-block``
of its MAC, as upstream), not the node's: under custom networking a pod ENI sits in a pod subnet
of another VPC CIDR block, with another prefix length and gateway."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import cast

from vpccni.core.aws_types import CloudError, ImdsInterface, InstanceIdentity
from vpccni.daemon.datapath import Datapath, imds_subnets
from vpccni.ports import EniLink, HostChanges, PodNetwork, PodWiring

NODE = IPv4Network("10.0.1.0/24")
PODS = IPv4Network("100.64.0.0/18")
MAC = "02:00:00:00:00:02"
ENI_IP = IPv4Address("100.64.0.4")
NO_PODS = cast(PodNetwork, object())  # no pod is wired here


class Host:
    """A host network that records the ENI links it is given."""

    def __init__(self) -> None:
        self.set_up: list[EniLink] = []
        self.removed: list[EniLink] = []

    def setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        pass

    def setup_eni(self, eni: EniLink) -> bool:
        self.set_up.append(eni)
        return True

    def remove_eni(self, eni: EniLink, *, flush_table: bool) -> HostChanges:
        self.removed.append(eni)
        return HostChanges()

    def converge_enis(self, enis: Sequence[EniLink]) -> HostChanges:
        return HostChanges()

    def converge_pods(self, wired: Sequence[PodWiring]) -> list[str]:
        return []

    def host_veths(self) -> set[str]:
        return set()

    def pod_routes(self) -> dict[IPv4Address, str]:
        return {}


def datapath(subnets: dict[str, IPv4Network | None]) -> tuple[Datapath, Host, list[str]]:
    host, asked = Host(), []

    def subnet_of(mac: str) -> IPv4Network | None:
        asked.append(mac)
        return subnets.get(mac)

    path = Datapath(NO_PODS, host, NODE, subnet_of=subnet_of)
    return path, host, asked


def test_the_eni_link_carries_its_own_subnet_asked_once() -> None:
    path, host, asked = datapath({MAC: PODS})
    assert path.eni_ready(MAC, ENI_IP, 1)
    assert path.eni_ready(MAC.upper(), ENI_IP, 1)  # the same ENI, its MAC in capitals
    assert [link.subnet for link in host.set_up] == [PODS, PODS]
    assert asked == [MAC]  # an ENI never changes subnet
    assert path.eni_removed(MAC, ENI_IP, 1)
    assert host.removed == [EniLink(MAC, ENI_IP, PODS, 1)]  # its connected route is the pod /18


def test_an_eni_imds_does_not_list_yet_waits_and_is_asked_again() -> None:
    subnets: dict[str, IPv4Network | None] = {}
    path, host, asked = datapath(subnets)
    assert not path.eni_ready(MAC, ENI_IP, 1)
    assert host.set_up == []
    subnets[MAC] = PODS
    assert path.eni_ready(MAC, ENI_IP, 1)
    assert host.set_up == [EniLink(MAC, ENI_IP, PODS, 1)]
    assert asked == [MAC, MAC]


def test_the_primary_eni_and_a_datapath_without_a_lookup_use_the_nodes_subnet() -> None:
    path, host, asked = datapath({})
    assert path.eni_ready("02:00:00:00:00:01", IPv4Address("10.0.1.4"), 0)
    assert asked == []
    plain = Datapath(NO_PODS, host, NODE)
    assert plain.eni_ready(MAC, ENI_IP, 1)
    assert host.set_up[-1] == EniLink(MAC, ENI_IP, NODE, 1)


class Imds:
    def __init__(self, interfaces: list[ImdsInterface] | None) -> None:
        self.listed = interfaces

    def identity(self) -> InstanceIdentity:
        raise AssertionError("not asked")

    def interfaces(self) -> list[ImdsInterface]:
        if self.listed is None:
            raise CloudError("IMDS did not answer")
        return self.listed


def interface(mac: str, subnet: IPv4Network | None) -> ImdsInterface:
    return ImdsInterface(
        mac=mac,
        eni_id="eni-1",
        device_number=1,
        network_card=0,
        local_ipv4s=(ENI_IP,),
        ipv4_prefixes=(),
        subnet_id="subnet-1",
        subnet_cidr=subnet,
        vpc_id="vpc-1",
        vpc_cidrs=(IPv4Network("10.0.0.0/16"), IPv4Network("100.64.0.0/16")),
        security_group_ids=(),
    )


def test_imds_subnets_reads_the_interface_of_the_mac() -> None:
    assert imds_subnets(Imds([interface(MAC.upper(), PODS)]))(MAC) == PODS
    assert imds_subnets(Imds([interface("02:00:00:00:00:09", PODS)]))(MAC) is None
    assert imds_subnets(Imds([interface(MAC, None)]))(MAC) is None
    assert imds_subnets(Imds(None))(MAC) is None
