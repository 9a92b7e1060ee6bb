"""install-cni on a node upstream's ``aws-node`` ran: its ``10-aws.conflist`` must not win.

The runtime uses only the first configuration file of the conf dir by name (``.conf``,
``.conflist``, ``.json``), and ``10-aws.conflist`` sorts before ``10-vpccni.conflist``. Once
vpccni's conflist is in place, upstream's is moved aside to ``10-aws.conflist.vpccni-replaced``
(an extension no runtime loads), durably, and install-cni says so; any other configuration that
still sorts first is named in a warning. A file that cannot be moved fails the command, naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.plugin.test_install import dirs, install  # noqa: F401 - the fixture
from vpccni.node import plugin_install

UPSTREAM = {  # as upstream's entrypoint writes it (misc/10-aws.conflist, filled in)
    "cniVersion": "0.4.0",
    "name": "aws-cni",
    "disableCheck": True,
    "plugins": [
        {
            "name": "aws-cni",
            "type": "aws-cni",
            "vethPrefix": "eni",
            "mtu": "9001",
            "podSGEnforcingMode": "strict",
            "pluginLogFile": "/var/log/aws-routed-eni/plugin.log",
            "pluginLogLevel": "DEBUG",
            "capabilities": {"io.kubernetes.cri.pod-annotations": True},
        },
        {"name": "egress-cni", "type": "egress-cni", "mtu": "9001", "enabled": "false"},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ],
}


def runtime_choice(conf_dir: Path) -> str:
    """The file a runtime loads: the first by name with a configuration extension."""
    return sorted(
        p.name for p in conf_dir.iterdir() if p.suffix in (".conf", ".conflist", ".json")
    )[0]


def test_upstreams_conflist_is_moved_aside_and_said(dirs: tuple[Path, Path]) -> None:  # noqa: F811
    bin_dir, conf_dir = dirs
    upstream = conf_dir / "10-aws.conflist"
    upstream.write_text(json.dumps(UPSTREAM, indent=2))
    original = upstream.read_bytes()
    (conf_dir / "99-loopback.conf").write_text('{"cniVersion": "1.0.0", "type": "loopback"}')
    assert runtime_choice(conf_dir) == "10-aws.conflist"
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait")
    assert done.returncode == 0, done.stderr
    replaced = conf_dir / "10-aws.conflist.vpccni-replaced"
    assert not upstream.exists()
    assert replaced.read_bytes() == original  # kept as it was, for a rollback
    assert runtime_choice(conf_dir) == "10-vpccni.conflist"
    assert (conf_dir / "99-loopback.conf").exists()  # after ours: not our business
    assert done.stdout.splitlines()[-1] == (
        f"moved upstream's {upstream} aside to {replaced}: it sorts before 10-vpccni.conflist, "
        "and the runtime uses only the first (to go back to aws-node, delete "
        "10-vpccni.conflist; aws-node writes 10-aws.conflist again when it starts)"
    )
    # again: nothing left to move, nothing said about it
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait")
    assert done.returncode == 0, done.stderr
    assert "moved" not in done.stdout
    assert replaced.read_bytes() == original


def test_any_aws_cni_configuration_sorting_first_is_moved_and_others_are_named(
    dirs: tuple[Path, Path],  # noqa: F811
) -> None:
    bin_dir, conf_dir = dirs
    renamed = conf_dir / "05-aws.conf"  # upstream's plugin under another name, single-plugin form
    renamed.write_text(json.dumps({"cniVersion": "0.4.0", "name": "aws-cni", "type": "aws-cni"}))
    other = conf_dir / "00-bridge.conflist"
    other.write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]})
    )
    broken = conf_dir / "01-broken.json"
    broken.write_text("{not json")
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait")
    assert done.returncode == 0, done.stderr
    assert not renamed.exists()
    assert (conf_dir / "05-aws.conf.vpccni-replaced").exists()
    assert other.exists()
    assert broken.exists()
    lines = done.stdout.splitlines()
    for path in (other, broken):
        assert (
            f"warning: {path} sorts before 10-vpccni.conflist and the runtime uses only the "
            "first: new pods get its network, not vpccni's; remove it if it is left over"
        ) in lines
    assert any(line.startswith(f"moved upstream's {renamed} aside") for line in lines)


def test_a_file_that_cannot_be_moved_fails_naming_it(dirs: tuple[Path, Path]) -> None:  # noqa: F811
    bin_dir, conf_dir = dirs
    upstream = conf_dir / "10-aws.conflist"
    upstream.write_text(json.dumps(UPSTREAM))
    blocker = conf_dir / "10-aws.conflist.vpccni-replaced"
    (blocker / "inside").mkdir(parents=True)  # rename cannot replace a non-empty directory
    done = install("--bin-dir", bin_dir, "--conf-dir", conf_dir, "--no-wait")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot move upstream's {upstream} aside to {blocker}: " in done.stderr
    assert "remove it by hand" in done.stderr
    assert upstream.exists()


def test_the_check_reads_upstreams_files_only(tmp_path: Path) -> None:
    assert plugin_install.is_upstream_conf(tmp_path / "10-aws.conflist")  # by name, even absent
    single = tmp_path / "x.conf"
    single.write_text(json.dumps({"type": "aws-cni"}))
    chained = tmp_path / "y.conflist"
    chained.write_text(json.dumps({"plugins": [{"type": "cilium-cni"}, {"type": "aws-cni"}]}))
    theirs = tmp_path / "z.conflist"
    theirs.write_text(json.dumps({"plugins": [{"type": "vpccni-cni"}]}))
    assert plugin_install.is_upstream_conf(single)
    assert plugin_install.is_upstream_conf(chained)
    assert not plugin_install.is_upstream_conf(theirs)
    assert not plugin_install.is_upstream_conf(tmp_path / "missing.conf")
