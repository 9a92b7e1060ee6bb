"""The daemon's settings: every variable and flag it reads, valid values and refused ones.

Each refused value must be named with its value, why it is wrong and what is accepted; nothing
is silently replaced by a default. A recording environment proves the tables cover every
variable ``parse_settings`` reads, and a scan of the sources that nothing else in the daemon
path reads ``os.environ``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from vpccni.core.config import BOOL_ACCEPTED, ConfigError, IpamConfig
from vpccni.core.config import QUALIFIED_ACCEPTED as QUALIFIED
from vpccni.settings import (
    CloudSettings,
    DaemonFlags,
    DaemonSettings,
    DatapathSettings,
    Settings,
    parse_settings,
    read_settings,
)
from vpccni.settings_eni import TAGS_ACCEPTED

SRC = Path(__file__).parents[2] / "src" / "vpccni"


def field(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_unset_takes_the_documented_defaults() -> None:
    assert parse_settings({}) == Settings(
        IpamConfig(), CloudSettings(), DatapathSettings(), DaemonSettings()
    )
    settings = parse_settings({})
    assert settings.cloud.imds_endpoint == "http://169.254.169.254/"
    assert (settings.cloud.retry_mode, settings.cloud.max_attempts) == ("standard", 3)
    assert settings.cloud.http_timeout == 10.0
    assert settings.daemon.metrics_bind == ("0.0.0.0", 61678)
    assert settings.daemon.introspection_bind == "127.0.0.1:61679"
    assert settings.daemon.log_level == logging.INFO
    assert settings.datapath.document() == {
        "AWS_VPC_K8S_CNI_CONNMARK": 0x80,
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": None,
        "AWS_VPC_K8S_CNI_EXTERNALSNAT": False,
        "AWS_EXTERNAL_SERVICE_CIDRS": None,
        "AWS_VPC_ENI_MTU": 9001,
        "AWS_VPC_K8S_CNI_VETHPREFIX": "eni",
        "AWS_VPC_CNI_NODE_PORT_SUPPORT": True,
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT": 2,
    }


EMULATOR = "http://127.0.0.1:5309"
THIS_FILE = str(Path(__file__))

# (variable, value, settings field, expected); an empty value counts as unset, as upstream.
VALID_VARIABLES: list[tuple[str, str, str, Any]] = [
    ("WARM_ENI_TARGET", "0", "ipam.warm_eni_target", 0),
    ("WARM_ENI_TARGET", "", "ipam.warm_eni_target", 1),
    ("WARM_IP_TARGET", "5", "ipam.warm_ip_target", 5),
    ("WARM_IP_TARGET", "+5", "ipam.warm_ip_target", 5),
    ("MINIMUM_IP_TARGET", "010", "ipam.minimum_ip_target", 10),
    ("WARM_PREFIX_TARGET", "2", "ipam.warm_prefix_target", 2),
    ("ENABLE_PREFIX_DELEGATION", "T", "ipam.prefix_delegation", True),
    ("MAX_ENI", "-1", "ipam.max_eni", None),
    ("MAX_ENI", "3", "ipam.max_eni", 3),
    ("IP_COOLDOWN_PERIOD", "0", "ipam.ip_cooldown_seconds", 0),
    ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "TRUE", "ipam.custom_networking", True),
    ("ENABLE_POD_ENI", "1", "ipam.pod_eni", True),
    ("AWS_MANAGE_ENIS_NON_SCHEDULABLE", "t", "ipam.manage_enis_non_schedulable", True),
    ("ENABLE_IPv4", "False", "ipam.ipv4", False),
    ("ENABLE_IPv6", "true", "ipam.ipv6", True),
    ("ENABLE_SUBNET_DISCOVERY", "false", "ipam.subnet_discovery", False),
    ("ENABLE_SUBNET_DISCOVERY", "", "ipam.subnet_discovery", True),
    (
        "ENI_CONFIG_LABEL_DEF",
        "example.com/pod-subnet",
        "ipam.eniconfig_label",
        "example.com/pod-subnet",
    ),
    ("ENI_CONFIG_LABEL_DEF", "", "ipam.eniconfig_label", "k8s.amazonaws.com/eniConfig"),
    ("ENI_CONFIG_ANNOTATION_DEF", "eniConfig", "ipam.eniconfig_annotation", "eniConfig"),
    ("AWS_ENDPOINT_URL_EC2", EMULATOR, "cloud.ec2_endpoint_url", EMULATOR),
    ("AWS_EC2_ENDPOINT", "https://ec2.local", "cloud.ec2_endpoint_url", "https://ec2.local"),
    ("AWS_REGION", "eu-west-1", "cloud.region", "eu-west-1"),
    ("AWS_DEFAULT_REGION", "us-gov-west-1", "cloud.region", "us-gov-west-1"),
    ("AWS_RETRY_MODE", "adaptive", "cloud.retry_mode", "adaptive"),
    ("AWS_MAX_ATTEMPTS", "1", "cloud.max_attempts", 1),
    ("HTTP_TIMEOUT", "30", "cloud.http_timeout", 30.0),
    (
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        EMULATOR + "/imds/",
        "cloud.imds_endpoint",
        EMULATOR + "/imds/",
    ),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0x4000", "datapath.connmark", 0x4000),
    ("AWS_VPC_K8S_CNI_CONNMARK", "4294967295", "datapath.connmark", 2**32 - 1),
    (
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
        "10.1.0.0/16, 192.168.0.1/24",
        "datapath.exclude_snat_cidrs",
        (IPv4Network("10.1.0.0/16"), IPv4Network("192.168.0.0/24")),
    ),
    ("AWS_VPC_K8S_CNI_EXTERNALSNAT", "true", "datapath.external_snat", True),
    (
        "AWS_EXTERNAL_SERVICE_CIDRS",
        "0.0.0.0/0",
        "datapath.external_service_cidrs",
        (IPv4Network("0.0.0.0/0"),),
    ),
    ("AWS_VPC_ENI_MTU", "576", "datapath.mtu", 576),
    ("AWS_VPC_ENI_MTU", "1500", "datapath.mtu", 1500),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "veth", "datapath.veth_prefix", "veth"),
    ("AWS_VPC_CNI_NODE_PORT_SUPPORT", "f", "datapath.node_port_support", False),
    ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "hashrandom", "datapath.randomize_snat", "hashrandom"),
    ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "none", "datapath.random_snat_code", 0),
    ("CLUSTER_NAME", "prod east", "daemon.cluster_name", "prod east"),
    ("DISABLE_NETWORK_RESOURCE_PROVISIONING", "true", "provisioning.provisioning", False),
    ("DISABLE_NETWORK_RESOURCE_PROVISIONING", "true", "provisioning.leaked_eni_cleanup", False),
    ("ENABLE_IMDS_ONLY_MODE", "1", "provisioning.imds_only", True),
    ("ENABLE_IMDS_ONLY_MODE", "1", "provisioning.provisioning", False),
    ("MANAGE_UNTAGGED_ENI", "false", "provisioning.manage_untagged", False),
    ("DISABLE_LEAKED_ENI_CLEANUP", "true", "provisioning.leaked_eni_cleanup", False),
    ("ADDITIONAL_ENI_TAGS", '{"team": "net"}', "provisioning.additional_tags", {"team": "net"}),
    ("ADDITIONAL_ENI_TAGS", "{}", "provisioning.additional_tags", {}),
    ("VPC_CNI_VERSION", "v1.19.2", "provisioning.cni_version", "v1.19.2"),
    ("MY_POD_NAME", "aws-node-x7k2p", "upstream_only.pod_name", "aws-node-x7k2p"),
    ("ANNOTATE_POD_IP", "false", "upstream_only.notes", ()),
    ("ENABLE_MULTI_NIC", "false", "upstream_only.notes", ()),
    ("DISABLE_POD_V6", "false", "upstream_only.notes", ()),
    ("ENABLE_V6_EGRESS", "false", "upstream_only.notes", ()),
    ("ENABLE_V4_EGRESS", "false", "upstream_only.notes", ()),
    ("NETWORK_POLICY_ENFORCING_MODE", "None", "upstream_only.notes", ()),
    ("POD_SECURITY_GROUP_ENFORCING_MODE", "standard", "upstream_only.notes", ()),
    ("AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE", "/var/log/e.log", "upstream_only.notes", ()),
    ("AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE", "/var/log/e.log", "upstream_only.notes", ()),
    (
        "NETWORK_POLICY_ENFORCING_MODE",
        "standard",
        "upstream_only.notes",
        (
            "NETWORK_POLICY_ENFORCING_MODE=standard: vpccni enforces no NetworkPolicy, so pods "
            "are open as in standard mode before any policy applies",
        ),
    ),
    (
        "ENABLE_NFTABLES",
        "true",
        "upstream_only.notes",
        (
            "ENABLE_NFTABLES='true' has no effect: it is deprecated and upstream no longer "
            "reads it either; remove it",
        ),
    ),
    (
        "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER",
        "false",
        "upstream_only.notes",
        (
            "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER='false' has no effect: it is deprecated and "
            "upstream no longer reads it either; remove it",
        ),
    ),
    ("DISABLE_METRICS", "true", "daemon.metrics_bind", None),
    ("DISABLE_METRICS", "0", "daemon.metrics_bind", ("0.0.0.0", 61678)),
    ("DISABLE_INTROSPECTION", "1", "daemon.introspection_bind", None),
    ("INTROSPECTION_BIND_ADDRESS", "0.0.0.0:7000", "daemon.introspection_bind", "0.0.0.0:7000"),
    (
        "INTROSPECTION_BIND_ADDRESS",
        "unix:/run/i.sock",
        "daemon.introspection_bind",
        "unix:/run/i.sock",
    ),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "DEBUG", "daemon.log_level", logging.DEBUG),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "warn", "daemon.log_level", logging.WARNING),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "Error", "daemon.log_level", logging.ERROR),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "FATAL", "daemon.log_level", logging.CRITICAL),
    ("VPCCNI_CLOCK", "system", "daemon.emulator_clock", False),
    ("VPCCNI_SDK_LOGLEVEL", "debug", "daemon.sdk_log_level", logging.DEBUG),
    ("AWS_VPC_K8S_CNI_LOG_FILE", "stdout", "daemon.log_file", "stdout"),
    (
        "AWS_VPC_K8S_CNI_LOG_FILE",
        "/var/log/vpccni/ipamd.log",
        "daemon.log_file",
        "/var/log/vpccni/ipamd.log",
    ),
    ("IP_COOLDOWN_PERIOD", "3600", "ipam.ip_cooldown_seconds", 3600),
    ("INTROSPECTION_BIND_ADDRESS", "[::1]:7000", "daemon.introspection_bind", "[::1]:7000"),
    ("INTROSPECTION_BIND_ADDRESS", "localhost:7000", "daemon.introspection_bind", "localhost:7000"),
    ("VPCCNI_POD_SWEEP_GRACE_SECONDS", "120", "daemon.pod_sweep_grace", 120.0),
    (
        "AWS_VPC_K8S_CNI_BACKING_STORE",
        "/var/run/aws-node/ipam.json",
        "daemon.upstream_checkpoint",
        Path("/var/run/aws-node/ipam.json"),
    ),
    ("MY_NODE_NAME", "ip-10-0-0-1.ec2.internal", "cluster.node_name", "ip-10-0-0-1.ec2.internal"),
    ("KUBERNETES_SERVICE_HOST", "10.100.0.1", "cluster.service_host", "10.100.0.1"),
    ("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", "cluster.service_host", "fd00:10:96::1"),
    ("KUBERNETES_SERVICE_PORT", "6443", "cluster.service_port", 6443),
    (
        "CLUSTER_ENDPOINT",
        "https://ABCD.gr7.us-west-2.eks.amazonaws.com",
        "cluster.endpoint_override",
        "https://ABCD.gr7.us-west-2.eks.amazonaws.com",
    ),
]


@pytest.mark.parametrize(("name", "value", "path", "expected"), VALID_VARIABLES)
def test_valid_variables_are_read(name: str, value: str, path: str, expected: Any) -> None:
    assert field(parse_settings({name: value}), path) == expected


def test_emulator_clock_with_an_endpoint() -> None:
    env = {"VPCCNI_CLOCK": "emulator", "AWS_ENDPOINT_URL_EC2": EMULATOR}
    assert parse_settings(env).daemon.emulator_clock


def test_standard_endpoint_and_region_win_over_the_others() -> None:
    env = {
        "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5000",
        "AWS_EC2_ENDPOINT": "http://127.0.0.1:6000",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    cloud = parse_settings(env).cloud
    assert cloud.ec2_endpoint_url == "http://127.0.0.1:5000"
    assert cloud.ec2("eu-central-1").region == "us-west-2"
    assert CloudSettings().ec2("eu-central-1").region == "eu-central-1"


def test_introspection_variable_overrides_the_flag() -> None:
    flags = DaemonFlags(introspection_bind="unix:/tmp/a.sock")
    assert parse_settings({}, flags).daemon.introspection_bind == "unix:/tmp/a.sock"
    env = {"INTROSPECTION_BIND_ADDRESS": "127.0.0.1:9"}
    assert parse_settings(env, flags).daemon.introspection_bind == "127.0.0.1:9"


def test_datapath_document_reports_what_was_read() -> None:
    env = {
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "10.1.0.0/16",
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT": "none",
        "AWS_VPC_ENI_MTU": "1500",
    }
    document = parse_settings(env).datapath.document()
    assert document["AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS"] == ["10.1.0.0/16"]
    assert document["AWS_VPC_K8S_CNI_RANDOMIZESNAT"] == 0
    assert document["AWS_VPC_ENI_MTU"] == 1500


INT0 = "accepted: 0 or more"
COOLDOWN = "accepted: 0 to 3600"
MAX_ENI = "accepted: 1 or more, or -1 for the instance limit"
URL = "accepted: an http:// or https:// URL such as http://127.0.0.1:5309"
REGION = "accepted: a region name such as us-west-2 (lowercase letters, digits, dashes)"
CONNMARK = "accepted: 1 to 2^32-1 (e.g. 0x80)"
CIDRS = "accepted: IPv4 CIDRs separated by commas, such as 10.0.0.0/8,172.16.0.0/12"
VETH = "accepted: 1 to 4 letters, digits, '_', '.' or '-', not eth, lo or vlan"
BIND_HOSTS = (
    "accepted: HOST:PORT with HOST an IP address, localhost or empty (every interface) and PORT 1 "
    "to 65535"
)
BIND = BIND_HOSTS + ", or unix:PATH"
LOGLEVEL = "accepted: DEBUG, INFO, WARN, ERROR or FATAL (any case)"
BOOL = "accepted: " + BOOL_ACCEPTED
TAGS = "accepted: " + TAGS_ACCEPTED

# (variable, refused value, the whole problem reported for it)
REFUSED_VARIABLES: list[tuple[str, str, str]] = [
    ("WARM_ENI_TARGET", "1.5", f"WARM_ENI_TARGET='1.5' is not an integer; {INT0}"),
    ("WARM_ENI_TARGET", "-1", f"WARM_ENI_TARGET='-1' is negative; {INT0}"),
    ("WARM_IP_TARGET", "five", f"WARM_IP_TARGET='five' is not an integer; {INT0}"),
    ("WARM_IP_TARGET", "1_0", f"WARM_IP_TARGET='1_0' is not an integer; {INT0}"),
    (
        "WARM_IP_TARGET",
        " 5",
        f"WARM_IP_TARGET=' 5' is not an integer (remove the spaces around it); {INT0}",
    ),
    (
        "MINIMUM_IP_TARGET",
        "\u0661\u0660",
        f"MINIMUM_IP_TARGET='\u0661\u0660' is not an integer; {INT0}",
    ),
    ("WARM_PREFIX_TARGET", "x", f"WARM_PREFIX_TARGET='x' is not an integer; {INT0}"),
    (
        "WARM_PREFIX_TARGET",
        "99999999999999999999",
        "WARM_PREFIX_TARGET='99999999999999999999' is out of range (beyond a 64-bit integer); "
        + INT0,
    ),
    ("ENABLE_PREFIX_DELEGATION", "yes", f"ENABLE_PREFIX_DELEGATION='yes' is not a boolean; {BOOL}"),
    ("MAX_ENI", "0", f"MAX_ENI='0' is out of range; {MAX_ENI}"),
    ("MAX_ENI", "-2", f"MAX_ENI='-2' is out of range; {MAX_ENI}"),
    ("MAX_ENI", "many", f"MAX_ENI='many' is not an integer; {MAX_ENI}"),
    ("IP_COOLDOWN_PERIOD", "30s", f"IP_COOLDOWN_PERIOD='30s' is not an integer; {COOLDOWN}"),
    (
        "IP_COOLDOWN_PERIOD",
        "31536000",
        f"IP_COOLDOWN_PERIOD='31536000' is too large; {COOLDOWN}",
    ),
    (
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        "on",
        f"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG='on' is not a boolean; {BOOL}",
    ),
    ("ENABLE_POD_ENI", "tRUE", f"ENABLE_POD_ENI='tRUE' is not a boolean; {BOOL}"),
    (
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
        "no",
        f"AWS_MANAGE_ENIS_NON_SCHEDULABLE='no' is not a boolean; {BOOL}",
    ),
    ("ENABLE_IPv4", "2", f"ENABLE_IPv4='2' is not a boolean; {BOOL}"),
    (
        "ENABLE_IPv6",
        "false ",
        f"ENABLE_IPv6='false ' is not a boolean (remove the spaces around it); {BOOL}",
    ),
    ("ENABLE_SUBNET_DISCOVERY", "yes", f"ENABLE_SUBNET_DISCOVERY='yes' is not a boolean; {BOOL}"),
    (
        "ENI_CONFIG_LABEL_DEF",
        "pod subnet",
        "ENI_CONFIG_LABEL_DEF='pod subnet' is not a label or annotation key; "
        f"accepted: {QUALIFIED}",
    ),
    (
        "ENI_CONFIG_ANNOTATION_DEF",
        "Example.com/eniConfig",
        "ENI_CONFIG_ANNOTATION_DEF='Example.com/eniConfig' has a prefix that is not a DNS "
        f"subdomain; accepted: {QUALIFIED}",
    ),
    (
        "AWS_ENDPOINT_URL_EC2",
        "127.0.0.1:5309",
        f"AWS_ENDPOINT_URL_EC2='127.0.0.1:5309' is not an http:// or https:// URL; {URL}",
    ),
    (
        "AWS_EC2_ENDPOINT",
        "ec2.local",
        f"AWS_EC2_ENDPOINT='ec2.local' is not an http:// or https:// URL; {URL}",
    ),
    ("AWS_REGION", "US West", f"AWS_REGION='US West' is not a region name; {REGION}"),
    (
        "AWS_DEFAULT_REGION",
        "eu_west_1",
        f"AWS_DEFAULT_REGION='eu_west_1' is not a region name; {REGION}",
    ),
    (
        "AWS_RETRY_MODE",
        "legacy",
        "AWS_RETRY_MODE='legacy' is not one of the accepted values; accepted: standard, adaptive",
    ),
    ("AWS_MAX_ATTEMPTS", "0", "AWS_MAX_ATTEMPTS='0' is too small; accepted: 1 or more"),
    ("HTTP_TIMEOUT", "5", "HTTP_TIMEOUT='5' is too small; accepted: 10 or more"),
    ("HTTP_TIMEOUT", "ten", "HTTP_TIMEOUT='ten' is not an integer; accepted: 10 or more"),
    (
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "169.254.169.254",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT='169.254.169.254' is not an http:// or https:// "
        f"URL; {URL}",
    ),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0", f"AWS_VPC_K8S_CNI_CONNMARK='0' is too small; {CONNMARK}"),
    (
        "AWS_VPC_K8S_CNI_CONNMARK",
        "0x100000000",
        f"AWS_VPC_K8S_CNI_CONNMARK='0x100000000' is too large; {CONNMARK}",
    ),
    (
        "AWS_VPC_K8S_CNI_CONNMARK",
        "0x",
        f"AWS_VPC_K8S_CNI_CONNMARK='0x' is not an integer; {CONNMARK}",
    ),
    (
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
        "10.0.0.0/8,bad",
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS='10.0.0.0/8,bad' has 'bad', which is not an IPv4 "
        f"CIDR (A.B.C.D/N); {CIDRS}",
    ),
    (
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
        "10.0.0.0",
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS='10.0.0.0' has '10.0.0.0', which is not an IPv4 "
        f"CIDR (A.B.C.D/N); {CIDRS}",
    ),
    (
        "AWS_EXTERNAL_SERVICE_CIDRS",
        "10.0.0.0/33",
        "AWS_EXTERNAL_SERVICE_CIDRS='10.0.0.0/33' has '10.0.0.0/33', which is not an IPv4 "
        f"CIDR; {CIDRS}",
    ),
    (
        "AWS_VPC_K8S_CNI_EXTERNALSNAT",
        "enabled",
        f"AWS_VPC_K8S_CNI_EXTERNALSNAT='enabled' is not a boolean; {BOOL}",
    ),
    ("AWS_VPC_ENI_MTU", "575", "AWS_VPC_ENI_MTU='575' is too small; accepted: 576 to 9001"),
    ("AWS_VPC_ENI_MTU", "9002", "AWS_VPC_ENI_MTU='9002' is too large; accepted: 576 to 9001"),
    (
        "AWS_VPC_ENI_MTU",
        "jumbo",
        "AWS_VPC_ENI_MTU='jumbo' is not an integer; accepted: 576 to 9001",
    ),
    (
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        "toolong",
        f"AWS_VPC_K8S_CNI_VETHPREFIX='toolong' cannot prefix the host side of pod veths; {VETH}",
    ),
    (
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        "eth",
        f"AWS_VPC_K8S_CNI_VETHPREFIX='eth' cannot prefix the host side of pod veths; {VETH}",
    ),
    (
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        "a/b",
        f"AWS_VPC_K8S_CNI_VETHPREFIX='a/b' cannot prefix the host side of pod veths; {VETH}",
    ),
    (
        "AWS_VPC_CNI_NODE_PORT_SUPPORT",
        "yes",
        f"AWS_VPC_CNI_NODE_PORT_SUPPORT='yes' is not a boolean; {BOOL}",
    ),
    (
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
        "PRNG",
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT='PRNG' is not one of the accepted values; "
        "accepted: none, hashrandom, prng",
    ),
    (
        "CLUSTER_NAME",
        "c" * 257,
        f"CLUSTER_NAME='{'c' * 257}' is too long for an EC2 tag value; accepted: at most 256 "
        "characters",
    ),
    ("DISABLE_METRICS", "yes", f"DISABLE_METRICS='yes' is not a boolean; {BOOL}"),
    (
        "DISABLE_NETWORK_RESOURCE_PROVISIONING",
        "on",
        f"DISABLE_NETWORK_RESOURCE_PROVISIONING='on' is not a boolean; {BOOL}",
    ),
    ("ENABLE_IMDS_ONLY_MODE", "2", f"ENABLE_IMDS_ONLY_MODE='2' is not a boolean; {BOOL}"),
    ("MANAGE_UNTAGGED_ENI", "no", f"MANAGE_UNTAGGED_ENI='no' is not a boolean; {BOOL}"),
    (
        "DISABLE_LEAKED_ENI_CLEANUP",
        "yes",
        f"DISABLE_LEAKED_ENI_CLEANUP='yes' is not a boolean; {BOOL}",
    ),
    (
        "ADDITIONAL_ENI_TAGS",
        "{team: net}",
        "ADDITIONAL_ENI_TAGS='{team: net}' is not JSON; " + TAGS,
    ),
    (
        "ADDITIONAL_ENI_TAGS",
        '{"k8s.amazonaws.com/x": "1"}',
        'ADDITIONAL_ENI_TAGS=\'{"k8s.amazonaws.com/x": "1"}\' has the tag key '
        "'k8s.amazonaws.com/x': keys containing k8s.amazonaws.com name the CNI's own tags "
        f"(upstream drops them); {TAGS}",
    ),
    (
        "ADDITIONAL_ENI_TAGS",
        '{"n": 1}',
        f"ADDITIONAL_ENI_TAGS='{{\"n\": 1}}' gives tag 'n' a int, not a string; {TAGS}",
    ),
    (
        "ANNOTATE_POD_IP",
        "true",
        "ANNOTATE_POD_IP='true' cannot be honoured: vpccni does not write the "
        "vpc.amazonaws.com/pod-ips annotation (it has no permission to patch pods); unset it or "
        "set false",
    ),
    (
        "ENABLE_MULTI_NIC",
        "1",
        "ENABLE_MULTI_NIC='1' cannot be honoured: vpccni manages ENIs on network card 0 only; "
        "multi-NIC is not supported yet; unset it or set false",
    ),
    (
        "DISABLE_POD_V6",
        "true",
        "DISABLE_POD_V6='true' cannot be honoured: vpccni does not chain the tuning plugin that "
        "turns IPv6 off in pods; unset it or set false",
    ),
    (
        "ENABLE_V6_EGRESS",
        "TRUE",
        "ENABLE_V6_EGRESS='TRUE' cannot be honoured: vpccni gives pods no IPv6 egress (no "
        "egress plugin); unset it or set false",
    ),
    ("ENABLE_V4_EGRESS", "yes", f"ENABLE_V4_EGRESS='yes' is not a boolean; {BOOL}"),
    ("ANNOTATE_POD_IP", "on", f"ANNOTATE_POD_IP='on' is not a boolean; {BOOL}"),
    (
        "NETWORK_POLICY_ENFORCING_MODE",
        "strict",
        "NETWORK_POLICY_ENFORCING_MODE='strict' cannot be honoured: strict denies pod traffic "
        "until policies allow it, and vpccni enforces no network policy; use none or standard, "
        "or keep upstream's aws-node where you need policies",
    ),
    (
        "NETWORK_POLICY_ENFORCING_MODE",
        "lax",
        "NETWORK_POLICY_ENFORCING_MODE='lax' is not a network-policy enforcing mode; accepted: "
        "none, standard, strict",
    ),
    (
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        "Strict",
        "POD_SECURITY_GROUP_ENFORCING_MODE='Strict' is not an enforcing mode; accepted: strict "
        "or standard (used only with ENABLE_POD_ENI, which vpccni refuses)",
    ),
    (
        "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE",
        "egress.log",
        "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE='egress.log' is not an absolute file path; "
        "accepted: an absolute file path",
    ),
    (
        "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE",
        "/var/log/",
        "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE='/var/log/' is not an absolute file path; "
        "accepted: an absolute file path",
    ),
    (
        "MY_POD_NAME",
        "Aws_Node",
        "MY_POD_NAME='Aws_Node' is not a pod name; accepted: a pod name (a DNS subdomain)",
    ),
    (
        "VPC_CNI_VERSION",
        "v1 beta",
        "VPC_CNI_VERSION='v1 beta' is not a version name; accepted: 1 to 64 letters, digits, "
        "'.', '_', '+' or '-', such as v1.19.2",
    ),
    ("DISABLE_INTROSPECTION", "Y", f"DISABLE_INTROSPECTION='Y' is not a boolean; {BOOL}"),
    (
        "INTROSPECTION_BIND_ADDRESS",
        "localhost",
        f"INTROSPECTION_BIND_ADDRESS='localhost' is not HOST:PORT; {BIND}",
    ),
    (
        "INTROSPECTION_BIND_ADDRESS",
        "garbage:61679",
        f"INTROSPECTION_BIND_ADDRESS='garbage:61679' has host 'garbage', which is not an IP "
        f"address; {BIND}",
    ),
    (
        "INTROSPECTION_BIND_ADDRESS",
        "127.0.0.1:http",
        f"INTROSPECTION_BIND_ADDRESS='127.0.0.1:http' has port 'http', which is not 1 to 65535; "
        f"{BIND}",
    ),
    (
        "INTROSPECTION_BIND_ADDRESS",
        "unix:" + "/x" * 60,
        f"INTROSPECTION_BIND_ADDRESS='unix:{'/x' * 60}' is too long for a Unix socket; {BIND}",
    ),
    (
        "AWS_VPC_K8S_CNI_LOGLEVEL",
        "verbose",
        f"AWS_VPC_K8S_CNI_LOGLEVEL='verbose' is not a log level; {LOGLEVEL}",
    ),
    (
        "VPCCNI_SDK_LOGLEVEL",
        "trace",
        f"VPCCNI_SDK_LOGLEVEL='trace' is not a log level; {LOGLEVEL}",
    ),
    (
        "AWS_VPC_K8S_CNI_LOG_FILE",
        "var/log/ipamd.log",
        "AWS_VPC_K8S_CNI_LOG_FILE='var/log/ipamd.log' is not stdout, stderr or an absolute file "
        "path; accepted: stdout, stderr, or an absolute file path",
    ),
    (
        "VPCCNI_CLOCK",
        "virtual",
        "VPCCNI_CLOCK='virtual' is not one of the accepted values; accepted: system, emulator",
    ),
    (
        "VPCCNI_CLOCK",
        "emulator",
        "VPCCNI_CLOCK='emulator' needs the emulator's address but no EC2 endpoint is set; set "
        "AWS_ENDPOINT_URL_EC2 to the emulator (e.g. http://127.0.0.1:5309) or unset VPCCNI_CLOCK",
    ),
    (
        "VPCCNI_POD_SWEEP_GRACE_SECONDS",
        "5",
        "VPCCNI_POD_SWEEP_GRACE_SECONDS='5' is too small; accepted: 10 to 86400",
    ),
    (
        "VPCCNI_POD_SWEEP_GRACE_SECONDS",
        "sixty",
        "VPCCNI_POD_SWEEP_GRACE_SECONDS='sixty' is not an integer; accepted: 10 to 86400",
    ),
    (
        "AWS_VPC_K8S_CNI_BACKING_STORE",
        "ipam.json",
        "AWS_VPC_K8S_CNI_BACKING_STORE='ipam.json' is not an absolute file path; accepted: an "
        "absolute file path, such as /var/run/aws-node/ipam.json",
    ),
    (
        "MY_NODE_NAME",
        "Node_1",
        "MY_NODE_NAME='Node_1' is not a Node name (lowercase letters, digits, '-' and '.'); "
        "accepted: a Node name (a DNS subdomain)",
    ),
    (
        "KUBERNETES_SERVICE_HOST",
        "not a host",
        "KUBERNETES_SERVICE_HOST='not a host' is not an IP address or host name; accepted: an IP "
        "address or host name",
    ),
    (
        "KUBERNETES_SERVICE_PORT",
        "https",
        "KUBERNETES_SERVICE_PORT='https' is not an integer; accepted: 1 to 65535",
    ),
    (
        "CLUSTER_ENDPOINT",
        "ABCD.eks.amazonaws.com",
        "CLUSTER_ENDPOINT='ABCD.eks.amazonaws.com' is not an http:// or https:// URL; "
        "accepted: an http:// or https:// URL such as http://127.0.0.1:5309",
    ),
]


@pytest.mark.parametrize(("name", "value", "problem"), REFUSED_VARIABLES)
def test_bad_variables_are_refused_never_replaced(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({name: value})
    assert caught.value.problems == (problem,)
    assert str(caught.value).endswith(
        "Nothing was changed; fix each value named here and start again"
    )


SECONDS = "accepted: a number of seconds from 0.05 to 86400, such as 5 or 0.2"

# (flag, value, settings field, expected)
VALID_FLAGS: list[tuple[str, str, str, Any]] = [
    ("socket", "/tmp/ipamd.sock", "daemon.socket_path", Path("/tmp/ipamd.sock")),
    ("checkpoint_dir", "/tmp/ck", "daemon.checkpoint_dir", Path("/tmp/ck")),
    ("spool_dir", "/tmp/spool", "daemon.spool_dir", Path("/tmp/spool")),
    ("introspection_bind", "unix:/tmp/i.sock", "daemon.introspection_bind", "unix:/tmp/i.sock"),
    ("metrics_bind", "none", "daemon.metrics_bind", None),
    ("metrics_bind", "127.0.0.1:9100", "daemon.metrics_bind", ("127.0.0.1", 9100)),
    ("metrics_bind", ":9100", "daemon.metrics_bind", ("0.0.0.0", 9100)),
    ("tick_seconds", "0.2", "daemon.tick_seconds", 0.2),
    ("reconcile_seconds", "1", "daemon.reconcile_seconds", 1.0),
    ("cleanup_seconds", "7200", "daemon.cleanup_seconds", 7200.0),
    ("max_pods", "110", "daemon.max_pods", 110),
    ("netns", "node1", "daemon.datapath_netns", "node1"),
    ("kube_api", "https://127.0.0.1:6443", "cluster.api_url", "https://127.0.0.1:6443"),
    ("kube_api", "http://127.0.0.1:8080", "cluster.source", "api"),
    ("kube_token_file", THIS_FILE, "cluster.token_file", Path(THIS_FILE)),
    ("kube_ca_file", THIS_FILE, "cluster.ca_file", Path(THIS_FILE)),
    ("eniconfig_dir", str(SRC), "cluster.eniconfig_dir", SRC),
    ("eniconfig_dir", str(SRC), "cluster.source", "files"),
]
FLAG_COMPANIONS: dict[str, dict[str, Any]] = {
    "kube_token_file": {"kube_api": "https://127.0.0.1:6443"},
    "kube_ca_file": {"kube_api": "https://127.0.0.1:6443"},
}
"""Flags that only mean something with another one: given with it in VALID_FLAGS."""


@pytest.mark.parametrize(("flag", "value", "path", "expected"), VALID_FLAGS)
def test_valid_flags_are_read(flag: str, value: str, path: str, expected: Any) -> None:
    flags = DaemonFlags(**{**FLAG_COMPANIONS.get(flag, {}), flag: value})
    assert field(parse_settings({}, flags), path) == expected


REFUSED_FLAGS: list[tuple[dict[str, Any], str]] = [
    (
        {"socket": ""},
        "--socket='' is empty or has spaces around it; accepted: a path of at most 107 bytes",
    ),
    (
        {"socket": "/" + "s" * 107},
        f"--socket='/{'s' * 107}' is too long for a Unix socket; accepted: a path of at most "
        "107 bytes",
    ),
    (
        {"checkpoint_dir": ""},
        "--checkpoint-dir='' is empty or has spaces around it; accepted: a path",
    ),
    ({"spool_dir": " /x"}, "--spool-dir=' /x' is empty or has spaces around it; accepted: a path"),
    (
        {"introspection_bind": "61679"},
        f"--introspection-bind='61679' is not HOST:PORT; {BIND}",
    ),
    (
        {"metrics_bind": ":0"},
        f"--metrics-bind=':0' has port '0', which is not 1 to 65535; {BIND_HOSTS}, or none",
    ),
    (
        {"metrics_bind": "127.0.0.1:notaport"},
        f"--metrics-bind='127.0.0.1:notaport' has port 'notaport', which is not 1 to 65535; "
        f"{BIND_HOSTS}, or none",
    ),
    (
        {"metrics_bind": ":99999"},
        f"--metrics-bind=':99999' has port '99999', which is not 1 to 65535; {BIND_HOSTS}, or none",
    ),
    (
        {"metrics_bind": "metrics.example:9100"},
        f"--metrics-bind='metrics.example:9100' has host 'metrics.example', which is not an IP "
        f"address; {BIND_HOSTS}, or none",
    ),
    (
        {"tick_seconds": "0"},
        f"--tick-seconds='0' is below 0.05 s (the loop would spin a core); {SECONDS}",
    ),
    (
        {"tick_seconds": "0.0001"},
        f"--tick-seconds='0.0001' is below 0.05 s (the loop would spin a core); {SECONDS}",
    ),
    ({"tick_seconds": "-1"}, f"--tick-seconds='-1' is not a number of seconds; {SECONDS}"),
    (
        {"tick_seconds": "99999999999999999999999"},
        f"--tick-seconds='99999999999999999999999' is above 86400 s (a day); {SECONDS}",
    ),
    ({"max_pods": "-5"}, "--max-pods='-5' is too small; accepted: 1 or more"),
    ({"tick_seconds": "nan"}, f"--tick-seconds='nan' is not a number of seconds; {SECONDS}"),
    (
        {"reconcile_seconds": "-1"},
        f"--reconcile-seconds='-1' is not a number of seconds; {SECONDS}",
    ),
    ({"cleanup_seconds": "1h"}, f"--cleanup-seconds='1h' is not a number of seconds; {SECONDS}"),
    ({"max_pods": "0"}, "--max-pods='0' is too small; accepted: 1 or more"),
    ({"max_pods": "1_000"}, "--max-pods='1_000' is not an integer; accepted: 1 or more"),
    (
        {"netns": ""},
        "--netns='' is empty or has spaces around it; accepted: a namespace name or path",
    ),
    (
        {"netns": "node", "host_datapath": True},
        "--netns and --host-datapath contradict each other; give one of them",
    ),
]


@pytest.mark.parametrize(("flags", "problem"), REFUSED_FLAGS)
def test_bad_flags_are_refused(flags: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({}, DaemonFlags(**flags))
    assert caught.value.problems == (problem,)


def test_every_bad_value_is_reported_at_once() -> None:
    env = {
        "WARM_IP_TARGET": "a",
        "AWS_MAX_ATTEMPTS": "b",
        "AWS_VPC_ENI_MTU": "c",
        "DISABLE_METRICS": "d",
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(env, DaemonFlags(max_pods="e"))
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "WARM_IP_TARGET",
        "AWS_MAX_ATTEMPTS",
        "AWS_VPC_ENI_MTU",
        "DISABLE_METRICS",
        "--max-pods",
    ]


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_the_tables_cover_every_variable_the_daemon_reads() -> None:
    env = RecordingEnv()
    parse_settings(env)
    valid = {name for name, *_ in VALID_VARIABLES}
    refused = {name for name, *_ in REFUSED_VARIABLES}
    deprecated = {"AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER", "ENABLE_NFTABLES"}  # any value: a note
    assert env.asked == valid
    assert refused == valid - deprecated
    flag_names = {name.lstrip("-").replace("-", "_") for name in DaemonFlags().values()}
    assert flag_names == {flag for flag, *_ in VALID_FLAGS}


def test_read_settings_reads_this_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARM_IP_TARGET", "7")
    monkeypatch.setenv("CLUSTER_NAME", "lab")
    settings = read_settings(DaemonFlags())
    assert (settings.ipam.warm_ip_target, settings.daemon.cluster_name) == (7, "lab")


def test_nothing_else_in_the_daemon_path_reads_the_environment() -> None:
    daemon_path = [
        *(SRC / "core").glob("*.py"),
        *(SRC / "adapters").glob("*.py"),
        *(SRC / "cloud").glob("*.py"),
        *(SRC / "daemon").glob("*.py"),
        SRC / "cli" / "ipamd_cmd.py",
        SRC / "ports.py",
    ]
    readers = re.compile(r"os\.environ|getenv|environ\.get")
    offenders = [str(p.relative_to(SRC)) for p in daemon_path if readers.search(p.read_text())]
    assert offenders == []


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["ipamd", "--metrics-bind", "garbage:80"], {}, "has host 'garbage'"),
        (["ipamd", "--tick-seconds", "0"], {}, "is below 0.05 s"),
        (["ipamd"], {"INTROSPECTION_BIND_ADDRESS": "garbage"}, "is not HOST:PORT"),
        (["ipamd"], {"AWS_VPC_K8S_CNI_LOGLEVEL": "garbage"}, "is not a log level"),
        (["ipamd"], {"VPCCNI_CLOCK": "bogus"}, "VPCCNI_CLOCK='bogus'"),
        (["ipamd"], {"DISABLE_INTROSPECTION": "maybe"}, "is not a boolean"),
        (["status", "--introspection", "garbage"], {}, "--introspection='garbage' is not"),
        (["status", "--introspection", ":99999"], {}, "which is not 1 to 65535"),
    ],
)
def test_bad_values_stop_the_command_before_start_up_with_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vpccni.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")  # never asked
    assert main.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "internal error" not in err
