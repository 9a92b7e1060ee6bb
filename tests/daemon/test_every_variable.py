"""Every upstream variable, set to a non-default value one at a time: honoured, or refused with
its name - never silently ignored (issue 16, "Done means").

The names are those of upstream's shipped manifest (``tests/data/aws-k8s-cni.yaml``: the
DaemonSet's containers' and init container's env) and of the behaviour reference's table §2.2
(``tests/data/upstream-variables.txt``); each is in ``vpccni.settings_upstream.CATALOGUE``, which
says how vpccni handles it and which program reads it. :data:`EXAMPLES` gives each a
non-default value (and what it needs to start in the lab).

* ``ipamd`` variables: a real ``vpccni ipamd`` is started against the emulator with the one
  variable set. Refused ones exit with the invalid-input status before serving, naming the
  variable (and start with their defaults); the others start and answer ``status``; deprecated
  ones log their warning. The daemon's parser is also shown to read each one: an honoured value
  changes the parsed settings, an accepted one is validated.
* ``node`` variables: the node commands' parser (``parse_node_settings``) fills one field.
* :data:`EVIDENCE` names, for every honoured variable, the test that shows the effect of a
  non-default value; a test checks each one exists.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cloud.conftest import Backend, backend_for, start_emulator
from tests.daemon.conftest import Node, node_env
from vpccni.cli.ipamd_cmd import daemon_flags
from vpccni.cli.main import build_parser
from vpccni.core.config import ConfigError, parse_ipam_config, refusals
from vpccni.core.limits import InstanceTable
from vpccni.emulator.server import EmulatorServer
from vpccni.node.env import NodeSettings, parse_node_settings
from vpccni.settings import DaemonFlags, parse_settings
from vpccni.settings_upstream import (
    ACCEPTED,
    BY_NAME,
    CATALOGUE,
    DEPRECATED,
    HONOURED,
    REFUSED,
)

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
LABEL = "k8s.amazonaws.com/eniConfig"
OWN_KEY = "example.com/eni-config"
CUSTOM = {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true"}
ENICONFIGS = ("--eniconfig-dir", "{eniconfigs}")
REFUSED_AT_START = ("ENABLE_IPv4", "ENABLE_IPv6", "ENABLE_POD_ENI")


@dataclass(frozen=True)
class Example:
    """A non-default value of one variable, and what the daemon needs besides to start with it.

    ``{ec2}`` (the emulator's EC2 endpoint), ``{dir}`` (the daemon's own directory) and
    ``{eniconfigs}`` (a directory with an ENIConfig ``pods`` in the node's subnet) are filled in.
    """

    value: str
    default: str | None = None
    """Refused variables: their default, with which the daemon starts."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Other variables it needs (set with and without it)."""
    flags: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    """Lab variables it replaces (AWS_EC2_ENDPOINT stands in for AWS_ENDPOINT_URL_EC2)."""
    says: str = ""
    """What the start-up log says with it."""
    node_field: str = ""
    """Node variables: the ``NodeSettings`` field it fills."""


EXAMPLES: dict[str, Example] = {
    "ADDITIONAL_ENI_TAGS": Example('{"team": "net", "cost-center": "42"}'),
    "ANNOTATE_POD_IP": Example("true", default="false"),
    "AWS_EC2_ENDPOINT": Example("{ec2}", drop=("AWS_ENDPOINT_URL_EC2",)),
    "AWS_EXTERNAL_SERVICE_CIDRS": Example("10.100.0.0/16,172.20.0.0/16"),
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": Example("true"),
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": Example("false"),
    "AWS_VPC_ENI_MTU": Example("1500"),
    "AWS_VPC_K8S_CNI_BACKING_STORE": Example("{dir}/aws-node/ipam.json"),
    "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER": Example(
        "false",
        says="AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER='false' has no effect: it is deprecated",
    ),
    "AWS_VPC_K8S_CNI_CONNMARK": Example("0x100"),
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": Example(
        "true", flags=(*ENICONFIGS, "--node-label", f"{LABEL}=pods")
    ),
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": Example("192.168.0.0/16"),
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": Example("true"),
    "AWS_VPC_K8S_CNI_LOGLEVEL": Example("ERROR"),
    "AWS_VPC_K8S_CNI_LOG_FILE": Example("{dir}/log/ipamd.log"),
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": Example("hashrandom"),
    "AWS_VPC_K8S_CNI_VETHPREFIX": Example("abc"),
    "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE": Example("/var/log/aws-routed-eni/egress-v4.log"),
    "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE": Example("/var/log/aws-routed-eni/egress-v6.log"),
    "AWS_VPC_K8S_PLUGIN_LOG_FILE": Example(
        "/var/log/vpccni/plugin.log", node_field="plugin_log_file"
    ),
    "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": Example("Info", node_field="plugin_log_level"),
    "CLUSTER_ENDPOINT": Example("https://ABCD.gr7.us-west-2.eks.amazonaws.com"),
    "CLUSTER_NAME": Example("prod"),
    "DISABLE_INTROSPECTION": Example("true"),
    "DISABLE_LEAKED_ENI_CLEANUP": Example("true"),
    "DISABLE_METRICS": Example("true"),
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": Example("true"),
    "DISABLE_POD_V6": Example("true", default="false"),
    "DISABLE_TCP_EARLY_DEMUX": Example("true", node_field="tcp_early_demux"),
    "ENABLE_BANDWIDTH_PLUGIN": Example("true", node_field="bandwidth"),
    "ENABLE_IMDS_ONLY_MODE": Example("true"),
    "ENABLE_IPv4": Example("false", default="true"),
    "ENABLE_IPv6": Example("true", default="false"),
    "ENABLE_MULTI_NIC": Example("true", default="false"),
    "ENABLE_NFTABLES": Example(
        "true", says="ENABLE_NFTABLES='true' has no effect: it is deprecated"
    ),
    "ENABLE_POD_ENI": Example("true", default="false"),
    "ENABLE_PREFIX_DELEGATION": Example("true"),
    "ENABLE_SUBNET_DISCOVERY": Example("false"),
    "ENABLE_V4_EGRESS": Example("false"),
    "ENABLE_V6_EGRESS": Example("true", default="false"),
    "ENI_CONFIG_ANNOTATION_DEF": Example(
        OWN_KEY, env=CUSTOM, flags=(*ENICONFIGS, "--node-annotation", f"{OWN_KEY}=pods")
    ),
    "ENI_CONFIG_LABEL_DEF": Example(
        OWN_KEY, env=CUSTOM, flags=(*ENICONFIGS, "--node-label", f"{OWN_KEY}=pods")
    ),
    "HOST_CNI_BIN_PATH": Example("/host/opt/other/bin", node_field="bin_dir"),
    "HOST_CNI_CONFDIR_PATH": Example("/host/etc/other/net.d", node_field="conf_dir"),
    "HTTP_TIMEOUT": Example("20"),
    "INTROSPECTION_BIND_ADDRESS": Example("unix:{dir}/elsewhere.sock"),
    "IP_COOLDOWN_PERIOD": Example("60"),
    "MANAGE_UNTAGGED_ENI": Example("false"),
    "MAX_ENI": Example("2"),
    "MINIMUM_IP_TARGET": Example("12"),
    "MY_NODE_NAME": Example("ip-10-0-1-17.us-west-2.compute.internal"),
    "MY_POD_NAME": Example("aws-node-x7k2p", says="running as pod aws-node-x7k2p"),
    "NETWORK_POLICY_ENFORCING_MODE": Example("strict", default="none"),
    "POD_MTU": Example("1500", node_field="pod_mtu"),
    "POD_SECURITY_GROUP_ENFORCING_MODE": Example("standard"),
    "VPC_CNI_VERSION": Example("v1.19.2"),
    "WARM_ENI_TARGET": Example("2"),
    "WARM_IP_TARGET": Example("3"),
    "WARM_PREFIX_TARGET": Example("2"),
}

# For every honoured variable: a test showing what a non-default value does.
EVIDENCE: dict[str, str] = {
    "ADDITIONAL_ENI_TAGS": (
        "tests/daemon/test_provisioning.py::test_additional_eni_tags_on_every_eni"
    ),
    "AWS_EC2_ENDPOINT": (
        "tests/cloud/test_endpoint_variables.py::test_aws_ec2_endpoint_is_where_ec2_calls_go"
    ),
    "AWS_EXTERNAL_SERVICE_CIDRS": (
        "tests/netns/test_datapath_rules.py::"
        "test_external_service_cidrs_route_by_main_and_a_restart_removes_stale_rules"
    ),
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": (
        "tests/daemon/test_unschedulable.py::"
        "test_manage_enis_non_schedulable_true_grows_while_cordoned"
    ),
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": (
        "tests/netns/test_datapath_rules.py::"
        "test_node_port_replies_from_a_pod_on_a_secondary_eni_leave_by_the_primary_interface"
    ),
    "AWS_VPC_ENI_MTU": "tests/netns/test_datapath_variables.py::test_eni_mtu_is_the_primary_links",
    "AWS_VPC_K8S_CNI_BACKING_STORE": (
        "tests/netns/test_takeover.py::test_vpccni_takes_over_a_node_upstream_ran"
    ),
    "AWS_VPC_K8S_CNI_CONNMARK": (
        "tests/netns/test_datapath_variables.py::test_connmark_is_the_mark_of_rules_and_routing"
    ),
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": (
        "tests/daemon/test_custom_networking.py::"
        "test_pod_enis_only_in_the_eniconfig_subnet_and_max_pods_is_the_calculators"
    ),
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": (
        "tests/netns/test_datapath_variables.py::test_excluded_cidrs_are_neither_snatted_nor_marked"
    ),
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": (
        "tests/netns/test_datapath_variables.py::test_external_snat_installs_no_snat"
    ),
    "AWS_VPC_K8S_CNI_LOGLEVEL": "tests/daemon/test_logs.py::test_no_token_in_the_log_at_any_level",
    "AWS_VPC_K8S_CNI_LOG_FILE": "tests/daemon/test_logs.py::test_no_token_in_the_log_at_any_level",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": (
        "tests/netns/test_datapath_variables.py::test_randomizesnat_chooses_the_snat_port_flag"
    ),
    "AWS_VPC_K8S_CNI_VETHPREFIX": (
        "tests/netns/test_datapath_variables.py::test_veth_prefix_names_pod_veths_and_their_rules"
    ),
    "AWS_VPC_K8S_PLUGIN_LOG_FILE": (
        "tests/node/test_conflist_variables.py::test_the_conflist_carries_the_node_variables"
    ),
    "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": (
        "tests/node/test_conflist_variables.py::test_the_conflist_carries_the_node_variables"
    ),
    "CLUSTER_ENDPOINT": (
        "tests/kube/test_cluster_endpoint.py::test_the_in_cluster_client_talks_to_cluster_endpoint"
    ),
    "CLUSTER_NAME": (
        "tests/daemon/test_subnets.py::"
        "test_new_enis_go_to_the_tagged_subnet_with_the_most_free_addresses"
    ),
    "DISABLE_INTROSPECTION": (
        "tests/daemon/test_health.py::test_disabled_introspection_still_serves_the_probes"
    ),
    "DISABLE_LEAKED_ENI_CLEANUP": (
        "tests/daemon/test_provisioning.py::test_disable_leaked_eni_cleanup"
    ),
    "DISABLE_METRICS": "tests/daemon/test_daemon_variables.py::test_disable_metrics_opens_no_port",
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": (
        "tests/daemon/test_provisioning.py::"
        "test_disable_network_resource_provisioning_changes_nothing_in_ec2"
    ),
    "DISABLE_TCP_EARLY_DEMUX": (
        "tests/node/test_node_init.py::test_node_init_inside_a_network_namespace"
    ),
    "ENABLE_BANDWIDTH_PLUGIN": (
        "tests/node/test_conflist_variables.py::test_the_conflist_carries_the_node_variables"
    ),
    "ENABLE_IMDS_ONLY_MODE": (
        "tests/daemon/test_provisioning.py::test_imds_only_mode_reads_no_eni_from_ec2"
    ),
    "ENABLE_PREFIX_DELEGATION": (
        "tests/daemon/test_kubernetes_source.py::test_prefix_mode_m5_large_serves_the_nodes_110_pods"
    ),
    "ENABLE_SUBNET_DISCOVERY": (
        "tests/daemon/test_subnets.py::"
        "test_without_discovery_a_nearly_full_subnet_is_taken_then_exhausted"
    ),
    "ENI_CONFIG_ANNOTATION_DEF": (
        "tests/daemon/test_daemon_variables.py::test_eni_config_annotation_def_picks_the_eniconfig"
    ),
    "ENI_CONFIG_LABEL_DEF": (
        "tests/daemon/test_daemon_variables.py::test_eni_config_label_def_picks_the_eniconfig"
    ),
    "HOST_CNI_BIN_PATH": (
        "tests/node/test_node_run.py::"
        "test_node_run_installs_waits_writes_the_conflist_and_forwards_sigterm"
    ),
    "HOST_CNI_CONFDIR_PATH": (
        "tests/node/test_node_run.py::"
        "test_node_run_installs_waits_writes_the_conflist_and_forwards_sigterm"
    ),
    "HTTP_TIMEOUT": "tests/cloud/test_endpoint_variables.py::test_http_timeout_is_ec2s_and_imdss",
    "INTROSPECTION_BIND_ADDRESS": (
        "tests/daemon/test_daemon_variables.py::test_introspection_bind_address_wins_over_the_flag"
    ),
    "IP_COOLDOWN_PERIOD": (
        "tests/daemon/test_daemon_variables.py::test_ip_cooldown_period_holds_released_addresses"
    ),
    "MANAGE_UNTAGGED_ENI": "tests/daemon/test_provisioning.py::test_manage_untagged_eni",
    "MAX_ENI": "tests/daemon/test_no_address.py::test_max_eni",
    "MINIMUM_IP_TARGET": (
        "tests/daemon/test_daemon_variables.py::test_minimum_ip_target_is_the_pools_floor"
    ),
    "MY_NODE_NAME": (
        "tests/daemon/test_kubernetes_source.py::test_prefix_mode_m5_large_serves_the_nodes_110_pods"
    ),
    "MY_POD_NAME": "tests/daemon/test_daemon_variables.py::test_my_pod_name_is_in_the_start_up_log",
    "POD_MTU": (
        "tests/node/test_node_run.py::"
        "test_the_conflist_waits_for_ipamd_and_sigterm_while_waiting_writes_none"
    ),
    "VPC_CNI_VERSION": "tests/cloud/test_user_agent.py::test_vpc_cni_version_is_in_the_user_agent",
    "WARM_ENI_TARGET": (
        "tests/daemon/test_daemon_variables.py::test_warm_eni_target_keeps_that_many_enis_free"
    ),
    "WARM_IP_TARGET": (
        "tests/daemon/test_daemon_variables.py::test_warm_ip_target_keeps_that_many_addresses_free"
    ),
    "WARM_PREFIX_TARGET": (
        "tests/daemon/test_daemon_variables.py::test_warm_prefix_target_keeps_that_many_prefixes"
    ),
}


def reference_names() -> set[str]:
    lines = (DATA / "upstream-variables.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def manifest_names() -> set[str]:
    """The env of every container and init container of the manifest's DaemonSet."""
    found: set[str] = set()
    for document in yaml.safe_load_all((DATA / "aws-k8s-cni.yaml").read_text()):
        if not isinstance(document, dict) or document.get("kind") != "DaemonSet":
            continue
        pod = document["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            found.update(item["name"] for item in container.get("env", []))
    return found


def by_handling(*handlings: str, reader: str = "ipamd") -> list[str]:
    return [v.name for v in CATALOGUE if v.handling in handlings and v.reader == reader]


def test_every_upstream_variable_is_catalogued() -> None:
    manifest, reference = manifest_names(), reference_names()
    assert {"ADDITIONAL_ENI_TAGS", "DISABLE_TCP_EARLY_DEMUX", "MY_POD_NAME"} <= manifest
    assert len(reference) >= 58
    assert sorted((manifest | reference) - set(BY_NAME)) == []


def test_every_catalogued_variable_has_a_non_default_example() -> None:
    assert sorted(EXAMPLES) == sorted(BY_NAME)
    for name, example in EXAMPLES.items():
        variable = BY_NAME[name]
        assert (example.default is not None) == (variable.handling == REFUSED), name
        assert bool(example.node_field) == (variable.reader == "node"), name
        assert example.value != example.default, name


# -- the lab: one emulator for the module, a fresh instance and directory for every start ------


@dataclass
class Lab:
    server: EmulatorServer
    backend: Backend
    subnet: str
    root: Path
    eniconfigs: Path
    started: list[Node] = field(default_factory=list)

    def fill(self, text: str, directory: Path) -> str:
        return (
            text.replace("{ec2}", self.server.endpoint)
            .replace("{dir}", str(directory))
            .replace("{eniconfigs}", str(self.eniconfigs))
        )

    def node(self, env: Mapping[str, str], drop: tuple[str, ...] = ()) -> Node:
        """A new c5.large and a daemon directory; ``env`` on top of the lab's variables."""
        instance = self.backend.launch(self.subnet, "c5.large")
        directory = self.root / str(len(self.started))
        directory.mkdir()
        base = {k: v for k, v in node_env(self.server, instance).items() if k not in drop}
        filled = {k: self.fill(v, directory) for k, v in env.items()}
        node = Node(self.backend, self.server, instance, directory, {**base, **filled})
        self.started.append(node)
        return node


@pytest.fixture(scope="module")
def lab(table: InstanceTable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server = start_emulator(table)
    backend = backend_for(server)
    _, subnet = backend.network("10.0.0.0/17")
    root = tmp_path_factory.mktemp("ev")
    eniconfigs = root / "eniconfigs"
    eniconfigs.mkdir()
    (eniconfigs / "pods.yaml").write_text(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\n"
        f"metadata:\n  name: pods\nspec:\n  subnet: {subnet}\n"
    )
    made = Lab(server, backend, subnet, root, eniconfigs)
    yield made
    for node in made.started:
        if node.process is not None:
            node.stop(signal.SIGKILL)
    server.stop()


def start_with(lab: Lab, name: str, value: str) -> tuple[Node, Example]:
    example = EXAMPLES[name]
    node = lab.node({**example.env, name: value}, example.drop)
    node.start(*(lab.fill(flag, node.directory) for flag in example.flags), wait=False)
    return node, example


def serves(node: Node) -> None:
    node.wait_ready()
    assert node.rpc({"op": "status"})["ok"]
    assert node.stop() == 0


@pytest.mark.parametrize("name", by_handling(REFUSED))
def test_a_refused_variable_stops_the_daemon_naming_it(lab: Lab, name: str) -> None:
    node, _ = start_with(lab, name, EXAMPLES[name].value)
    assert node.process is not None
    code = node.process.wait(timeout=60)
    node.process = None
    log = node.log()
    assert code == ConfigError.exit_code, log
    assert "error: invalid configuration: " in log, log
    assert name in log.partition("error: invalid configuration: ")[2], log
    assert "serving the plugin API" not in log
    assert not node.socket.exists()


def test_the_refused_variables_at_their_defaults_start(lab: Lab) -> None:
    defaults = {name: EXAMPLES[name].default or "" for name in by_handling(REFUSED)}
    node = lab.node(defaults)
    node.start(wait=False)
    serves(node)
    assert "cannot be honoured" not in node.log()


def test_standard_network_policy_mode_starts_with_a_warning(lab: Lab) -> None:
    node, _ = start_with(lab, "NETWORK_POLICY_ENFORCING_MODE", "standard")
    serves(node)
    assert "WARNING vpccni.ipamd NETWORK_POLICY_ENFORCING_MODE=standard: vpccni enforces no" in (
        node.log()
    )


@pytest.mark.parametrize("name", by_handling(HONOURED, ACCEPTED, DEPRECATED))
def test_the_daemon_starts_and_serves_with_each_other_variable(lab: Lab, name: str) -> None:
    node, example = start_with(lab, name, EXAMPLES[name].value)
    serves(node)
    log = node.log()
    assert "invalid configuration" not in log, log
    if example.says:
        assert example.says in log, log
    if BY_NAME[name].handling == DEPRECATED:
        assert f"WARNING vpccni.ipamd {name}=" in log, log


# -- the daemon's parser reads each one (in this process: cheap) -------------------------------


def parsed(
    directory: Path, eniconfigs: Path, env: Mapping[str, str], flags: tuple[str, ...]
) -> Any:
    filled = [f.replace("{eniconfigs}", str(eniconfigs)) for f in flags]
    given: DaemonFlags = daemon_flags(build_parser().parse_args(["ipamd", *filled]))
    values = {k: v.replace("{dir}", str(directory)) for k, v in env.items()}
    values = {k: v.replace("{ec2}", "http://127.0.0.1:5309") for k, v in values.items()}
    return parse_settings(values, given, service_account=directory / "no-service-account")


@pytest.fixture
def parse(tmp_path: Path) -> Callable[[Mapping[str, str], tuple[str, ...]], Any]:
    eniconfigs = tmp_path / "eniconfigs"
    eniconfigs.mkdir()
    return lambda env, flags: parsed(tmp_path, eniconfigs, env, flags)


BASE = {
    "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5309",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:5309/imds/i-1/",
}


@pytest.mark.parametrize("name", by_handling(HONOURED, DEPRECATED))
def test_an_honoured_or_deprecated_value_changes_the_parsed_settings(
    parse: Callable[[Mapping[str, str], tuple[str, ...]], Any], name: str
) -> None:
    example = EXAMPLES[name]
    base = {k: v for k, v in BASE.items() if k not in example.drop} | dict(example.env)
    without = parse(base, example.flags)
    with_it = parse({**base, name: example.value}, example.flags)
    assert with_it != without


@pytest.mark.parametrize("name", by_handling(ACCEPTED))
def test_an_accepted_variable_is_validated(
    parse: Callable[[Mapping[str, str], tuple[str, ...]], Any], name: str
) -> None:
    assert parse({**BASE, name: EXAMPLES[name].value}, ()) == parse(BASE, ())
    with pytest.raises(ConfigError) as refused:
        parse({**BASE, name: "?bad"}, ())
    assert refused.value.problems[0].startswith(f"{name}='?bad' ")


@pytest.mark.parametrize("name", by_handling(REFUSED))
def test_a_refused_variable_is_refused_by_the_parser_or_at_start(
    parse: Callable[[Mapping[str, str], tuple[str, ...]], Any], name: str
) -> None:
    """Most are refused by the parser; ENABLE_IPv4, ENABLE_IPv6 and ENABLE_POD_ENI by the start's
    checks, as upstream's (``refusals``, which ``vpccni manifests`` also runs)."""
    value = {name: EXAMPLES[name].value}
    if name in REFUSED_AT_START:
        assert parse({**BASE, **value}, ())
        assert [reason for reason in refusals(parse_ipam_config(value)) if name in reason]
        return
    with pytest.raises(ConfigError) as refused:
        parse({**BASE, **value}, ())
    assert [problem for problem in refused.value.problems if name in problem]


# -- node variables: the node commands' parser ------------------------------------------------


@pytest.mark.parametrize(
    "name", by_handling(HONOURED, ACCEPTED, DEPRECATED, REFUSED, reader="node")
)
def test_a_node_variable_fills_its_node_setting(name: str) -> None:
    example = EXAMPLES[name]
    default = parse_node_settings({}, 9001)
    changed = parse_node_settings({name: example.value}, 9001)
    differs = [
        f.name for f in fields(NodeSettings) if getattr(changed, f.name) != getattr(default, f.name)
    ]
    assert differs == [example.node_field]


# -- evidence: a test shows each honoured variable's effect -----------------------------------


def test_every_honoured_variable_has_a_test_that_shows_its_effect() -> None:
    honoured = {v.name for v in CATALOGUE if v.handling == HONOURED}
    assert sorted(EVIDENCE) == sorted(honoured)
    for name, node_id in EVIDENCE.items():
        path, _, function = node_id.partition("::")
        assert (ROOT / path).is_file(), f"{name}: {path} does not exist"
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert function.startswith("test_"), node_id
        assert callable(getattr(module, function, None)), f"{name}: no test {node_id}"
