"""``vpccni node-init``: the sysctl adapter on a directory of its own, the steps with fakes, and
the real command inside a ``vt-`` network namespace of the test's own (with an emulator in it
for IMDS), reading every value back inside and checking the root namespace is untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vpccni.core.aws_types import CloudError
from vpccni.errors import VpccniError
from vpccni.node.init import HostView, host_sysctls, primary_interface
from vpccni.node.links import link_with_mac
from vpccni.node.sysctl import Sysctl, dotted

SRC = str(Path(__file__).parents[2] / "src")


def fake_proc_sys(root: Path, *, demux: bool = True) -> Sysctl:
    for key, value in (
        ("net/ipv4/conf/eth0.5/rp_filter", "0"),
        ("net/ipv4/ip_forward", "0"),
        *([("net/ipv4/tcp_early_demux", "1")] if demux else []),
    ):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(value + "\n")
    return Sysctl(root)


def test_sysctls_on_a_directory_of_their_own(tmp_path: Path) -> None:
    sysctl = fake_proc_sys(tmp_path)
    assert host_sysctls(sysctl, "eth0.5", tcp_early_demux=False) == [
        "set net.ipv4.conf.eth0/5.rp_filter=2 (was 0)",
        "set net.ipv4.ip_forward=1 (was 0)",
        "set net.ipv4.tcp_early_demux=0 (was 1)",
    ]
    assert (tmp_path / "net/ipv4/conf/eth0.5/rp_filter").read_text() == "2\n"
    assert sysctl.read(("net", "ipv4", "tcp_early_demux")) == "0"


def test_a_kernel_without_tcp_early_demux_is_left_alone(tmp_path: Path) -> None:
    sysctl = fake_proc_sys(tmp_path, demux=False)
    lines = host_sysctls(sysctl, "eth0.5", tcp_early_demux=True)
    assert lines[-1] == "net.ipv4.tcp_early_demux: not on this kernel; left alone"
    assert not (tmp_path / "net/ipv4/tcp_early_demux").exists()


def test_sysctl_keys_cannot_leave_the_root(tmp_path: Path) -> None:
    sysctl = Sysctl(tmp_path)
    with pytest.raises(VpccniError, match="not a sysctl key"):
        sysctl.write(("net", "..", "..", "x"), "1")
    with pytest.raises(VpccniError, match=r"cannot set net\.ipv4\.ip_forward=1"):
        sysctl.write(("net", "ipv4", "ip_forward"), "1")  # no such directory here
    assert (
        dotted(("net", "ipv4", "conf", "eth0.5", "rp_filter")) == "net.ipv4.conf.eth0/5.rp_filter"
    )


class FakeImds:
    def __init__(self, mac: str | None) -> None:
        self.mac = mac

    def identity(self) -> Any:
        if self.mac is None:
            raise CloudError("IMDS meta-data/mac: connection refused")

        class Identity:
            primary_mac = self.mac

        return Identity()

    def interfaces(self) -> list[Any]:
        return []


def fake_links(root: Path, links: dict[str, str]) -> Path:
    for name, mac in links.items():
        (root / name).mkdir(parents=True)
        (root / name / "address").write_text(mac + "\n")
    return root


def test_the_primary_interface_is_the_link_with_the_imds_mac(tmp_path: Path) -> None:
    links = fake_links(tmp_path, {"lo": "00:00:00:00:00:00", "ens5": "02:aa:bb:cc:dd:ee"})
    host = HostView(links=links)
    assert primary_interface(FakeImds("02:AA:BB:CC:DD:EE"), host) == ("ens5", "02:AA:BB:CC:DD:EE")
    assert link_with_mac("02:00:00:00:00:01", links) is None


def test_no_link_with_the_mac_fails_after_the_tries(tmp_path: Path) -> None:
    slept: list[float] = []
    host = HostView(links=fake_links(tmp_path, {"lo": "00:00:00:00:00:00"}), sleep=slept.append)
    with pytest.raises(VpccniError, match=r"no network link has the primary ENI's MAC .* 5 tries"):
        primary_interface(FakeImds("02:00:00:00:00:09"), host)
    assert slept == [3.0] * 4


def test_imds_unreachable_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VpccniError, match="cannot read the primary MAC from IMDS"):
        primary_interface(FakeImds(None), HostView(links=tmp_path))


def test_bad_settings_exit_1_and_change_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC, "HOST_CNI_BIN_PATH": str(bin_dir)}
    for bad, named in (
        ({"DISABLE_TCP_EARLY_DEMUX": "no"}, "DISABLE_TCP_EARLY_DEMUX='no' is not a boolean"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"}, "AWS_EC2_METADATA_SERVICE"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "vpccni.cli.main", "node-init", "--plugin", "python"],
            env={**env, **bad},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: invalid configuration: ")
        assert named in done.stderr
        assert done.stdout == ""
        assert list(bin_dir.iterdir()) == []


def in_netns(name: str, *command: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", name, *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout


def read_root(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


SCENARIO = {
    "vpcs": [
        {"name": "v", "cidr": "10.0.0.0/16", "subnets": [{"name": "s", "cidr": "10.0.1.0/24"}]}
    ],
    "instances": [{"name": "node", "type": "c5.large", "subnet": "s"}],
}


@pytest.mark.netns
def test_node_init_inside_a_network_namespace(
    netns_factory: Callable[[], str], tmp_path: Path
) -> None:
    name = netns_factory()
    root_before = {
        key: read_root(key) for key in ("net.ipv4.ip_forward", "net.ipv4.tcp_early_demux")
    }
    in_netns(name, "ip", "link", "set", "lo", "up")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": SRC}
    emulator = subprocess.Popen(
        [
            *("ip", "netns", "exec", name, sys.executable, "-m", "vpccni.cli.main", "emulator"),
            *("--port", "0", "--scenario", str(scenario), "--no-rate-limits"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert emulator.stdout is not None
        imds = ""
        while not imds:
            line = emulator.stdout.readline()
            assert line, "the emulator exited"
            if line.startswith("IMDS"):
                imds = line.split()[1]
        mac = in_netns(
            name,
            sys.executable,
            "-c",
            "from vpccni.adapters.imds_http import ImdsV2; "
            f"print(ImdsV2({imds!r}).get('meta-data/mac'))",
            env=env,
        ).strip()
        # the node's primary ENI: a link with IMDS's MAC, in the test's namespace only
        in_netns(
            name,
            "ip",
            "link",
            "add",
            "vtprim",
            "address",
            mac,
            "type",
            "veth",
            "peer",
            "name",
            "vtpeer",
        )
        in_netns(name, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.tcp_early_demux=1")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        out = in_netns(
            name,
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "node-init",
            "--plugin",
            "python",
            env={
                **env,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
                "HOST_CNI_BIN_PATH": str(bin_dir),
                "DISABLE_TCP_EARLY_DEMUX": "true",
            },
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    lines = out.splitlines()
    assert lines[:4] == [
        f"vpccni: primary interface vtprim (MAC {mac} from IMDS)",
        "vpccni: set net.ipv4.conf.vtprim.rp_filter=2 (was 0)",
        "vpccni: set net.ipv4.ip_forward=1 (was 0)",
        "vpccni: set net.ipv4.tcp_early_demux=0 (was 1)",
    ], out
    plugin = bin_dir / "vpccni-cni"
    assert lines[4].startswith(
        f"vpccni: installed {plugin}: Python plugin with /usr/bin/python3 3."
    )
    assert lines[5:] == ["vpccni: node-init done"]
    values = in_netns(
        name,
        "sysctl",
        "-n",
        "net.ipv4.conf.vtprim.rp_filter",
        "net.ipv4.ip_forward",
        "net.ipv4.tcp_early_demux",
    ).split()
    assert values == ["2", "1", "0"]
    # the root namespace: untouched, and it has no such link
    assert {key: read_root(key) for key in root_before} == root_before
    assert not Path("/proc/sys/net/ipv4/conf/vtprim").exists()
    assert (bin_dir / "vpccni-cni").stat().st_mode & 0o777 == 0o755
