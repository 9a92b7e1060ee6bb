"""Child process for the leaked-ENI test: allocate an ENI, but hang between create and attach.

It runs the real lifecycle over the real boto3 adapter; only ``attach_eni`` is wrapped to
announce the created ENI and wait to be killed, the moment a crash would leave an orphan.
"""

from __future__ import annotations

import json
import sys
import time

import boto3

from vpccni.adapters.ec2_boto3 import Boto3Ec2
from vpccni.adapters.emulator_time import RemoteEmulatorClock
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext


class HangBeforeAttach(Boto3Ec2):
    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str:
        print("created", eni_id, flush=True)
        time.sleep(600)
        raise SystemExit("not killed")


def main() -> None:
    endpoint, context = sys.argv[1], json.loads(sys.argv[2])
    context["security_groups"] = tuple(context["security_groups"])
    client = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    cycle = EniLifecycle(
        HangBeforeAttach(client), RemoteEmulatorClock(endpoint), NodeContext(**context)
    )
    cycle.allocate_eni(secondary_ips=2)


if __name__ == "__main__":
    main()
