"""The doctor's probes that need no root: finding the daemon from /proc/locks and reading its
flags back, metrics, kubelet's max pods, the conf dir, the plugin, the checkpoint copy (which
leaves the daemon's files byte-identical), and the command's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from vpccni.adapters.checkpoint_file import FileCheckpointStore
from vpccni.core.checkpoint import AssignRecord
from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.doctor.evidence import CheckpointCopy, ConfDir, InstalledPlugin, Missing
from vpccni.doctor.probes import files, kubelet
from vpccni.doctor.probes.daemon import daemon_flags, lock_holder, parse_metrics
from vpccni.node.plugin_install import install_plugin

SRC = Path(__file__).parents[2] / "src"


def test_lock_holder_reads_proc_locks(tmp_path: Path) -> None:
    lock = tmp_path / "ipamd.sock.lock"
    lock.write_text("4242\n")
    found = lock.stat()
    device = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    table = tmp_path / "locks"
    table.write_text(
        f"1: POSIX  ADVISORY  WRITE 7 {device} 0 EOF\n"
        f"2: FLOCK  ADVISORY  WRITE 4242 {device} 0 EOF\n"
        f"2: -> FLOCK  ADVISORY  WRITE 99 {device} 0 EOF\n"
    )
    assert lock_holder(lock, table) == 4242
    table.write_text("1: FLOCK  ADVISORY  WRITE 5 00:00:1 0 EOF\n")
    assert lock_holder(lock, table) is None
    assert lock_holder(tmp_path / "absent.lock", table) is None


def test_a_real_flock_is_found(tmp_path: Path) -> None:
    lock = tmp_path / "ipamd.lock"
    holder = subprocess.Popen(
        ["flock", str(lock), "sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            found = lock_holder(lock)
            if found is not None:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert found is not None
        assert found in (holder.pid, *_children(holder.pid))
    finally:
        holder.kill()
        holder.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_daemon_flags_from_its_command_line() -> None:
    cmdline = (
        sys.executable,
        "-m",
        "vpccni.cli.main",
        "ipamd",
        "--socket",
        "/tmp/s.sock",
        "--introspection-bind=unix:/tmp/i.sock",
        "--metrics-bind",
        "127.0.0.1:9999",
        "--host-datapath",
        "--node-label",
        "a=b",
        "--unknown",
        "x",
    )
    flags = daemon_flags(cmdline)
    assert flags.socket == "/tmp/s.sock"
    assert flags.introspection_bind == "unix:/tmp/i.sock"
    assert flags.metrics_bind == "127.0.0.1:9999"
    assert flags.host_datapath is True
    assert flags.node_labels == ("a=b",)
    assert daemon_flags(("python", "other")).socket == "/run/vpccni/ipamd.sock"


def test_parse_metrics() -> None:
    text = "\n".join(
        [
            "# HELP awscni_build_info Build",
            'awscni_build_info{version="0.1.0"} 1.0',
            'awscni_ec2api_req_count{fn="AssignPrivateIpAddresses"} 3.0',
            'vpccni_ec2_unauthorized_total{action="CreateTags"} 2.0',
            "garbage line",
        ]
    )
    metrics = parse_metrics(text)
    assert metrics.build_version == "0.1.0"
    assert metrics.calls == {"AssignPrivateIpAddresses": 3.0}
    assert metrics.unauthorized == {"CreateTags": 2.0}


def test_kubelet_max_pods(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("kind: KubeletConfiguration\nmaxPods: 58\n")
    assert kubelet.kubelet_max_pods(config).value == 58  # type: ignore[union-attr]
    config.write_text("kind: KubeletConfiguration\n")
    assert kubelet.kubelet_max_pods(config).value == 110  # type: ignore[union-attr]
    config.write_text("maxPods: lots\n")
    assert isinstance(kubelet.kubelet_max_pods(config), Missing)
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "comm").write_text("kubelet\n")
    (proc / "77" / "cmdline").write_bytes(b"/usr/bin/kubelet\0--max-pods=29\0")
    found = kubelet.kubelet_max_pods(None, proc)
    assert (found.value, found.source) == (29, "kubelet --max-pods")  # type: ignore[union-attr]
    (proc / "77" / "cmdline").write_bytes(b"/usr/bin/kubelet\0--config\0" + bytes(config))
    config.write_text("maxPods: 17\n")
    assert kubelet.kubelet_max_pods(None, proc).value == 17  # type: ignore[union-attr]


def test_conf_dir_in_the_runtimes_order(tmp_path: Path) -> None:
    (tmp_path / "10-vpccni.conflist").write_text(
        json.dumps(
            {
                "name": "aws-cni",
                "plugins": [{"type": "vpccni-cni", "socket": "/s"}, {"type": "portmap"}],
            }
        )
    )
    (tmp_path / "05-bridge.conf").write_text(json.dumps({"name": "b", "type": "bridge"}))
    (tmp_path / "00-broken.json").write_text("{")
    (tmp_path / "README").write_text("not a config")
    found = files.conf_dir(tmp_path)
    assert isinstance(found, ConfDir)
    assert [f.name for f in found.files] == [
        "00-broken.json",
        "05-bridge.conf",
        "10-vpccni.conflist",
    ]
    assert found.files[0].error.startswith("cannot be read as JSON")
    assert found.files[1].plugin_types == ("bridge",)
    assert (found.files[2].plugin_types, found.files[2].socket) == (("vpccni-cni", "portmap"), "/s")
    assert isinstance(files.conf_dir(tmp_path / "absent"), Missing)


def test_installed_plugin_is_compared_with_what_vpccni_ships(tmp_path: Path) -> None:
    path = install_plugin(tmp_path, sys.executable)
    found = files.installed_plugin(tmp_path)
    assert isinstance(found, InstalledPlugin)
    assert (found.kind, found.same_as_shipped, found.version_error) == ("python", True, "")
    path.write_text(path.read_text() + "# changed\n")
    changed = files.installed_plugin(tmp_path)
    assert isinstance(changed, InstalledPlugin)
    assert changed.same_as_shipped is False
    path.write_text(f"#!{sys.executable}\nimport sys; sys.exit(3)\n")
    broken = files.installed_plugin(tmp_path)
    assert isinstance(broken, InstalledPlugin)
    assert "exit 3" in broken.version_error
    path.write_bytes(b"\x7fELF" + b"\0" * 60)
    path.chmod(0o755)
    static = files.installed_plugin(tmp_path, static_reference=tmp_path / "no-reference")
    assert isinstance(static, InstalledPlugin)
    assert (static.kind, static.same_as_shipped) == ("static", None)


def test_checkpoint_copy_leaves_the_daemons_files_alone(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    store.load()
    key = PodKey("aws-cni", "c1", "eth0")
    store.append(AssignRecord(Assignment(key, IPv4Address("10.0.1.5"), PodMeta("ns", "p"), 1.0)))
    store.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    found = files.checkpoint_copy(tmp_path)
    assert found == CheckpointCopy(str(tmp_path), frozenset({"10.0.1.5"}), 0)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    journal = tmp_path / "ipam.journal"
    journal.write_bytes(journal.read_bytes().replace(b"10.0.1.5", b"10.0.1.6"))
    damaged = files.checkpoint_copy(tmp_path)
    assert isinstance(damaged, CheckpointCopy)
    assert damaged.corrupt
    assert files.checkpoint_copy(tmp_path / "none") == CheckpointCopy(
        str(tmp_path / "none"), absent=True
    )


def doctor(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "doctor", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--manifest", "/nonexistent/ds.yaml"], "cannot read /nonexistent/ds.yaml"),
        (["--introspection", "nowhere"], "--introspection='nowhere'"),
        (["--metrics", "unix:/x"], "--metrics='unix:/x'"),
        (["--netns", "vt-no-such-namespace"], "--netns vt-no-such-namespace: cannot open"),
        (["--pod-netns", "/nonexistent/ns"], "--pod-netns /nonexistent/ns: cannot open"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_bad_options_are_one_line_refusals(argv: list[str], said: str) -> None:
    done = doctor(*argv)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_a_manifest_without_a_daemon_set_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    done = doctor("--manifest", str(manifest))
    assert done.returncode == 2
    assert "holds no DaemonSet" in done.stderr
