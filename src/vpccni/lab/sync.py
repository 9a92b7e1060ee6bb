"""Keeps a lab's ENI links in step with EC2: polls the node's ENIs, learns the CIDR of each
subnet they are in (``DescribeSubnets``, once per subnet) and calls ``Lab.sync``."""

from __future__ import annotations

import logging
import threading
from ipaddress import IPv4Network

from vpccni.core.aws_types import CloudError
from vpccni.lab.topology import Lab, LabError
from vpccni.ports import Ec2

log = logging.getLogger("vpccni.lab")


class LabSync:
    """A background thread mirroring attached ENIs into the lab every ``interval`` seconds."""

    def __init__(self, lab: Lab, ec2: Ec2, instance_id: str, interval: float = 0.2) -> None:
        self.lab = lab
        self.ec2 = ec2
        self.instance_id = instance_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lab-sync")

    def once(self) -> None:
        enis = self.ec2.describe_enis(filters={"attachment.instance-id": [self.instance_id]})
        unknown = sorted({e.subnet_id for e in enis if e.subnet_id} - set(self.lab.subnets))
        if unknown:
            for subnet in self.ec2.describe_subnets(subnet_ids=unknown):
                self.lab.subnets[subnet.subnet_id] = IPv4Network(subnet.cidr)
        self.lab.sync(enis)

    def start(self) -> None:
        self.once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.once()
            except (CloudError, LabError) as error:
                log.warning("lab sync: %s", error)
