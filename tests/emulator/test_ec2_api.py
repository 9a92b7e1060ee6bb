"""EC2 through HTTP with unmodified boto3: limits, exhaustion, prefixes, throttling, paging.

Each test starts its own emulator on 127.0.0.1 (port 0) and talks to it only through boto3 and
the admin API, as the daemon and the contract suite will.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import EmulatorFactory, admin, client, launch, network


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_c5_large_refuses_a_fourth_eni_and_an_eleventh_address(ec2: Any) -> None:
    subnet = network(ec2)
    instance = launch(ec2, subnet, "c5.large")
    enis = [
        ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        for _ in range(3)
    ]
    for index, eni in enumerate(enis[:2], start=1):
        ec2.attach_network_interface(
            NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=index
        )
    with pytest.raises(ClientError) as error:
        ec2.attach_network_interface(
            NetworkInterfaceId=enis[2], InstanceId=instance["InstanceId"], DeviceIndex=3
        )
    assert error_code(error) == "AttachmentLimitExceeded"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    ec2.assign_private_ip_addresses(NetworkInterfaceId=enis[0], SecondaryPrivateIpAddressCount=9)
    with pytest.raises(ClientError) as error:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=enis[0], SecondaryPrivateIpAddressCount=1
        )
    assert error_code(error) == "PrivateIpAddressLimitExceeded"
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[enis[0]])
    assert len(described["NetworkInterfaces"][0]["PrivateIpAddresses"]) == 10


def test_slash_28_runs_out_after_eleven_addresses(ec2: Any) -> None:
    subnet = network(ec2, subnet_cidr="10.0.7.0/28")
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"] == 11
    launch(ec2, subnet)  # the primary ENI takes 1
    ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=4)  # 5
    ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=4)  # 5
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"] == 0
    with pytest.raises(ClientError) as error:
        ec2.create_network_interface(SubnetId=subnet)
    assert error_code(error) == "InsufficientFreeAddressesInSubnet"
    used = {
        ip["PrivateIpAddress"]
        for eni in ec2.describe_network_interfaces()["NetworkInterfaces"]
        for ip in eni["PrivateIpAddresses"]
    }
    assert len(used) == 11
    assert not used & {"10.0.7.0", "10.0.7.1", "10.0.7.2", "10.0.7.3", "10.0.7.15"}


def test_prefixes_are_aligned_disjoint_and_fragmentation_refused(ec2: Any) -> None:
    subnet = network(ec2, subnet_cidr="10.0.8.0/25")
    instance = launch(ec2, subnet, "m5.large")
    eni = ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=2)
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    assigned = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=3)
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    prefixes = [p["Ipv4Prefix"] for p in described["NetworkInterfaces"][0]["Ipv4Prefixes"]]
    assert prefixes == [p["Ipv4Prefix"] for p in assigned["AssignedIpv4Prefixes"]]
    networks = [IPv4Network(p) for p in prefixes]  # strict: raises if misaligned
    assert all(n.prefixlen == 28 for n in networks)
    assert all(not a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
    singles = [
        ip["PrivateIpAddress"]
        for e in ec2.describe_network_interfaces()["NetworkInterfaces"]
        for ip in e["PrivateIpAddresses"]
    ]
    assert not any(IPv4Network(f"{a}/32").subnet_of(n) for a in singles for n in networks)
    # The /25 had 6 prefix-capable blocks; 3 are taken; pin one address in each of the rest.
    free_blocks = list(IPv4Network("10.0.8.0/25").subnets(new_prefix=28))[1:-1]
    pins = [
        str(b[5])
        for b in free_blocks
        if b not in networks and not any(IPv4Network(f"{a}/32").subnet_of(b) for a in singles)
    ]
    ec2.create_network_interface(
        SubnetId=subnet,
        PrivateIpAddresses=[
            {"PrivateIpAddress": pin, "Primary": index == 0} for index, pin in enumerate(pins)
        ],
    )
    with pytest.raises(ClientError) as error:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    assert error_code(error) == "InsufficientCidrBlocks"
    left = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"]
    assert left > 0


def test_unassigning_a_prefix_frees_its_sixteen_addresses(ec2: Any) -> None:
    subnet = network(ec2)
    eni = ec2.create_network_interface(SubnetId=subnet, Ipv4PrefixCount=2)["NetworkInterface"]
    before = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"]
    ec2.unassign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"],
        Ipv4Prefixes=[eni["Ipv4Prefixes"][0]["Ipv4Prefix"]],
    )
    after = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"]
    assert after == before + 16


def test_throttling_is_a_503_that_botocore_retries(start_server: EmulatorFactory) -> None:
    server = start_server(buckets={"DescribeVpcs": {"size": 1, "refill": 2}})
    retrying = client(server, retries={"mode": "standard", "max_attempts": 10})
    impatient = client(server, retries={"mode": "standard", "total_max_attempts": 1})
    retrying.describe_vpcs()  # drains the bucket of one
    answer = retrying.describe_vpcs()  # throttled until a token comes back (0.5 s)
    assert answer["ResponseMetadata"]["RetryAttempts"] >= 1
    with pytest.raises(ClientError) as error:
        impatient.describe_vpcs()
    assert error_code(error) == "RequestLimitExceeded"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert admin(server, "state")["stats"]["throttled.DescribeVpcs"] >= 2


def test_paginators_and_filters(ec2: Any) -> None:
    subnet = network(ec2)
    other = ec2.create_subnet(
        VpcId=ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"],
        CidrBlock="10.0.2.0/24",
    )["Subnet"]["SubnetId"]
    instance = launch(ec2, subnet)
    tag = {"Key": "node.k8s.amazonaws.com/instance_id", "Value": instance["InstanceId"]}
    for number in range(12):
        ec2.create_network_interface(
            SubnetId=subnet if number % 2 else other,
            Description=f"aws-K8S-{number}",
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": [tag]}],
        )
    pages = list(
        ec2.get_paginator("describe_network_interfaces").paginate(PaginationConfig={"PageSize": 5})
    )
    ids = [e["NetworkInterfaceId"] for page in pages for e in page["NetworkInterfaces"]]
    assert len(pages) == 3
    assert len(ids) == len(set(ids)) == 13

    def count(*filters: dict[str, Any]) -> int:
        found = ec2.describe_network_interfaces(Filters=list(filters))["NetworkInterfaces"]
        return len(found)

    assert count({"Name": "subnet-id", "Values": [other]}) == 6
    assert count({"Name": "status", "Values": ["available"]}) == 12
    assert count({"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}) == 1
    assert count({"Name": "attachment.status", "Values": ["attached"]}) == 1
    assert count({"Name": "description", "Values": ["aws-K8S-1?"]}) == 2
    assert count({"Name": "tag-key", "Values": ["node.k8s.amazonaws.com/*"]}) == 12
    assert count({"Name": f"tag:{tag['Key']}", "Values": [instance["InstanceId"]]}) == 12
    assert (
        count(
            {"Name": "tag-key", "Values": [tag["Key"]]},
            {"Name": "status", "Values": ["available"]},
            {"Name": "subnet-id", "Values": [subnet]},
        )
        == 6
    )
    with pytest.raises(ClientError) as error:
        count({"Name": "no-such-filter", "Values": ["x"]})
    assert error_code(error) == "InvalidParameterValue"
    with pytest.raises(ClientError) as error:
        ec2.describe_network_interfaces(NetworkInterfaceIds=["eni-12345678901234567"])
    assert error_code(error) == "InvalidNetworkInterfaceID.NotFound"


def test_deleting_an_attached_eni_fails_in_use(ec2: Any) -> None:
    subnet = network(ec2)
    instance = launch(ec2, subnet)
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=1
    )["AttachmentId"]
    with pytest.raises(ClientError) as error:
        ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert error_code(error) == "InvalidNetworkInterface.InUse"
    ec2.detach_network_interface(AttachmentId=attachment)
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    with pytest.raises(ClientError) as error:
        ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert error_code(error) == "InvalidNetworkInterfaceID.NotFound"


def test_attach_shows_attaching_until_the_clock_is_advanced(start_server: EmulatorFactory) -> None:
    server = start_server(attach_delay=30)
    ec2 = client(server)
    subnet = network(ec2)
    instance = launch(ec2, subnet)
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=1
    )

    def status() -> str:
        found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
        return str(found[0]["Attachment"]["Status"])

    assert status() == "attaching"
    admin(server, "clock/advance", {"seconds": 31})
    assert status() == "attached"


def test_lifecycle_calls_used_by_ipamd(ec2: Any) -> None:
    subnet = network(ec2)
    instance = launch(ec2, subnet)
    eni = ec2.create_network_interface(
        SubnetId=subnet, Description="aws-K8S-i", Groups=[instance["SecurityGroups"][0]["GroupId"]]
    )["NetworkInterface"]["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=1
    )["AttachmentId"]
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni,
        Attachment={"AttachmentId": attachment, "DeleteOnTermination": True},
    )
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": False})
    ec2.create_tags(Resources=[eni], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ec2.delete_tags(Resources=[eni], Tags=[{"Key": "b"}])
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert found["Attachment"]["DeleteOnTermination"] is True
    assert found["SourceDestCheck"] is False
    assert found["TagSet"] == [{"Key": "a", "Value": "1"}]
    attribute = ec2.describe_network_interface_attribute(
        NetworkInterfaceId=eni, Attribute="attachment"
    )
    assert attribute["Attachment"]["AttachmentId"] == attachment
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    interfaces = described["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    assert sorted(i["Attachment"]["DeviceIndex"] for i in interfaces) == [0, 1]
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert (
        ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": [eni]}]
        )["NetworkInterfaces"]
        == []
    )
    types = ec2.describe_instance_types(InstanceTypes=["c5.large", "t2.medium"])["InstanceTypes"]
    info = {t["InstanceType"]: t for t in types}
    assert info["c5.large"]["NetworkInfo"]["MaximumNetworkInterfaces"] == 3
    assert info["c5.large"]["NetworkInfo"]["Ipv4AddressesPerInterface"] == 10
    assert info["c5.large"]["Hypervisor"] == "nitro"
    assert info["t2.medium"]["Hypervisor"] == "xen"


def test_injected_faults_are_seeded_and_retried(start_server: EmulatorFactory) -> None:
    server = start_server(faults={"DescribeVpcs": {"rate": 0.5, "code": "Unavailable"}}, seed=7)
    ec2 = client(server, retries={"mode": "standard", "max_attempts": 10})
    answers = [ec2.describe_vpcs()["ResponseMetadata"]["RetryAttempts"] for _ in range(6)]
    assert sum(answers) == admin(server, "state")["stats"]["faults"] > 0
