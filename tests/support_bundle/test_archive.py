"""The bundle's pieces without root: pod-name pseudonyms, secrets, caps (per file, head or
tail, and the whole bundle), the index, nothing left behind on failure, one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vpccni.bundle.archive import MIB, BundleWriter
from vpccni.bundle.redact import Redactor
from vpccni.cli.support_bundle_cmd import redact_secrets
from vpccni.errors import VpccniError

SRC = Path(__file__).parents[2] / "src"


def test_pod_names_become_stable_pseudonyms() -> None:
    redactor = Redactor(redact_secrets)
    redactor.learn(["web", "web-7d9f", ""])
    text = redactor.text("ADD web-7d9f and web; webserver untouched; pod=web.")
    alias = redactor.pseudonym("web")
    assert text == (
        f"ADD {redactor.pseudonym('web-7d9f')} and {alias}; webserver untouched; pod={alias}."
    )
    assert alias.startswith("pod-")
    assert Redactor(redact_secrets).pseudonym("web") != alias  # another bundle, another key
    document = {"name": "web", "network": "aws-cni", "pods": [{"k8sPodName": "web"}]}
    assert redactor.document(document) == {
        "name": alias,
        "network": "aws-cni",
        "pods": [{"k8sPodName": alias}],
    }


def test_names_kept_when_asked_but_secrets_never() -> None:
    redactor = Redactor(redact_secrets, keep_names=True)
    redactor.learn(["web"])
    text = redactor.text("pod web; X-aws-ec2-metadata-token: AQAEAabc==; token=xyz")
    assert "pod web" in text
    assert "AQAEAabc" not in text
    assert "xyz" not in text
    assert redactor.document({"name": "web"}) == {"name": "web"}


def read(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        found = {}
        for member in archive.getmembers():
            stream = archive.extractfile(member)
            assert stream is not None
            found[member.name] = stream.read()
        return found


def test_caps_keep_a_logs_tail_and_other_files_head(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    with BundleWriter(target, "top", caps={"logs": 10, "network": 10}) as writer:
        writer.add("logs/ipamd.log", b"0123456789abcdef")
        writer.add("network/ip-addr.txt", b"0123456789abcdef")
        writer.add("logs/small.log", b"ab", original=100)
        writer.lack("metrics", "the daemon is down")
        index = writer.finish({"vpccni": "0.1.0", "daemon": "down: x"})
    files = read(target)
    assert files["top/logs/ipamd.log"] == b"6789abcdef"
    assert files["top/network/ip-addr.txt"] == b"0123456789"
    notes = {item["path"]: item for item in json.loads(files["top/index.json"])["files"]}
    assert notes["logs/ipamd.log"]["truncated"] is True
    assert notes["logs/ipamd.log"]["note"] == "cut to the last 10 bytes of 16 bytes"
    assert notes["network/ip-addr.txt"]["note"] == "cut to the first 10 bytes of 16 bytes"
    assert notes["logs/small.log"]["original_size"] == 100
    assert index["missing"] == {"metrics": "the daemon is down"}
    text = files["top/index.txt"].decode()
    assert "daemon: down: x" in text
    assert "metrics: the daemon is down" in text
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_the_total_cap_leaves_files_out_and_says_so(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    with BundleWriter(target, "top", total_cap=MIB) as writer:
        writer.add("logs/a.log", b"a" * (MIB - 10))
        skipped = writer.add("logs/b.log", b"b" * 100)
        index = writer.finish({})
    assert skipped.size == 0
    assert index["left_out"] == [
        {
            "path": "logs/b.log",
            "size": 0,
            "original_size": 100,
            "truncated": True,
            "note": "left out: the bundle reached its 1 MiB cap",
        }
    ]
    assert "top/logs/b.log" not in read(target)


def test_a_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"

    def fail_midway() -> None:
        with BundleWriter(target, "top") as writer:
            writer.add("logs/a.log", b"x")
            raise RuntimeError("collector failed")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_target_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VpccniError, match="give --output a writable path"):
        BundleWriter(tmp_path / "missing-dir" / "b.tar.gz", "top").__enter__()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--output", "/tmp"], "is a directory"),
        (["--output", "/tmp/x.zip"], "the bundle is a .tar.gz"),
        (["--log", "/nonexistent.log"], "--log /nonexistent.log: not a readable file"),
        (["--netns", "vt-no-such-namespace"], "cannot open the network namespace"),
    ],
)
def test_bad_options_are_one_line_refusals(argv: list[str], said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "support-bundle", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert said in done.stderr
