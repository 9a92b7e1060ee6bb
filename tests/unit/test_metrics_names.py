"""The exposed metric names are exactly upstream's (dashboards and alerts query them).

``UPSTREAM`` is copied from the behaviour reference of aws/amazon-vpc-cni-k8s at b52188387
("Prepare v1.23.1 release"), section 9.2 "Prometheus" (metric name and type, from
``pkg/ipamd/metrics`` / ``pkg/awsutils``). Upstream's Go client exposes a counter under its own
name (``awscni_add_ip_req_count``, not ``..._total``) and no ``_created`` samples.
"""

from __future__ import annotations

import re

from vpccni.adapters.prometheus_metrics import PrometheusMetrics

UPSTREAM = {
    "awscni_ipamd_error_count": "counter",
    "awscni_ipamd_action_inprogress": "gauge",
    "awscni_eni_max": "gauge",
    "awscni_ip_max": "gauge",
    "awscni_reconcile_count": "counter",
    "awscni_add_ip_req_count": "counter",
    "awscni_del_ip_req_count": "counter",
    "awscni_pod_eni_error_count": "counter",
    "awscni_aws_api_latency_ms": "summary",
    "awscni_aws_api_error_count": "counter",
    "awscni_aws_utils_error_count": "counter",
    "awscni_ec2api_req_count": "counter",
    "awscni_ec2api_error_count": "counter",
    "awscni_eni_allocated": "gauge",
    "awscni_total_ip_addresses": "gauge",
    "awscni_assigned_ip_addresses": "gauge",
    "awscni_force_removed_enis": "counter",
    "awscni_force_removed_ips": "counter",
    "awscni_total_ipv4_prefixes": "gauge",
    "awscni_assigned_ip_per_cidr": "gauge",
    "awscni_no_available_ip_addresses": "counter",
    "awscni_assigned_ip_per_eni": "gauge",
    "awscni_ipamd_startup_duration_seconds": "histogram",
    "awscni_ipamd_node_initialization_duration_seconds": "histogram",
    "awscni_connmark_backend": "gauge",
    "awscni_connmark_reconcile_total": "counter",
    "awscni_build_info": "gauge",
}
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
    "histogram": ("_bucket", "_sum", "_count"),
}
# What docs/metrics.md lists as exported (the rest is documented as not exported yet).
EXPORTED = {
    "awscni_add_ip_req_count",
    "awscni_del_ip_req_count",
    "awscni_no_available_ip_addresses",
    "awscni_eni_allocated",
    "awscni_total_ip_addresses",
    "awscni_assigned_ip_addresses",
    "awscni_total_ipv4_prefixes",
    "awscni_assigned_ip_per_eni",
    "awscni_eni_max",
    "awscni_ip_max",
    "awscni_ipamd_error_count",
    "awscni_force_removed_enis",
    "awscni_force_removed_ips",
    "awscni_ec2api_req_count",
    "awscni_ec2api_error_count",
    "awscni_aws_api_latency_ms",
    "awscni_aws_api_error_count",
    "awscni_build_info",
}


def exercised() -> str:
    """The exposition after every kind of event, so every series has a sample."""
    metrics = PrometheusMetrics()
    metrics.ec2_call("AssignPrivateIpAddresses", 0.05, "")
    metrics.ec2_call("CreateNetworkInterface", 0.2, "RequestLimitExceeded")
    metrics.add_request(0.01, True)
    metrics.del_request()
    metrics.no_address("node_full")
    metrics.pods_waiting(1)
    metrics.pool(2, 18, 1, 0, {"eni-1": 1})
    metrics.limits(3, 27)
    metrics.error("increaseIPPoolAllocENI")
    metrics.force_removed(1, 2)
    metrics.subnet_free("subnet-1", 200)
    return metrics.exposition().decode()


def test_exposed_names_are_upstreams_exactly() -> None:
    text = exercised()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    ours = {name for name in types if name.startswith("awscni_")}
    assert ours == EXPORTED
    for name in ours:
        assert types[name] == UPSTREAM[name], name
    allowed = {name + suffix for name in ours for suffix in SUFFIXES[UPSTREAM[name]]} | {
        sample for sample in samples if sample.startswith("vpccni_")
    }
    assert samples <= allowed, sorted(samples - allowed)
    assert not [name for name in samples if name.endswith("_created")]
    assert "awscni_add_ip_req_count 1.0" in text
    assert 'awscni_ec2api_req_count{fn="CreateNetworkInterface"} 1.0' in text
    assert "awscni_aws_api_latency_ms_count" in text
    assert 'vpccni_ec2_throttles_total{api="CreateNetworkInterface"} 1.0' in text
