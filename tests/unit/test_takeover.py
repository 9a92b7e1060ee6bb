"""Taking over upstream's checkpoint at a first start: imported only when vpccni has none, pods
without a host veth dropped (upstream's own rule), refused - nothing written - when the file
cannot be trusted or upstream's ipamd still answers."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vpccni.adapters.checkpoint_file import JOURNAL_NAME, SNAPSHOT_NAME, FileCheckpointStore
from vpccni.core.model import PodKey
from vpccni.core.naming import host_veth_name
from vpccni.daemon.takeover import (
    REPORT_NAME,
    TakeoverOptions,
    TakeoverRefused,
    load_report,
    take_over,
)


def allocation(container: str, address: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "networkName": "aws-cni",
        "containerID": container,
        "ifName": "eth0",
        "ipv4": address,
        "allocationTimestamp": 1_700_000_000_000_000_000,
        "metadata": {"k8sPodNamespace": namespace, "k8sPodName": container, "interfacesCount": 1},
    }


def upstream_file(directory: Path, *allocations: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ipam.json"
    body = {"version": "vpc-cni-ipam/1", "allocations": list(allocations)}
    path.write_text(json.dumps(body) + "\n")
    path.chmod(0o644)
    return path


def datapath(*pods: str) -> Any:
    """The two things take_over reads of a datapath: the veth prefix and the up pod veths."""
    veths = {host_veth_name("default", pod, pod, "eth0") for pod in pods}
    return SimpleNamespace(veth_prefix="eni", host=SimpleNamespace(host_veths=lambda: veths))


def service(*cidrs: str) -> Any:
    """What take_over reads of the IPAM service: the adopted ENIs' CIDRs."""
    views = [SimpleNamespace(cidrs=[SimpleNamespace(cidr=c) for c in cidrs or ("10.0.1.0/24",)])]
    return SimpleNamespace(views=lambda: views)


@pytest.fixture
def options(tmp_path: Path) -> TakeoverOptions:
    return TakeoverOptions(tmp_path / "aws-node" / "ipam.json", tmp_path / "ipam")


def test_imports_live_pods_and_drops_those_without_a_veth(options: TakeoverOptions) -> None:
    upstream_file(
        options.upstream_file.parent,
        allocation("web", "10.0.1.5"),
        allocation("gone", "10.0.1.6"),
    )
    report = take_over(options, datapath("web"), service(), now=1000.0)
    assert report is not None
    assert report.imported == ("10.0.1.5 default/web",)
    assert report.dropped == (
        f"10.0.1.6 default/gone: no host veth {host_veth_name('default', 'gone', '', 'eth0')} "
        "(the pod is gone)",
    )
    assert report.summary() == (
        f"took over from upstream's aws-node ({options.upstream_file}): 1 pods imported, "
        "1 dropped (pod gone, or address on no ENI)"
    )
    state = FileCheckpointStore(options.checkpoint_dir).load()
    assert list(state.assignments) == [PodKey("aws-cni", "web", "eth0")]
    assert load_report(options.checkpoint_dir) == report
    assert json.loads(options.upstream_file.read_text())["allocations"][1]["containerID"] == "gone"


def test_an_address_on_no_attached_eni_is_dropped_as_upstream_drops_it(
    options: TakeoverOptions,
) -> None:
    upstream_file(
        options.upstream_file.parent,
        allocation("web", "10.0.1.5"),
        allocation("elsewhere", "10.9.0.5"),
    )
    report = take_over(options, datapath("web", "elsewhere"), service("10.0.1.5/32"), now=0.0)
    assert report is not None
    assert report.imported == ("10.0.1.5 default/web",)
    assert report.dropped == (
        "10.9.0.5 default/elsewhere: the address is on no ENI attached to this instance",
    )


def test_without_a_datapath_every_entry_is_kept(options: TakeoverOptions) -> None:
    upstream_file(options.upstream_file.parent, allocation("a", "10.0.1.5"))
    report = take_over(options, None, service(), now=0.0)
    assert report is not None
    assert (len(report.imported), report.veths_checked) == (1, False)
    assert "(no datapath: veths not checked)" in report.summary()


def test_nothing_to_take_over_and_never_twice(options: TakeoverOptions) -> None:
    assert take_over(options, datapath(), service(), now=0.0) is None  # no upstream file
    assert not options.checkpoint_dir.exists()
    upstream_file(options.upstream_file.parent, allocation("a", "10.0.1.5"))
    assert take_over(None, datapath("a"), service(), now=0.0) is None  # --recover: never
    first = take_over(options, datapath("a"), service(), now=5.0)
    upstream_file(options.upstream_file.parent, allocation("b", "10.0.1.7"))
    again = take_over(options, datapath("a", "b"), service(), now=9.0)
    assert again == first  # the report of the first start; nothing imported again
    state = FileCheckpointStore(options.checkpoint_dir).load()
    assert list(state.assignments) == [PodKey("aws-cni", "a", "eth0")]


def test_a_vpccni_checkpoint_without_a_report_is_left_alone(options: TakeoverOptions) -> None:
    upstream_file(options.upstream_file.parent, allocation("a", "10.0.1.5"))
    options.checkpoint_dir.mkdir()
    (options.checkpoint_dir / JOURNAL_NAME).write_text("")
    assert take_over(options, datapath("a"), service(), now=0.0) is None
    assert not (options.checkpoint_dir / SNAPSHOT_NAME).exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "cannot be trusted: it is not valid JSON"),
        (b'{"version":"vpc-cni-ipam/2","allocations":[]}', "vpccni imports only"),
        (
            json.dumps(
                {
                    "version": "vpc-cni-ipam/1",
                    "allocations": [allocation("a", "10.0.1.5"), allocation("b", "10.0.1.5")],
                }
            ).encode(),
            "allocation 2 repeats",
        ),
    ],
)
def test_a_file_that_does_not_decode_is_refused_and_nothing_written(
    options: TakeoverOptions, content: bytes, words: str
) -> None:
    options.upstream_file.parent.mkdir()
    options.upstream_file.write_bytes(content)
    with pytest.raises(TakeoverRefused) as refused:
        take_over(options, datapath("a", "b"), service(), now=0.0)
    message = str(refused.value)
    assert words in message
    assert "vpccni did not start and wrote nothing" in message
    assert f"mv {options.upstream_file} {options.upstream_file}.bad" in message
    assert not options.checkpoint_dir.exists() or not any(options.checkpoint_dir.iterdir())


def test_a_world_writable_file_or_a_symlink_is_refused(
    options: TakeoverOptions, tmp_path: Path
) -> None:
    path = upstream_file(options.upstream_file.parent, allocation("a", "10.0.1.5"))
    path.chmod(0o666)
    with pytest.raises(TakeoverRefused, match=r"anyone on the host may write it \(mode 666\)"):
        take_over(options, datapath("a"), service(), now=0.0)
    elsewhere = upstream_file(tmp_path / "elsewhere", allocation("a", "10.0.1.5"))
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(TakeoverRefused, match="it is not a regular file"):
        take_over(options, datapath("a"), service(), now=0.0)
    assert not options.checkpoint_dir.exists()


def test_refused_while_upstreams_ipamd_answers_but_not_for_a_stale_socket(
    tmp_path: Path,
) -> None:
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"vt-takeover-{os.getpid()}"
    short.mkdir()
    try:
        options = TakeoverOptions(short / "ipam.json", tmp_path / "ipam")
        upstream_file(short, allocation("a", "10.0.1.5"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(short / "ipamd.sock"))
        listener.listen(1)
        with pytest.raises(TakeoverRefused, match="upstream's ipamd still answers on"):
            take_over(options, datapath("a"), service(), now=0.0)
        listener.close()  # the socket file stays: aws-node was killed
        report = take_over(options, datapath("a"), service(), now=0.0)
        assert report is not None
        assert report.imported == ("10.0.1.5 default/a",)
    finally:
        for child in short.iterdir():
            child.unlink()
        short.rmdir()


def test_an_unreadable_report_is_no_report(options: TakeoverOptions) -> None:
    options.checkpoint_dir.mkdir()
    (options.checkpoint_dir / REPORT_NAME).write_text("{")
    assert load_report(options.checkpoint_dir) is None
