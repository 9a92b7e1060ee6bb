"""Introspection answers with upstream's shapes, field by field (issue #16 part 3).

Tools written for upstream's aws-node parse these documents, so for every endpoint the keys and
the JSON types of the values are compared with upstream's, written below as data from
aws/amazon-vpc-cni-k8s (v1.23):

* ``/v1/enis``: ``json.Marshal`` of ``DataStore.GetENIInfos()`` (``pkg/ipamd/introspect.go``),
  the structs ``ENIInfos``, ``ENI``, ``CidrInfo``, ``AddressInfo``, ``IPAMKey``, ``IPAMMetadata``
  of ``pkg/ipamd/datastore/data_store.go`` (``time.Time`` marshals as an RFC 3339 string,
  ``net.IPNet`` as ``{"IP", "Mask"}`` with the mask in base64, ``IPAMMetadata``'s fields are
  ``omitempty``);
* ``/v1/ipamd-env-settings``: ``GetConfigForDebug`` in ``pkg/ipamd/ipamd.go``;
* ``/v1/networkutils-env-settings``: ``GetConfigForDebug`` in ``pkg/networkutils/network.go``;
* ``/v1/eni-configs``: ``eniConfigRequestHandler`` in ``pkg/ipamd/introspect.go`` (a JSON
  string, ``eniconfig.EniConfigDefault`` = ``"default"`` for a Node that names none);
* any other path: ``rootResponse{AvailableCommands []string}`` in ``pkg/ipamd/introspect.go``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network
from typing import Any

from vpccni.daemon.introspection import GO_ZERO_TIME, go_time

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class MapOf:
    """A Go map: any keys (data, not field names), every value of one shape."""

    value: Any


@dataclass(frozen=True)
class Omitempty:
    """A Go struct whose fields are all ``omitempty``: each key may be absent."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class NullOr:
    """A Go slice, which marshals as ``null`` when nil."""

    value: Any


TIME = "time.Time"  # an RFC 3339 string
INT, BOOL, STR = int, bool, str

# pkg/ipamd/datastore/data_store.go (structs of GetENIInfos), keyed by network card ("0").
IPNET = {"IP": STR, "Mask": STR}
ADDRESS_INFO = {
    "Address": STR,
    "IPAMKey": {"networkName": STR, "containerID": STR, "ifName": STR},
    "IPAMMetadata": Omitempty({"k8sPodNamespace": STR, "k8sPodName": STR, "interfacesCount": INT}),
    "AssignedTime": TIME,
    "UnassignedTime": TIME,
}
CIDR_INFO = {
    "Cidr": IPNET,
    "IPAddresses": MapOf(ADDRESS_INFO),
    "IsPrefix": BOOL,
    "AddressFamily": STR,
}
ENI = {
    "ID": STR,
    "IsPrimary": BOOL,
    "IsTrunk": BOOL,
    "IsEFA": BOOL,
    "DeviceNumber": INT,
    "AvailableIPv4Cidrs": MapOf(CIDR_INFO),
    "IPv6Cidrs": MapOf(CIDR_INFO),
    "IsExcludedForPodIPs": BOOL,
    "RouteTableID": INT,
    "SubnetID": STR,
}
UPSTREAM_ENIS = MapOf({"TotalIPs": INT, "AssignedIPs": INT, "ENIs": MapOf(ENI)})
# pkg/ipamd/ipamd.go GetConfigForDebug
UPSTREAM_IPAMD_ENV = {
    "WARM_IP_TARGET": INT,
    "WARM_ENI_TARGET": INT,
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": BOOL,
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": BOOL,
    "ENABLE_SUBNET_DISCOVERY": BOOL,
}
# Ours, after upstream's (documented in docs/ipamd.md): the other pool targets and
# Settings.provisioning.document().
OUR_IPAMD_ENV = {
    "MINIMUM_IP_TARGET": INT,
    "WARM_PREFIX_TARGET": INT,
    "ENABLE_PREFIX_DELEGATION": BOOL,
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": BOOL,
    "ENABLE_IMDS_ONLY_MODE": BOOL,
    "MANAGE_UNTAGGED_ENI": BOOL,
    "DISABLE_LEAKED_ENI_CLEANUP": BOOL,
    "ADDITIONAL_ENI_TAGS": MapOf(STR),
    "VPC_CNI_VERSION": STR,
}
# pkg/networkutils/network.go GetConfigForDebug (RANDOMIZESNAT: 0 none, 1 hashrandom, 2 prng)
UPSTREAM_NETWORKUTILS_ENV = {
    "AWS_VPC_K8S_CNI_CONNMARK": INT,
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": NullOr([STR]),
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": BOOL,
    "AWS_EXTERNAL_SERVICE_CIDRS": NullOr([STR]),
    "AWS_VPC_ENI_MTU": INT,
    "AWS_VPC_K8S_CNI_VETHPREFIX": STR,
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": BOOL,
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": INT,
}
# pkg/ipamd/introspect.go
UPSTREAM_PATHS = {
    "/v1/enis",
    "/v1/eni-configs",
    "/v1/networkutils-env-settings",
    "/v1/ipamd-env-settings",
}
UPSTREAM_ROOT = {"AvailableCommands": [STR]}


def mismatches(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Where ``value`` differs from ``shape`` (key sets and JSON types); empty when it fits."""
    if isinstance(shape, NullOr):
        return [] if value is None else mismatches(value, shape.value, path)
    if isinstance(shape, MapOf | Omitempty | dict):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, want an object"]
        return _object(value, shape, path)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, want an array"]
        return [m for i, v in enumerate(value) for m in mismatches(v, shape[0], f"{path}[{i}]")]
    return _leaf(value, shape, path)


def _leaf(value: Any, shape: Any, path: str) -> list[str]:
    """A time (an RFC 3339 string) or a JSON scalar of exactly ``shape``'s type."""
    if shape == TIME:
        ok = isinstance(value, str) and bool(RFC3339.match(value))
        return [] if ok else [f"{path}: {value!r} is not an RFC 3339 time"]
    ok = type(value) is shape  # exact: a bool is not an int
    return [] if ok else [f"{path}: {type(value).__name__} {value!r}, want {shape.__name__}"]


def _object(value: dict[str, Any], shape: Any, path: str) -> list[str]:
    """A Go map (any keys), an all-``omitempty`` struct (some keys) or a struct (all keys)."""
    if isinstance(shape, MapOf):
        return [m for k, v in value.items() for m in mismatches(v, shape.value, f"{path}[{k!r}]")]
    fields = shape.fields if isinstance(shape, Omitempty) else shape
    found = []
    if not isinstance(shape, Omitempty) and set(fields) - set(value):
        found.append(f"{path}: missing keys {sorted(set(fields) - set(value))}")
    if set(value) - set(fields):
        found.append(f"{path}: keys {sorted(set(value) - set(fields))} are not upstream's")
    return found + [
        m for k, v in value.items() if k in fields for m in mismatches(v, fields[k], f"{path}.{k}")
    ]


def test_the_shape_checker_catches_what_a_parser_would_trip_on() -> None:
    assert mismatches({"A": 1}, {"A": INT}) == []
    assert mismatches({"A": True}, {"A": INT})
    assert mismatches({"A": 1.5}, {"A": TIME})
    assert mismatches({"A": None}, {"A": TIME})
    assert mismatches({"A": 1, "B": 2}, {"A": INT})
    assert mismatches({}, Omitempty({"k": STR})) == []
    assert mismatches({"x": "1"}, Omitempty({"k": STR}))
    assert mismatches(None, NullOr([STR])) == []
    assert mismatches(["a", 1], NullOr([STR]))


def test_times_are_gos_rfc3339() -> None:
    assert go_time(None) == GO_ZERO_TIME == "0001-01-01T00:00:00Z"
    assert go_time(1_800_000_000.0) == "2027-01-15T08:00:00Z"
    assert go_time(1_800_000_000.25) == "2027-01-15T08:00:00.25Z"
    moment = go_time(1_800_000_000.123456)
    assert RFC3339.match(moment)
    back = datetime.fromisoformat(moment).astimezone(UTC).timestamp()
    assert abs(back - 1_800_000_000.123456) < 2e-6


def test_every_endpoint_has_upstreams_keys_and_types(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    for pod in ("web-0", "web-1"):
        assert node.add(pod)["ok"]
    held = node.add("web-2")["result"]["ips"][0]["address"].split("/")[0]
    assert node.delete("web-2")["ok"]  # its address cools down

    enis = node.introspect("/v1/enis")
    assert mismatches(enis, UPSTREAM_ENIS) == []
    card = enis["0"]
    assert card["AssignedIPs"] == 2
    primary = next(e for e in card["ENIs"].values() if e["IsPrimary"])
    assert (primary["DeviceNumber"], primary["RouteTableID"]) == (0, 254)  # main, as the datapath
    assert primary["SubnetID"] == node.enis()[0].subnet_id
    cidrs = primary["AvailableIPv4Cidrs"]
    assert {c["AddressFamily"] for c in cidrs.values()} == {"4"}
    for text, cidr in cidrs.items():
        network = IPv4Network(text)
        assert cidr["Cidr"] == {
            "IP": str(network.network_address),
            "Mask": base64.b64encode(network.netmask.packed).decode(),
        }
    addresses = {a: info for c in cidrs.values() for a, info in c["IPAddresses"].items()}
    assigned = [info for info in addresses.values() if info["IPAMKey"]["networkName"]]
    assert sorted(info["IPAMMetadata"]["k8sPodName"] for info in assigned) == ["web-0", "web-1"]
    for info in assigned:
        assert info["IPAMKey"]["containerID"] == info["IPAMKey"]["ifName"] == ""  # no forged DEL
        assert info["AssignedTime"] != GO_ZERO_TIME
        assert info["UnassignedTime"] == GO_ZERO_TIME
    cooling = addresses[held]  # still listed, with when it was released
    assert cooling["IPAMKey"] == {"networkName": "", "containerID": "", "ifName": ""}
    assert cooling["IPAMMetadata"] == {}
    assert cooling["UnassignedTime"] != GO_ZERO_TIME

    ipamd_env = node.introspect("/v1/ipamd-env-settings")
    assert mismatches(ipamd_env, {**UPSTREAM_IPAMD_ENV, **OUR_IPAMD_ENV}) == []
    assert list(ipamd_env)[: len(UPSTREAM_IPAMD_ENV)] == list(UPSTREAM_IPAMD_ENV)
    assert ipamd_env["ENABLE_SUBNET_DISCOVERY"] is True  # upstream's default
    assert ipamd_env["MANAGE_UNTAGGED_ENI"] is True

    networkutils = node.introspect("/v1/networkutils-env-settings")
    assert mismatches(networkutils, UPSTREAM_NETWORKUTILS_ENV) == []

    # No cluster source and custom networking off: upstream's answer for an unlabelled Node.
    assert node.introspect("/v1/eni-configs") == "default"

    root = node.introspect("/")
    assert mismatches(root, UPSTREAM_ROOT) == []
    assert set(root["AvailableCommands"]) >= UPSTREAM_PATHS


def test_ipamd_env_settings_reports_the_real_values(make_node: Any) -> None:
    node = make_node(
        "c5.large",
        ENABLE_SUBNET_DISCOVERY="false",
        WARM_IP_TARGET="3",
        MANAGE_UNTAGGED_ENI="false",
        ADDITIONAL_ENI_TAGS='{"team": "net"}',
    )
    node.start()
    found = node.introspect("/v1/ipamd-env-settings")
    assert mismatches(found, {**UPSTREAM_IPAMD_ENV, **OUR_IPAMD_ENV}) == []
    assert found["ENABLE_SUBNET_DISCOVERY"] is False
    assert found["WARM_IP_TARGET"] == 3
    assert found["MANAGE_UNTAGGED_ENI"] is False
    assert found["ADDITIONAL_ENI_TAGS"] == {"team": "net"}
