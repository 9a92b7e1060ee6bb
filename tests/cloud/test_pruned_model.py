"""The daemon's pruned EC2 model (src/vpccni/data/botocore, ``tools/prune_ec2_model.py``): it is
what the installed botocore gives, it holds every operation the daemon calls, the daemon's client
loads it (and not boto3), and the wheel ships it."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tools import prune_ec2_model

from vpccni.adapters.ec2_boto3 import API_VERSION, PRUNED_MODELS, Ec2Endpoint, make_ec2_client
from vpccni.core.ec2_actions import EC2_ACTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_model_is_what_the_installed_botocore_gives() -> None:
    assert prune_ec2_model.DIRECTORY == PRUNED_MODELS
    assert prune_ec2_model.API_VERSION == API_VERSION
    drift = prune_ec2_model.differences()
    assert drift == [], (
        f"src/vpccni/data/botocore differs from botocore's model in {drift}: run "
        "'python tools/prune_ec2_model.py' and commit the result"
    )
    assert prune_ec2_model.main(["--check"]) == 0


def test_every_operation_the_daemon_calls_is_in_it() -> None:
    assert prune_ec2_model.coverage_gaps() == []
    used = prune_ec2_model.called_operations()
    assert "describe_network_interfaces" in used["methods"]  # the scan finds the adapter's calls
    assert used["paginators"] == {"describe_network_interfaces", "describe_subnets"}


def test_a_call_outside_the_model_is_reported(tmp_path: Path) -> None:
    caller = tmp_path / "caller.py"
    caller.write_text(
        "def f(self, client):\n"
        "    self._client.run_instances(MinCount=1)\n"
        "    client.get_paginator('describe_vpcs')\n"
    )
    gaps = prune_ec2_model.coverage_gaps(callers=[caller])
    assert gaps == ["client method run_instances", "paginator describe_vpcs"]


def test_drift_is_detected(tmp_path: Path) -> None:
    copy = tmp_path / "botocore"
    shutil.copytree(PRUNED_MODELS, copy)
    assert prune_ec2_model.differences(copy) == []
    service = copy / "ec2" / API_VERSION / "service-2.json"
    model = json.loads(service.read_text())
    del model["operations"]["CreateTags"]
    service.write_text(json.dumps(model))
    (copy / "stale.json").write_text("{}")
    assert prune_ec2_model.differences(copy) == ["stale.json", f"ec2/{API_VERSION}/service-2.json"]
    assert prune_ec2_model.coverage_gaps(copy) == [
        "operation CreateTags",
        "client method create_tags",
    ]


def test_the_model_records_its_botocore_version_and_keeps_no_documentation() -> None:
    import botocore

    sidecar = json.loads((PRUNED_MODELS / prune_ec2_model.SIDECAR).read_text())
    assert sidecar["botocore"] == botocore.__version__ == prune_ec2_model.recorded_version()
    assert sidecar["operations"] == sorted(EC2_ACTIONS)
    text = (PRUNED_MODELS / "ec2" / API_VERSION / "service-2.json").read_text()
    assert '"documentation"' not in text
    assert sidecar["shapes"] < sidecar["source_shapes"] / 10


def test_the_daemons_client_loads_the_pruned_model_without_boto3() -> None:
    client = make_ec2_client(
        Ec2Endpoint("us-west-2"), aws_access_key_id="x", aws_secret_access_key="y"
    )
    assert sorted(client.meta.service_model.operation_names) == sorted(EC2_ACTIONS)
    assert client.can_paginate("describe_network_interfaces")
    # The whole CLI (the daemon's entry point) and a client, in a fresh interpreter.
    script = (
        "import sys, vpccni.cli.main\n"
        "from vpccni.adapters.ec2_boto3 import Ec2Endpoint, make_ec2_client\n"
        "make_ec2_client(Ec2Endpoint('us-west-2'), aws_access_key_id='x', "
        "aws_secret_access_key='y')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 's3transfer')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_wheel_ships_the_model() -> None:
    """setuptools expands package-data with ``glob(recursive=True)`` from the package's
    directory; every file of the model must be matched."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["vpccni"]
    package = ROOT / "src" / "vpccni"
    shipped = {
        Path(found).resolve()
        for pattern in patterns
        for found in glob.glob(str(package / pattern), recursive=True)
    }
    files = {p.resolve() for p in PRUNED_MODELS.rglob("*") if p.is_file()}
    assert files
    assert files <= shipped, sorted(str(p) for p in files - shipped)
