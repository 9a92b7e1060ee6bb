"""The exposed metric names, types and label names are exactly upstream's (dashboards and alerts
query them).

``UPSTREAM`` is copied from the behaviour reference of aws/amazon-vpc-cni-k8s at b52188387
("Prepare v1.23.1 release"), section 9.2 "Prometheus" (metric name, type and label names, from
``utils/prometheusmetrics/prometheusmetrics.go``; ``awscni_build_info`` from
``pkg/version/info.go``). Upstream's Go client exposes a counter under its own name
(``awscni_add_ip_req_count``, not ``..._total``) and no ``_created`` samples.
"""

from __future__ import annotations

import re

from vpccni.adapters.prometheus_metrics import PrometheusMetrics

UPSTREAM: dict[str, tuple[str, tuple[str, ...]]] = {
    "awscni_ipamd_error_count": ("counter", ("fn",)),
    "awscni_ipamd_action_inprogress": ("gauge", ("fn",)),
    "awscni_eni_max": ("gauge", ()),
    "awscni_ip_max": ("gauge", ()),
    "awscni_reconcile_count": ("counter", ("fn",)),
    "awscni_add_ip_req_count": ("counter", ()),
    "awscni_del_ip_req_count": ("counter", ("reason",)),
    "awscni_pod_eni_error_count": ("counter", ("fn",)),
    "awscni_aws_api_latency_ms": ("summary", ("api", "error", "status")),
    "awscni_aws_api_error_count": ("counter", ("api", "error")),
    "awscni_aws_utils_error_count": ("counter", ("fn", "error")),
    "awscni_ec2api_req_count": ("counter", ("fn",)),
    "awscni_ec2api_error_count": ("counter", ("fn",)),
    "awscni_eni_allocated": ("gauge", ()),
    "awscni_total_ip_addresses": ("gauge", ()),
    "awscni_assigned_ip_addresses": ("gauge", ()),
    "awscni_force_removed_enis": ("counter", ()),
    "awscni_force_removed_ips": ("counter", ()),
    "awscni_total_ipv4_prefixes": ("gauge", ()),
    "awscni_assigned_ip_per_cidr": ("gauge", ("cidr",)),
    "awscni_no_available_ip_addresses": ("counter", ()),
    "awscni_assigned_ip_per_eni": ("gauge", ("eni",)),
    "awscni_ipamd_startup_duration_seconds": (
        "histogram",
        ("success", "with_api_server", "failure_reason"),
    ),
    "awscni_ipamd_node_initialization_duration_seconds": ("histogram", ("success",)),
    "awscni_connmark_backend": ("gauge", ("backend",)),
    "awscni_connmark_reconcile_total": ("counter", ("result",)),
    "awscni_build_info": ("gauge", ("version", "goversion")),
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
    "awscni_assigned_ip_per_cidr",
    "awscni_eni_max",
    "awscni_ip_max",
    "awscni_ipamd_error_count",
    "awscni_force_removed_enis",
    "awscni_force_removed_ips",
    "awscni_ec2api_req_count",
    "awscni_ec2api_error_count",
    "awscni_aws_api_latency_ms",
    "awscni_aws_api_error_count",
    "awscni_aws_utils_error_count",
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
    metrics.ec2_failure("create_eni", "RequestLimitExceeded")
    metrics.pool(2, 18, 1, 0, {"eni-1": 1})
    metrics.assigned_per_cidr({"10.0.1.5/32": 1, "10.0.1.6/32": 0})
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
        assert types[name] == UPSTREAM[name][0], name
    allowed = {name + suffix for name in ours for suffix in SUFFIXES[UPSTREAM[name][0]]} | {
        sample for sample in samples if sample.startswith("vpccni_")
    }
    assert samples <= allowed, sorted(samples - allowed)
    assert not [name for name in samples if name.endswith("_created")]
    assert "awscni_add_ip_req_count 1.0" in text
    assert 'awscni_ec2api_req_count{fn="CreateNetworkInterface"} 1.0' in text
    assert "awscni_aws_api_latency_ms_count" in text
    assert 'vpccni_ec2_throttles_total{api="CreateNetworkInterface"} 1.0' in text


def test_label_names_are_upstreams_exactly() -> None:
    """Every sample of an ``awscni_*`` metric carries exactly upstream's label names (plus
    ``le`` on a histogram's buckets), so a query's ``by (...)`` and selectors keep working."""
    text = exercised()
    found: dict[str, set[tuple[str, ...]]] = {}
    for sample, labels in re.findall(r"^(awscni_\w+?)(?:\{(.*)\})? ", text, re.M):
        name = sample if sample in UPSTREAM else re.sub(r"_(sum|count|bucket)$", "", sample)
        keys = tuple(sorted(re.findall(r'(\w+)="', labels)))
        found.setdefault(name, set()).add(tuple(k for k in keys if k != "le"))
    assert set(found) == EXPORTED
    for name, label_sets in found.items():
        assert label_sets == {tuple(sorted(UPSTREAM[name][1]))}, name
    assert 'awscni_assigned_ip_per_cidr{cidr="10.0.1.5/32"} 1.0' in text
    assert 'awscni_aws_utils_error_count{error="RequestLimitExceeded",fn="create_eni"} 1.0' in text
    assert re.search(
        r'awscni_build_info\{goversion="cpython3\.\d+\.\d+",version="[^"]+"\} 1\.0', text
    )


def test_per_cidr_series_leave_with_their_cidr() -> None:
    metrics = PrometheusMetrics()
    metrics.assigned_per_cidr({"10.0.1.5/32": 1, "10.0.1.16/28": 3})
    metrics.assigned_per_cidr({"10.0.1.16/28": 2})
    text = metrics.exposition().decode()
    assert 'awscni_assigned_ip_per_cidr{cidr="10.0.1.16/28"} 2.0' in text
    assert "10.0.1.5/32" not in text
