"""A takeover fails closed: with an upstream checkpoint that cannot be trusted, or upstream's
ipamd still answering beside it, ``vpccni ipamd`` does not start, says why in one line, and
writes no checkpoint (the lab test tests/netns/test_takeover.py covers the takeover itself)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node


def start_refused(node: Node) -> str:
    node.start(wait=False)
    assert node.process is not None
    code = node.process.wait(timeout=60)
    node.process = None
    assert code == 1, node.log()
    errors = [line for line in node.log().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, node.log()
    assert not list((node.directory / "checkpoint").glob("ipam.*"))
    return errors[0]


def upstream_file(node: Node, content: str) -> Path:
    path = node.directory / "aws-node" / "ipam.json"
    path.parent.mkdir()
    path.write_text(content)
    path.chmod(0o644)
    node.env["AWS_VPC_K8S_CNI_BACKING_STORE"] = str(path)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"version":"vpc-cni-ipam/1","allocations":[', "it is not valid JSON"),
        ('{"version":"vpc-cni-ipam/9","allocations":[]}', "vpccni imports only"),
    ],
)
def test_an_untrusted_upstream_checkpoint_stops_the_daemon(
    make_node: Any, content: str, words: str
) -> None:
    node = make_node("c5.large")
    path = upstream_file(node, content)
    line = start_refused(node)
    assert f"upstream's checkpoint {path} cannot be trusted: " in line
    assert words in line
    assert f"mv {path} {path}.bad" in line


def test_upstreams_ipamd_still_answering_stops_the_daemon(make_node: Any) -> None:
    node = make_node("c5.large")
    path = upstream_file(node, '{"version":"vpc-cni-ipam/1","allocations":[]}')
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path.parent / "ipamd.sock"))
        listener.listen(1)
        line = start_refused(node)
    assert f"upstream's ipamd still answers on {path.parent / 'ipamd.sock'}" in line
    node.start()  # aws-node is gone (its socket file stays): the takeover goes ahead
    assert node.introspect("/v1/explain")["takeover"]["imported"] == []
