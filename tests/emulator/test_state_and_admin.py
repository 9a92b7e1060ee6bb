"""State files survive a restart exactly; scenarios and the admin API drive a running emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import EmulatorFactory, admin, client, network
from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import EmulatorSetupError
from vpccni.emulator.realism import Knobs
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator
from vpccni.emulator.statefile import dump_state, read_state_file, write_state_file
from vpccni.emulator.world import apply_scenario, parse_scenario

SCENARIO = {
    "region": "us-west-2",
    "knobs": {"attach_delay": 3, "imds_lag": 1},
    "vpcs": [
        {
            "name": "v",
            "cidr": "10.9.0.0/16",
            "tags": {"team": "net"},
            "subnets": [{"name": "s", "cidr": "10.9.1.0/24", "availability_zone": "us-west-2b"}],
        }
    ],
    "instances": [{"name": "n", "type": "c5.large", "subnet": "s"}],
}


def busy_emulator(table: InstanceTable) -> Emulator:
    emulator = Emulator(table, Knobs(attach_delay=3))
    scenario = parse_scenario({k: v for k, v in SCENARIO.items() if k != "region"})
    ids = apply_scenario(emulator, scenario, 100.0)
    eni = emulator.call(
        "CreateNetworkInterface",
        {
            "SubnetId": ids["s"],
            "SecondaryPrivateIpAddressCount": 2,
            "TagSpecifications": [
                {"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v"}]}
            ],
        },
        101.0,
    )["NetworkInterface"]["NetworkInterfaceId"]
    emulator.call(
        "AssignPrivateIpAddresses", {"NetworkInterfaceId": eni, "Ipv4PrefixCount": 1}, 101.0
    )
    emulator.call(
        "AttachNetworkInterface",
        {"NetworkInterfaceId": eni, "InstanceId": ids["n"], "DeviceIndex": 1},
        102.0,
    )
    return emulator


def test_state_round_trips_through_a_file(table: InstanceTable, tmp_path: Path) -> None:
    emulator = busy_emulator(table)
    path = tmp_path / "state.json"
    write_state_file(path, dump_state(emulator, 42.0))
    loaded = read_state_file(path, table)
    assert loaded is not None
    again, offset = loaded
    assert offset == 42.0
    assert dump_state(again, 42.0) == dump_state(emulator, 42.0)
    assert again.model.invariant_violations() == []
    # The pending attach still completes after the restart, and ids continue where they were.
    eni = next(
        e
        for e in again.model.store.enis.values()
        if e.attachment and e.attachment.device_index == 1
    )
    assert eni.attachment is not None
    assert eni.attachment.status == "attaching"
    again.model.advance(106.0)
    assert again.model.store.eni(eni.eni_id).attachment.status == "attached"  # type: ignore[union-attr]
    created = again.call("CreateVpc", {"CidrBlock": "10.10.0.0/16"}, 107.0)["Vpc"]["VpcId"]
    assert created not in {v.vpc_id for v in emulator.model.store.vpcs.values()}


def test_missing_and_broken_state_files(table: InstanceTable, tmp_path: Path) -> None:
    assert read_state_file(tmp_path / "absent.json", table) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(EmulatorSetupError, match="not valid JSON"):
        read_state_file(broken, table)
    document = dump_state(busy_emulator(table), 0.0)
    document["network_interfaces"][0]["private_ips"] = document["network_interfaces"][1][
        "private_ips"
    ]
    broken.write_text(json.dumps(document))
    with pytest.raises(EmulatorSetupError, match="damaged or inconsistent"):
        read_state_file(broken, table)


def test_scenario_region_zone_and_tags(table: InstanceTable) -> None:
    scenario = parse_scenario(SCENARIO)
    emulator = Emulator(table, scenario.knobs_over(Knobs()), scenario.region or "us-west-2")
    ids = apply_scenario(emulator, scenario, 0.0)
    subnet = emulator.model.store.subnet(ids["s"])
    assert subnet.availability_zone == "us-west-2b"
    assert emulator.model.store.vpc(ids["v"]).tags == (("team", "net"),)
    assert emulator.knobs.attach_delay == 3
    assert emulator.model.store.instance(ids["n"]).tags == (("Name", "n"),)
    elsewhere = parse_scenario(
        {
            "region": "eu-west-1",
            "vpcs": [
                {
                    "name": "v",
                    "cidr": "10.0.0.0/16",
                    "subnets": [{"name": "s", "cidr": "10.0.0.0/24"}],
                }
            ],
        }
    )
    far = Emulator(table, region=elsewhere.region or "")
    far_ids = apply_scenario(far, elsewhere, 0.0)
    assert far.model.store.subnet(far_ids["s"]).availability_zone == "eu-west-1a"


def test_admin_api_drives_a_running_emulator(start_server: EmulatorFactory) -> None:
    server: EmulatorServer = start_server()
    assert admin(server, "health") == {"ok": True}
    ids = admin(server, "scenario", {k: v for k, v in SCENARIO.items() if k != "region"})["ids"]
    assert set(ids) == {"v", "s", "n"}
    assert admin(server, "knobs")["attach_delay"] == 3
    assert (
        admin(server, "knobs", {"rate_limits": False, "latency": {"*": 0.001}})["rate_limits"]
        is False
    )
    assert admin(server, "endpoints")["imds"] == {ids["n"]: server.imds_endpoint(ids["n"])}
    ec2: Any = client(server)
    network(ec2, "10.20.0.0/16", "10.20.0.0/24")
    state = admin(server, "state")
    assert state["stats"]["requests"] == 2
    assert len(state["subnets"]) == 2
    before = admin(server, "clock")["now"]
    assert admin(server, "clock/advance", {"seconds": 3600})["now"] >= before + 3600
    assert admin(server, "invariants") == {"violations": []}
    assert admin(server, "reset", {}) == {"ok": True}
    assert ec2.describe_vpcs()["Vpcs"] == []


def test_admin_errors_are_json(start_server: EmulatorFactory) -> None:
    import urllib.error

    server = start_server()
    for path, payload, status in [
        ("clock/advance", {"seconds": "soon"}, 400),
        ("knobs", {"imds_lag": -1}, 400),
        ("nowhere", None, 404),
    ]:
        with pytest.raises(urllib.error.HTTPError) as error:
            admin(server, path, payload)
        assert error.value.code == status
        assert "error" in json.loads(error.value.read())
