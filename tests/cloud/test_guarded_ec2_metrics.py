"""Failed EC2 calls are counted where the EC2 port is guarded: upstream's
``awscni_aws_utils_error_count{fn,error}`` by the port function and EC2's error code, next to the
per-API series (``awscni_ec2api_error_count{fn}``, ``awscni_aws_api_error_count{api,error}``).

The calls go through the real boto3 adapter to the emulator, so the error codes are EC2's own.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from tests.cloud.conftest import Backend, VirtualClock
from vpccni.adapters.prometheus_metrics import PrometheusMetrics
from vpccni.cloud.guarded_ec2 import GuardedEc2
from vpccni.core.aws_types import CloudError

MISSING_ENI = "eni-0123456789abcdef0"


def test_a_failed_call_is_counted_by_port_function_and_error_code(emulator: Backend) -> None:
    metrics = PrometheusMetrics()
    ec2 = GuardedEc2(emulator.ec2, VirtualClock(), metrics)
    with pytest.raises(CloudError) as first:
        ec2.assign_ips(MISSING_ENI, 2)
    with pytest.raises(CloudError):
        ec2.assign_prefixes(MISSING_ENI, 1)
    with pytest.raises(CloudError):
        ec2.unassign_ips(MISSING_ENI, [IPv4Address("10.0.1.9")])
    code = first.value.code
    assert code == "InvalidNetworkInterfaceID.NotFound"
    text = metrics.exposition().decode()
    for fn in ("assign_ips", "assign_prefixes", "unassign_ips"):
        assert f'awscni_aws_utils_error_count{{error="{code}",fn="{fn}"}} 1.0' in text, fn
    # Both assign calls are one EC2 API: the per-API series add them up.
    assert 'awscni_ec2api_error_count{fn="AssignPrivateIpAddresses"} 2.0' in text
    assert (
        f'awscni_aws_api_error_count{{api="AssignPrivateIpAddresses",error="{code}"}} 2.0' in text
    )


def test_a_successful_call_counts_no_error(emulator: Backend) -> None:
    metrics = PrometheusMetrics()
    ec2 = GuardedEc2(emulator.ec2, VirtualClock(), metrics)
    ec2.describe_subnets()
    text = metrics.exposition().decode()
    assert 'awscni_ec2api_req_count{fn="DescribeSubnets"} 1.0' in text
    assert "awscni_aws_utils_error_count{" not in text
