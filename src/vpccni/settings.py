"""The one reader of environment variables for the shell: validated settings, or a clear error.

IPAM variables are parsed by ``vpccni.core.config`` (pure); this module adds how to reach EC2
and IMDS. EC2: ``AWS_ENDPOINT_URL_EC2`` (the standard variable, which botocore also reads), else
upstream's ``AWS_EC2_ENDPOINT``; region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (else the
daemon asks IMDS); retries from ``AWS_RETRY_MODE`` (standard or adaptive) and
``AWS_MAX_ATTEMPTS``; ``HTTP_TIMEOUT`` in seconds, at least 10 as upstream requires. IMDS:
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` as botocore reads it. Credentials come from the standard
chain and are never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.adapters.ec2_boto3 import Ec2Endpoint
from vpccni.adapters.imds_http import DEFAULT_ENDPOINT
from vpccni.core.config import ConfigError

RETRY_MODES = ("standard", "adaptive")
MIN_HTTP_TIMEOUT = 10


@dataclass(frozen=True)
class CloudSettings:
    """How this process reaches EC2 and IMDS. ``region`` None: ask IMDS."""

    ec2_endpoint_url: str | None
    region: str | None
    retry_mode: str
    max_attempts: int
    http_timeout: float
    imds_endpoint: str

    def ec2(self, region: str) -> Ec2Endpoint:
        """The EC2 endpoint for ``region`` (this one's region wins when set)."""
        return Ec2Endpoint(
            region=self.region or region,
            endpoint_url=self.ec2_endpoint_url,
            retry_mode=self.retry_mode,
            max_attempts=self.max_attempts,
            timeout_seconds=self.http_timeout,
        )


def cloud_settings(env: Mapping[str, str]) -> CloudSettings:
    """Validate the cloud variables in ``env``."""
    problems: list[str] = []
    endpoint = env.get("AWS_ENDPOINT_URL_EC2") or env.get("AWS_EC2_ENDPOINT") or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        problems.append(f"EC2 endpoint {endpoint!r} must start with http:// or https://")
    retry_mode = env.get("AWS_RETRY_MODE", "standard") or "standard"
    if retry_mode not in RETRY_MODES:
        problems.append(f"AWS_RETRY_MODE={retry_mode!r}; accepted: {', '.join(RETRY_MODES)}")
    max_attempts = _integer(env, "AWS_MAX_ATTEMPTS", 3, 1, problems)
    timeout = _integer(env, "HTTP_TIMEOUT", MIN_HTTP_TIMEOUT, MIN_HTTP_TIMEOUT, problems)
    if problems:
        raise ConfigError(problems)
    return CloudSettings(
        ec2_endpoint_url=endpoint,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        retry_mode=retry_mode,
        max_attempts=max_attempts,
        http_timeout=float(timeout),
        imds_endpoint=env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT,
    )


def _integer(
    env: Mapping[str, str], name: str, default: int, minimum: int, problems: list[str]
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        problems.append(f"{name}={raw!r} is not an integer; accepted: {minimum} or more")
        return default
    if value < minimum:
        problems.append(f"{name}={raw!r} is too small; accepted: {minimum} or more")
    return value


RANDOMIZE_SNAT = {"none": 0, "hashrandom": 1, "prng": 2}


def networkutils_settings(env: Mapping[str, str]) -> dict[str, object]:
    """Upstream's ``/v1/networkutils-env-settings`` document from the datapath variables.

    Validated strictly (a bad value is refused, not replaced). The datapath that applies them
    arrives with the datapath work; until then they are reported only.
    """
    problems: list[str] = []

    def flag(name: str, default: bool) -> bool:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        if raw.lower() in ("true", "1", "t"):
            return True
        if raw.lower() in ("false", "0", "f"):
            return False
        problems.append(f"{name}={raw!r} is not a boolean; accepted: true or false")
        return default

    def cidrs(name: str) -> list[str] | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        found = []
        for item in raw.split(","):
            try:
                found.append(str(IPv4Network(item.strip(), strict=False)))
            except ValueError:
                problems.append(f"{name} has {item.strip()!r}, which is not an IPv4 CIDR")
        return found

    connmark_raw = env.get("AWS_VPC_K8S_CNI_CONNMARK", "").strip() or "0x80"
    try:
        connmark = int(connmark_raw, 0)
        if not 0 < connmark < 2**32:
            raise ValueError
    except ValueError:
        problems.append(f"AWS_VPC_K8S_CNI_CONNMARK={connmark_raw!r}; accepted: 1 .. 2^32-1")
        connmark = 0x80
    mtu = _integer(env, "AWS_VPC_ENI_MTU", 9001, 576, problems)
    if mtu > 9001:
        problems.append(f"AWS_VPC_ENI_MTU={mtu} is above 9001")
    prefix = env.get("AWS_VPC_K8S_CNI_VETHPREFIX", "").strip() or "eni"
    if len(prefix) > 4 or prefix in ("eth", "lo", "vlan"):
        problems.append(
            f"AWS_VPC_K8S_CNI_VETHPREFIX={prefix!r}; at most 4 characters, not eth/lo/vlan"
        )
    randomize = env.get("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "").strip() or "prng"
    if randomize not in RANDOMIZE_SNAT:
        problems.append(
            f"AWS_VPC_K8S_CNI_RANDOMIZESNAT={randomize!r}; accepted: none, hashrandom, prng"
        )
        randomize = "prng"
    document: dict[str, object] = {
        "AWS_VPC_K8S_CNI_CONNMARK": connmark,
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": cidrs("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS"),
        "AWS_VPC_K8S_CNI_EXTERNALSNAT": flag("AWS_VPC_K8S_CNI_EXTERNALSNAT", False),
        "AWS_EXTERNAL_SERVICE_CIDRS": cidrs("AWS_EXTERNAL_SERVICE_CIDRS"),
        "AWS_VPC_ENI_MTU": mtu,
        "AWS_VPC_K8S_CNI_VETHPREFIX": prefix,
        "AWS_VPC_CNI_NODE_PORT_SUPPORT": flag("AWS_VPC_CNI_NODE_PORT_SUPPORT", True),
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT": RANDOMIZE_SNAT[randomize],
    }
    if problems:
        raise ConfigError(problems)
    return document
