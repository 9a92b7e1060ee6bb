"""The metrics port over prometheus_client: upstream's ``awscni_*`` series plus ours.

Upstream names, types and label names are kept where the behaviour applies (see docs/metrics.md;
``tests/unit/test_metrics_names.py`` compares them). Label values that differ:
``awscni_aws_utils_error_count{fn,error}`` counts every failed EC2 call by the EC2 port function
that made it (``assign_prefixes``...) and EC2's error code, where upstream names an awsutils step
and the whole error message; ``awscni_build_info{version,goversion}`` carries vpccni's version and
the Python runtime (``cpython3.11.2``) in place of Go's. Ours:
``vpccni_time_to_ip_seconds`` (histogram of ADD latency), ``vpccni_pods_waiting_for_ip``,
``vpccni_ec2_throttles_total{api}``, ``vpccni_ec2_unauthorized_total{action}`` (calls EC2
denied for a missing IAM permission), ``vpccni_subnet_free_addresses{subnet}`` and
``vpccni_no_address_adds_total{reason}`` (upstream's ``awscni_no_available_ip_addresses`` stays
unlabelled, so its dashboards keep working; the cause is in the second series).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.utils import floatToGoString

from vpccni import __version__

RUNTIME = platform.python_implementation().lower() + platform.python_version()
"""``awscni_build_info``'s ``goversion``: the runtime that runs vpccni (upstream: ``go1.22.5``)."""
THROTTLE_CODES = {"RequestLimitExceeded", "Throttling", "Throttled"}
UNAUTHORIZED_CODE = "UnauthorizedOperation"


class PrometheusMetrics:
    """Implements ``vpccni.ports.Metrics``; one registry per daemon."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.add_reqs = Counter("awscni_add_ip_req_count", "AddNetwork calls", registry=r)
        self.del_reqs = Counter(
            "awscni_del_ip_req_count", "DelNetwork calls", ["reason"], registry=r
        )
        self.no_ip = Counter(
            "awscni_no_available_ip_addresses", "ADDs that found the pool empty", registry=r
        )
        self.no_ip_reason = Counter(
            "vpccni_no_address_adds",
            "ADDs that found no address, by cause (docs/ipamd.md)",
            ["reason"],
            registry=r,
        )
        self.eni_allocated = Gauge("awscni_eni_allocated", "ENIs in the datastore", registry=r)
        self.total_ips = Gauge("awscni_total_ip_addresses", "Addresses in the pool", registry=r)
        self.assigned_ips = Gauge(
            "awscni_assigned_ip_addresses", "Addresses assigned to pods", registry=r
        )
        self.prefixes = Gauge("awscni_total_ipv4_prefixes", "IPv4 /28 prefixes", registry=r)
        self.per_eni = Gauge(
            "awscni_assigned_ip_per_eni", "Assigned addresses per ENI", ["eni"], registry=r
        )
        self.per_cidr = Gauge(
            "awscni_assigned_ip_per_cidr",
            "Assigned addresses per CIDR (a /32 secondary address or a /28 prefix)",
            ["cidr"],
            registry=r,
        )
        self.eni_max = Gauge("awscni_eni_max", "ENIs the node may use", registry=r)
        self.ip_max = Gauge("awscni_ip_max", "Addresses the node may hold", registry=r)
        self.errors = Counter("awscni_ipamd_error_count", "ipamd failures", ["fn"], registry=r)
        self.forced_enis = Counter(
            "awscni_force_removed_enis", "ENIs removed with pods on them", registry=r
        )
        self.forced_ips = Counter(
            "awscni_force_removed_ips", "Addresses removed from pods", registry=r
        )
        self.ec2_reqs = Counter("awscni_ec2api_req_count", "EC2 requests", ["fn"], registry=r)
        self.ec2_errors = Counter(
            "awscni_ec2api_error_count", "Failed EC2 requests", ["fn"], registry=r
        )
        self.api_latency = Summary(
            "awscni_aws_api_latency_ms", "EC2 call latency", ["api", "error", "status"], registry=r
        )
        self.api_errors = Counter(
            "awscni_aws_api_error_count", "EC2 failures by code", ["api", "error"], registry=r
        )
        self.utils_errors = Counter(
            "awscni_aws_utils_error_count",
            "Failed EC2 calls by the EC2 port function that made them and EC2's error code",
            ["fn", "error"],
            registry=r,
        )
        Gauge(
            "awscni_build_info",
            "A constant 1 labelled by vpccni's version and the runtime that runs it",
            ["version", "goversion"],
            registry=r,
        ).labels(__version__, RUNTIME).set(1)
        self.time_to_ip = Histogram(
            "vpccni_time_to_ip_seconds",
            "Time from ADD request to an address (successful ADDs)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.waiting = Gauge(
            "vpccni_pods_waiting_for_ip", "Pods whose last ADD found no address", registry=r
        )
        self.throttles = Counter(
            "vpccni_ec2_throttles_total", "EC2 throttling errors", ["api"], registry=r
        )
        self.unauthorized = Counter(
            "vpccni_ec2_unauthorized",
            "EC2 calls denied for a missing IAM permission (UnauthorizedOperation), by action",
            ["action"],
            registry=r,
        )
        self.subnet = Gauge(
            "vpccni_subnet_free_addresses", "Free addresses per subnet", ["subnet"], registry=r
        )
        self._enis: set[str] = set()
        self._cidrs: set[str] = set()

    def exposition(self) -> bytes:
        """The Prometheus text format (0.0.4) with upstream's exact names.

        prometheus_client names a counter's sample ``<name>_total`` and adds ``<name>_created``
        samples; upstream (Go's client) exposes ``awscni_add_ip_req_count`` and no ``_created``.
        So ``awscni_*`` counters are written under their own name, ``_created`` samples are left
        out, and our ``vpccni_*`` counters keep the ``_total`` convention.
        """
        lines: list[str] = []
        for family in self.registry.collect():
            upstream_counter = family.type == "counter" and family.name.startswith("awscni_")
            shown = family.name + ("_total" if family.type == "counter" else "")
            shown = family.name if upstream_counter else shown
            help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
            lines.append(f"# HELP {shown} {help_text}")
            lines.append(f"# TYPE {shown} {'untyped' if family.type == 'unknown' else family.type}")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = family.name if upstream_counter else sample.name
                labels = ",".join(
                    f'{key}="{_escape(value)}"' for key, value in sorted(sample.labels.items())
                )
                selector = f"{{{labels}}}" if labels else ""
                lines.append(f"{name}{selector} {floatToGoString(sample.value)}")  # type: ignore[no-untyped-call]
        return ("\n".join(lines) + "\n").encode()

    def ec2_call(self, api: str, seconds: float, error_code: str) -> None:
        self.ec2_reqs.labels(api).inc()
        failed = bool(error_code)
        self.api_latency.labels(api, str(failed).lower(), error_code or "200").observe(
            seconds * 1000
        )
        if failed:
            self.ec2_errors.labels(api).inc()
            self.api_errors.labels(api, error_code).inc()
            if error_code in THROTTLE_CODES:
                self.throttles.labels(api).inc()
            elif error_code == UNAUTHORIZED_CODE:
                self.unauthorized.labels(api).inc()

    def ec2_failure(self, fn: str, error_code: str) -> None:
        self.utils_errors.labels(fn, error_code).inc()

    def add_request(self, seconds: float, ok: bool) -> None:
        self.add_reqs.inc()
        if ok:
            self.time_to_ip.observe(seconds)

    def del_request(self) -> None:
        self.del_reqs.labels("PodDeleted").inc()

    def no_address(self, reason: str) -> None:
        self.no_ip.inc()
        self.no_ip_reason.labels(reason).inc()

    def pods_waiting(self, count: int) -> None:
        self.waiting.set(count)

    def pool(
        self, enis: int, total: int, assigned: int, prefixes: int, per_eni: dict[str, int]
    ) -> None:
        self.eni_allocated.set(enis)
        self.total_ips.set(total)
        self.assigned_ips.set(assigned)
        self.prefixes.set(prefixes)
        for gone in self._enis - set(per_eni):
            self.per_eni.remove(gone)
        for eni, count in per_eni.items():
            self.per_eni.labels(eni).set(count)
        self._enis = set(per_eni)

    def assigned_per_cidr(self, per_cidr: Mapping[str, int]) -> None:
        for gone in self._cidrs - set(per_cidr):
            self.per_cidr.remove(gone)
        for cidr, count in per_cidr.items():
            self.per_cidr.labels(cidr).set(count)
        self._cidrs = set(per_cidr)

    def limits(self, max_enis: int, max_ips: int) -> None:
        self.eni_max.set(max_enis)
        self.ip_max.set(max_ips)

    def error(self, fn: str) -> None:
        self.errors.labels(fn).inc()

    def force_removed(self, enis: int, ips: int) -> None:
        self.forced_enis.inc(enis)
        self.forced_ips.inc(ips)

    def subnet_free(self, subnet_id: str, free: int) -> None:
        self.subnet.labels(subnet_id).set(free)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
