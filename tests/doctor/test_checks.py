"""The doctor's judgements, one by one: evidence in, verdict, evidence text and fix out (no I/O,
no root)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from vpccni.cli.main import main
from vpccni.configcheck.source import parse
from vpccni.doctor.checks import cni, daemon, host, iam, imds, manifest, pool
from vpccni.doctor.evidence import (
    CheckpointCopy,
    CloudView,
    ConfDir,
    ConfFile,
    DaemonProcess,
    DryRun,
    ForwardChain,
    HttpAnswer,
    InstalledPlugin,
    InstanceFacts,
    KubeletMaxPods,
    Metrics,
    Missing,
    PodImds,
    RpFilter,
)
from vpccni.doctor.result import Status, counts, passed, warned, worst


def status(result: Any) -> str:
    return str(result.status.value)


# --- host ------------------------------------------------------------------------------------


def chain(policy: str, *rules: str) -> ForwardChain:
    return ForwardChain(policy, tuple(rules))


def test_forward_accept_policy_passes() -> None:
    assert status(host.forward_policy(chain("ACCEPT", "-A FORWARD -j KUBE-FORWARD"), "eni")) == (
        "pass"
    )


def test_forward_drop_without_rules_fails_with_both_fixes() -> None:
    result = host.forward_policy(chain("DROP"), "eni")
    assert status(result) == "fail"
    assert "policy DROP" in result.evidence
    assert "-i eni+ or -o eni+" in result.evidence
    assert result.fix.startswith("iptables -P FORWARD ACCEPT")
    assert "iptables -I FORWARD -o eni+ -j ACCEPT" in result.fix


def test_forward_drop_with_accept_rules_for_both_directions_passes() -> None:
    found = chain("DROP", "-A FORWARD -i eni+ -j ACCEPT", "-A FORWARD -o eni+ -j ACCEPT")
    assert status(host.forward_policy(found, "eni")) == "pass"


def test_forward_drop_with_one_direction_names_the_other() -> None:
    result = host.forward_policy(chain("DROP", "-A FORWARD -i eni+ -j ACCEPT"), "eni")
    assert status(result) == "fail"
    assert "matches -o eni+" in result.evidence


def test_forward_veth_prefix_is_the_daemons() -> None:
    found = chain("DROP", "-A FORWARD -i eni+ -j ACCEPT", "-A FORWARD -o eni+ -j ACCEPT")
    assert status(host.forward_policy(found, "pod")) == "fail"


def test_a_catch_all_reject_counts_as_a_drop_policy() -> None:
    rhel = "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"
    result = host.forward_policy(chain("ACCEPT", "-A FORWARD -s 10.0.0.0/8 -j DROP", rhel), "eni")
    assert status(result) == "fail"
    assert f"the rule `{rhel}`" in result.evidence
    after = chain("ACCEPT", rhel, "-A FORWARD -i eni+ -j ACCEPT", "-A FORWARD -o eni+ -j ACCEPT")
    assert status(host.forward_policy(after, "eni")) == "fail"  # never reached
    before = chain("ACCEPT", "-A FORWARD -j ACCEPT", rhel)
    assert status(host.forward_policy(before, "eni")) == "pass"


def test_forward_unreadable_warns() -> None:
    assert status(host.forward_policy(Missing("`iptables` is not installed"), "eni")) == "warn"


def test_ip_forward() -> None:
    assert status(host.ip_forward("1")) == "pass"
    off = host.ip_forward("0")
    assert status(off) == "fail"
    assert "net.ipv4.ip_forward=1" in off.fix


@pytest.mark.parametrize(
    ("interface", "every", "verdict", "named"),
    [(2, 0, "pass", ""), (0, 0, "pass", ""), (0, 2, "pass", ""), (1, 0, "fail", "eth0")],
)
def test_rp_filter(interface: int, every: int, verdict: str, named: str) -> None:
    result = host.rp_filter(RpFilter("eth0", interface, every))
    assert status(result) == verdict
    assert named in result.fix


def test_strict_rp_filter_on_all_is_fixed_on_the_interface() -> None:
    """The kernel uses the larger of all's and the interface's: 2 on the interface wins."""
    result = host.rp_filter(RpFilter("ens5", 0, 1))
    assert status(result) == "fail"
    assert "effective 1" in result.evidence
    assert result.fix.startswith("sysctl -w net.ipv4.conf.ens5.rp_filter=2 ")
    assert status(host.rp_filter(RpFilter("ens5", 2, 1))) == "pass"


# --- cni -------------------------------------------------------------------------------------

OURS = ConfFile(
    "10-vpccni.conflist", "aws-cni", ("vpccni-cni", "portmap"), "/run/vpccni/ipamd.sock"
)


def conf(*found: ConfFile) -> ConfDir:
    return ConfDir("/etc/cni/net.d", found)


def test_conflist_first_and_ours_passes() -> None:
    result = cni.conflist(conf(OURS), "/run/vpccni/ipamd.sock", "/opt/cni/bin")
    assert status(result) == "pass"
    assert "vpccni-cni -> portmap" in result.evidence


def test_conflist_missing_dir_empty_dir_and_no_ours() -> None:
    gone = cni.conflist(Missing("cannot list"), "/s", "/b")
    empty = cni.conflist(conf(), "/s", "/b")
    other = cni.conflist(conf(ConfFile("10-aws.conflist", "aws-cni", ("aws-cni",))), "/s", "/b")
    assert [status(r) for r in (gone, empty, other)] == ["fail"] * 3
    assert "not ready" in empty.evidence
    assert "10-vpccni.conflist" in empty.fix
    assert "no configuration in /etc/cni/net.d chains vpccni-cni" in other.evidence


def test_conflist_sorting_after_another_cni_fails() -> None:
    upstream = ConfFile("10-aws.conflist", "aws-cni", ("aws-cni", "egress-cni"))
    result = cni.conflist(conf(upstream, OURS), "/run/vpccni/ipamd.sock", "/b")
    assert status(result) == "fail"
    assert "10-aws.conflist (aws-cni -> egress-cni) sorts before 10-vpccni.conflist" in (
        result.evidence
    )
    assert result.fix.startswith("move /etc/cni/net.d/10-aws.conflist out of the conf dir")


def test_conflist_unreadable_first_file_and_wrong_socket() -> None:
    broken = ConfFile("00-x.conf", error="cannot be read as JSON: ...")
    assert status(cni.conflist(conf(broken, OURS), "/run/vpccni/ipamd.sock", "/b")) == "fail"
    moved = cni.conflist(conf(OURS), "/var/run/other.sock", "/b")
    assert status(moved) == "fail"
    assert "--socket /var/run/other.sock" in moved.fix


def test_chained_plugins() -> None:
    missing = cni.chained_plugins(conf(OURS), frozenset({"vpccni-cni"}), "/opt/cni/bin")
    assert status(missing) == "fail"
    assert "portmap is not in /opt/cni/bin" in missing.evidence
    both = frozenset({"vpccni-cni", "portmap"})
    assert status(cni.chained_plugins(conf(OURS), both, "/b")) == "pass"
    assert status(cni.chained_plugins(conf(), both, "/b")) == "skip"


def plugin(same: bool | None = True, error: str = "") -> InstalledPlugin:
    return InstalledPlugin(
        "/opt/cni/bin/vpccni-cni", "python", same, "vpccni's cni.py", "{}", error, "abc"
    )


def test_plugin_version() -> None:
    assert status(cni.plugin_version(plugin(), "0.1.0", "0.1.0", "/b")) == "pass"
    assert status(cni.plugin_version(plugin(), Missing("down"), "0.1.0", "/b")) == "pass"
    other = cni.plugin_version(plugin(False), "0.1.0", "0.1.0", "/b")
    assert status(other) == "fail"
    assert "not the plugin vpccni 0.1.0 ships" in other.evidence
    newer = cni.plugin_version(plugin(), "0.2.0", "0.1.0", "/b")
    assert status(newer) == "fail"
    assert "the daemon is vpccni 0.2.0" in newer.evidence
    assert status(cni.plugin_version(plugin(None), "0.1.0", "0.1.0", "/b")) == "warn"
    assert status(cni.plugin_version(plugin(error="does not run"), "0.1.0", "0.1.0", "/b")) == (
        "fail"
    )
    assert status(cni.plugin_version(Missing("no file"), "0.1.0", "0.1.0", "/b")) == "fail"


# --- daemon ----------------------------------------------------------------------------------


def test_socket_answer_and_health() -> None:
    assert status(daemon.socket_answer({"ready": True, "available": 9}, "/s")) == "pass"
    down = daemon.socket_answer(Missing("unreachable: connection refused"), "/s")
    assert status(down) == "fail"
    assert "start the daemon" in down.fix
    assert status(daemon.socket_answer({"ready": False}, "/s")) == "warn"
    ok = HttpAnswer(200, b"{}")
    sick = HttpAnswer(503, b'{"status": "unhealthy", "reason": "the pool loop is stuck"}')
    assert status(daemon.health(ok, ok, up=True)) == "pass"
    failing = daemon.health(sick, ok, up=True)
    assert status(failing) == "fail"
    assert "/healthz 503: the pool loop is stuck" in failing.evidence
    assert status(daemon.health(Missing("x"), Missing("x"), up=False)) == "skip"


def test_checkpoint_against_the_daemon() -> None:
    copy = CheckpointCopy("/ck", frozenset({"10.0.1.5", "10.0.1.6"}), 1)
    assert status(daemon.checkpoint(copy, frozenset({"10.0.1.5", "10.0.1.6"}))) == "pass"
    differs = daemon.checkpoint(copy, frozenset({"10.0.1.5", "10.0.1.7"}))
    assert status(differs) == "fail"
    assert "only in the checkpoint ['10.0.1.6'], only in the daemon ['10.0.1.7']" in (
        differs.evidence
    )
    corrupt = daemon.checkpoint(CheckpointCopy("/ck", corrupt="line 3: bad crc"), Missing("x"))
    assert status(corrupt) == "fail"
    assert "--recover" in corrupt.fix
    assert status(daemon.checkpoint(CheckpointCopy("/ck", absent=True), frozenset())) == "pass"
    assert status(daemon.checkpoint(copy, Missing("the daemon is down"))) == "pass"


# --- pool ------------------------------------------------------------------------------------


def explain(mode: str = "secondary-ip", **changes: Any) -> dict[str, Any]:
    """c5.large (3 ENIs, 10 IPv4 each, max pods 29) with 2 full ENIs: 18 addresses."""
    document = {
        "mode": mode,
        "max_pods": 29,
        "max_enis": 3,
        "total": 18,
        "enis": [{"cidrs": 9, "total": 9}, {"cidrs": 9, "total": 9}],
    }
    return document | changes


def test_headroom_secondary_ip() -> None:
    need = pool.pool_headroom(explain(), 10, "subnet-1")
    assert need == pool.Headroom(27, {}, 9, 1)
    assert (need.pod_addresses, need.subnet_addresses) == (9, 10)


def test_headroom_full_node_and_room_on_current_enis() -> None:
    full = explain(total=27, enis=[{"cidrs": 9}] * 3)
    assert pool.pool_headroom(full, 10).subnet_addresses == 0
    room = explain(total=12, enis=[{"cidrs": 9}, {"cidrs": 3, "subnet": "subnet-2"}])
    assert pool.pool_headroom(room, 10, "subnet-1") == pool.Headroom(27, {"subnet-2": 6}, 9, 1)


def test_headroom_prefix_mode_counts_whole_prefixes() -> None:
    one_prefix = explain("prefix", max_pods=110, total=16, enis=[{"cidrs": 1}])
    need = pool.pool_headroom(one_prefix, 10, "s")
    assert need.target == 110
    assert need.pod_addresses == 6 * 16  # 94 addresses more: 5 prefixes and part of a 6th
    assert need.room == {"s": 96}
    assert need.new_enis == 0


def test_headroom_custom_networking_skips_the_primary_eni() -> None:
    primary_only = explain(
        max_pods=20,
        total=0,
        enis=[{"cidrs": 0, "primary": True}],
        placement={"custom_networking": True},
    )
    need = pool.pool_headroom(primary_only, 10, "node-subnet")
    assert need == pool.Headroom(20, {}, 18, 2)


def facts(free: int, **more: tuple[str, int]) -> InstanceFacts:
    subnets = {"subnet-1": ("10.0.1.0/24", free), **more}
    return InstanceFacts("i-1", "c5.large", subnets, None, subnet_id="subnet-1")


@pytest.mark.parametrize(
    ("free", "verdict"), [(9, "fail"), (10, "warn"), (19, "warn"), (20, "pass")]
)
def test_subnet_thresholds(free: int, verdict: str) -> None:
    [result] = pool.subnets(explain(), facts(free), 10)
    assert result.check == "pool.subnet.subnet-1"
    assert status(result) == verdict
    assert f"{free} free; the pool can still take 10 from it" in result.evidence
    assert "9 on 1 new ENI(s)" in result.evidence


def test_new_enis_go_where_the_placement_says() -> None:
    """Subnet discovery: new ENIs in the tagged subnet with the most free addresses, so a full
    node subnet is fine as long as its own ENIs need nothing more from it."""
    placement = {
        "subnet_discovery": True,
        "subnets": [
            {"id": "subnet-1", "node_subnet": True, "for_new_enis": True, "free": 0},
            {"id": "subnet-2", "for_new_enis": True, "free": 50, "cidr": "10.0.2.0/24"},
            {"id": "subnet-3", "for_new_enis": True, "free": 5, "cidr": "10.0.3.0/24"},
        ],
    }
    document = explain(placement=placement)
    results = {r.check: r for r in pool.subnets(document, facts(0), 10)}
    assert {k: status(r) for k, r in results.items()} == {
        "pool.subnet.subnet-1": "pass",
        "pool.subnet.subnet-2": "pass",
    }
    assert "can still take 10 from it" in results["pool.subnet.subnet-2"].evidence
    custom = {"custom_networking": True, "eniconfig": {"subnet": "subnet-3"}, **placement}
    results = {r.check: r for r in pool.subnets(explain(placement=custom), facts(0), 10)}
    assert status(results["pool.subnet.subnet-3"]) == "fail"  # 5 free, 10 wanted
    assert status(results["pool.subnet.subnet-1"]) == "pass"


def test_subnet_skips_without_evidence() -> None:
    assert [status(r) for r in pool.subnets(Missing("down"), facts(5), 10)] == ["skip"]
    broken = InstanceFacts("i-1", "c5.large", {}, None, subnets_error="UnauthorizedOperation")
    assert [status(r) for r in pool.subnets(explain(), broken, 10)] == ["skip"]


def test_kubelet_max_pods_against_the_enis() -> None:
    too_many = pool.max_pods(KubeletMaxPods(110, "kubelet's default"), explain(), 10)
    assert status(too_many) == "fail"
    assert "hold 27 pod addresses" in too_many.evidence
    assert "set kubelet's maxPods to 29" in too_many.fix
    assert status(pool.max_pods(KubeletMaxPods(29, "config"), explain(), 10)) == "pass"
    prefix = pool.max_pods(KubeletMaxPods(110, "config"), explain("prefix"), 10)
    assert status(prefix) == "pass"
    assert status(pool.max_pods(Missing("no kubelet"), explain(), 10)) == "skip"
    custom = explain(placement={"custom_networking": True})
    assert status(pool.max_pods(KubeletMaxPods(29, "config"), custom, 10)) == "fail"
    assert status(pool.max_pods(KubeletMaxPods(20, "config"), custom, 10)) == "pass"


# --- imds ------------------------------------------------------------------------------------


def cloud(**changes: Any) -> CloudView:
    base: dict[str, Any] = {
        "imds_endpoint": "http://169.254.169.254/",
        "identity": {"instance_id": "i-1", "instance_type": "c5.large", "region": "us-west-2"},
        "instance": facts(200),
        "dry_runs": {},
        "ec2_endpoint": "EC2 (AWS)",
        "as_daemon": True,
    }
    return CloudView(**(base | changes))


def test_daemon_imds() -> None:
    assert status(imds.daemon_imds(cloud())) == "pass"
    failing = imds.daemon_imds(cloud(identity=Missing("HTTP 403"), as_daemon=False))
    assert status(failing) == "fail"
    assert "asked from this process" in failing.evidence


def test_pod_imds_answer_fails_with_the_instance_in_the_fix() -> None:
    answered = PodImds("/var/run/netns/p", "169.254.169.254:80", "HTTP/1.1 200 OK", "")
    result = imds.pod_imds(answered, facts(1))
    assert status(result) == "fail"
    assert "IMDSv2 token PUT got 'HTTP/1.1 200 OK'" in result.evidence
    assert "--instance-id i-1 --http-tokens required --http-put-response-hop-limit 1" in (
        result.fix
    )
    v1 = PodImds("/p", "169.254.169.254:80", "", "HTTP/1.1 200 OK")
    assert status(imds.pod_imds(v1, facts(1))) == "fail"
    silent = PodImds("/p", "169.254.169.254:80", "", "", "timed out")
    assert status(imds.pod_imds(silent, facts(1))) == "pass"


def options(tokens: str, hops: int) -> InstanceFacts:
    found = {"HttpTokens": tokens, "HttpPutResponseHopLimit": hops}
    return InstanceFacts("i-1", "c5.large", {}, found)


def test_pod_imds_without_a_pod_uses_the_metadata_options() -> None:
    no_pod = Missing("no --pod-netns given")
    assert status(imds.pod_imds(no_pod, options("required", 1))) == "pass"
    assert status(imds.pod_imds(no_pod, options("required", 2))) == "warn"
    assert status(imds.pod_imds(no_pod, options("optional", 1))) == "warn"
    assert status(imds.pod_imds(no_pod, facts(1))) == "skip"


# --- iam -------------------------------------------------------------------------------------


def process(**environ: str) -> DaemonProcess:
    return DaemonProcess(1, ("vpccni", "ipamd"), environ, "/proc/1/ns/net", True)


@pytest.mark.parametrize(
    ("environ", "endpoint", "verdict", "said"),
    [
        ({"AWS_ROLE_ARN": "arn:r", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}, None, "pass", "IRSA"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://x"}, None, "pass", "Pod Identity"),
        ({"AWS_ACCESS_KEY_ID": "AKIA"}, None, "warn", "long-lived keys"),
        ({"AWS_ACCESS_KEY_ID": "x"}, "http://127.0.0.1:5309", "pass", "not AWS"),
        ({}, None, "warn", "the node role"),
        ({}, "https://ec2.us-west-2.amazonaws.com", "warn", "instance profile"),
    ],
)
def test_credentials(
    environ: dict[str, str], endpoint: str | None, verdict: str, said: str
) -> None:
    result = iam.credentials(process(**environ), endpoint)
    assert status(result) == verdict
    assert said in result.evidence
    assert "AKIA" not in result.evidence  # never a credential's value
    if verdict == "warn":
        assert "IRSA" in result.fix


def test_credentials_without_a_daemon_skip() -> None:
    assert status(iam.credentials(Missing("not running"), None)) == "skip"


def test_dry_runs() -> None:
    answers = {
        "CreateNetworkInterface": DryRun(
            "CreateNetworkInterface",
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. User: x is not authorized to "
            "perform: ec2:CreateNetworkInterface. Encoded authorization failure message: eyJh",
        ),
        "DescribeSubnets": DryRun("DescribeSubnets", "RequestLimitExceeded", "slow down"),
    }
    results = {r.check: r for r in iam.dry_runs(cloud(dry_runs=answers))}
    assert "iam.AssignPrivateIpAddresses" not in results  # no DryRun in EC2's API
    denied = results["iam.CreateNetworkInterface"]
    assert status(denied) == "fail"
    assert "Encoded" not in denied.evidence
    assert denied.fix.startswith("grant ec2:CreateNetworkInterface to the role")
    assert status(results["iam.DescribeSubnets"]) == "warn"
    assert status(results["iam.CreateTags"]) == "skip"
    [unreachable] = iam.dry_runs(cloud(dry_runs=Missing("EC2 unreachable")))
    assert (unreachable.check, status(unreachable)) == ("iam.dry-run", "warn")


def test_actions_without_dry_run_are_judged_from_the_daemons_calls() -> None:
    denial = {
        "action": "ec2:AssignPrivateIpAddresses",
        "call": "AssignPrivateIpAddresses",
        "denied_calls": 3,
        "message": "not authorized",
    }
    metrics = Metrics("0.1.0", {"AssignPrivateIpAddresses": 4.0}, {"AssignPrivateIpAddresses": 3.0})
    found = {r.check: r for r in iam.without_dry_run({"missing_permissions": [denial]}, metrics)}
    assert status(found["iam.AssignPrivateIpAddresses"]) == "fail"
    assert "denied the daemon's AssignPrivateIpAddresses 3 time(s)" in (
        found["iam.AssignPrivateIpAddresses"].evidence
    )
    assert status(found["iam.UnassignPrivateIpAddresses"]) == "pass"
    assert "not called" in found["iam.UnassignPrivateIpAddresses"].evidence
    allowed = iam.without_dry_run({"missing_permissions": []}, metrics)
    assert "3 denied earlier but allowed since" in allowed[0].evidence
    down = iam.without_dry_run(Missing("the daemon is down"), Missing("the daemon is down"))
    assert [status(r) for r in down] == ["skip", "skip"]


# --- manifest --------------------------------------------------------------------------------


@pytest.fixture
def rendered(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["manifests"]) == 0
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    found: dict[str, Any] = next(d for d in documents if d["kind"] == "DaemonSet")
    return found


def test_manifest_as_rendered_passes(rendered: dict[str, Any]) -> None:
    daemon_set = parse(yaml.safe_dump(rendered), "ds.yaml")
    results = [*manifest.policy(daemon_set), manifest.settings(daemon_set, None)]
    assert {r.check: status(r) for r in results} == {
        "manifest.probes": "pass",
        "manifest.capabilities": "pass",
        "manifest.policy": "pass",
        "manifest.settings": "pass",
    }


def test_manifest_problems_by_group(rendered: dict[str, Any]) -> None:
    main_container = rendered["spec"]["template"]["spec"]["containers"][0]
    main_container["readinessProbe"]["timeoutSeconds"] = 1
    main_container["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")
    main_container["env"].append({"name": "WARM_IP_TARGET", "value": "abc"})
    daemon_set = parse(yaml.safe_dump(rendered), "ds.yaml")
    results = {r.check: r for r in manifest.policy(daemon_set)}
    assert status(results["manifest.probes"]) == "fail"
    assert results["manifest.probes"].fix == "set vpccni-node's readinessProbe.timeoutSeconds: 10"
    assert status(results["manifest.capabilities"]) == "fail"
    assert status(results["manifest.policy"]) == "pass"
    settings = manifest.settings(daemon_set, None)
    assert status(settings) == "fail"
    assert "WARM_IP_TARGET" in settings.evidence
    assert status(manifest.settings(Missing("no --manifest given"), None)) == "skip"


# --- results ---------------------------------------------------------------------------------


def test_worst_and_counts() -> None:
    results = [passed("a.b", "t", "e"), warned("c.d", "t", "e", "f")]
    assert worst(results) is Status.WARN
    assert worst(results).exit_status == 1
    assert worst([]) is Status.PASS
    assert counts(results) == {"pass": 1, "skip": 0, "warn": 1, "fail": 0}
    assert results[1].group == "c"
