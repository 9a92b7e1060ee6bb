"""The node image, built once per test session from scratch by ``scripts/build-image.sh``.

``built_image`` (session scope; the end-to-end tests reuse it) builds into private podman
storage under a temporary directory (overlay driver, its own run root), with podman inside a ``vt-``
network namespace of its own (``nsenter --net``), so neither the machine's container storage nor
its root network namespace is touched. The debootstrap rootfs tarballs and the wheelhouse are
cached under ``VPCCNI_IMAGE_CACHE`` (default ``/var/cache/vpccni-image``): the first build on a
machine runs debootstrap, later ones reuse them. It needs root, podman, runc, debootstrap and
Go (scripts/test.sh installs them); with ``CI=true`` a missing one fails loudly, elsewhere the
image tests skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BUILD_TIMEOUT = 2400  # a first build downloads two Debian rootfs and the wheels
_counter = itertools.count()


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must build the node image, but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class BuiltImage:
    """The image (``ref``, ``image_id``, ``size`` in bytes) and podman over its storage."""

    ref: str
    image_id: str
    size: int
    build_seconds: float
    build_output: str
    netns: str
    root: Path
    runroot: Path
    containers_conf: Path

    def podman(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` in the image's storage, inside its network namespace."""
        command = [
            *("nsenter", f"--net=/var/run/netns/{self.netns}", "podman"),
            *("--root", str(self.root), "--runroot", str(self.runroot)),
            *("--storage-driver", "overlay", "--cgroup-manager", "cgroupfs"),
            *("--events-backend", "file"),
            *args,
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CONTAINERS_CONF": str(self.containers_conf),
            "HOME": str(self.root.parent),
        }
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )

    def run(self, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """``podman run --rm --network none [OPTIONS] IMAGE ARGS``."""
        return self.podman(
            "run", "--rm", "--runtime", "runc", "--network", "none", *options, self.ref, *args
        )


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """Build the node image once per session (see the module text)."""
    _require(os.geteuid() == 0, "it needs root (debootstrap, podman storage, a netns)")
    missing = [
        tool
        for tool in ("podman", "runc", "debootstrap", "nsenter", "ip", "go")
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()
    ]
    _require(not missing, f"{missing} missing; scripts/test.sh installs them")
    base = tmp_path_factory.mktemp("image")
    netns = f"vt-img{os.getpid()}-{next(_counter)}"
    runroot = Path(f"/run/vpccni-img-{os.getpid()}")  # podman wants a run root under 50 chars
    runroot.mkdir(exist_ok=True)
    conf = base / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    image: BuiltImage | None = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        env = {
            **os.environ,
            "PODMAN_NETNS": netns,
            "PODMAN_ROOT": str(base / "root"),
            "PODMAN_RUNROOT": str(runroot),
            "PODMAN_STORAGE_DRIVER": "overlay",
            "CONTAINERS_CONF": str(conf),
            "PYTHON": sys.executable,
        }
        start = time.monotonic()
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-image.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=BUILD_TIMEOUT,
            check=False,
            cwd=ROOT,
        )
        seconds = time.monotonic() - start
        assert done.returncode == 0, f"build-image.sh failed:\n{done.stdout}\n{done.stderr}"
        last = done.stdout.strip().splitlines()[-1].split()
        assert [last[0], last[2], last[4]] == ["image", "id", "size"], done.stdout
        image = BuiltImage(
            ref=last[1],
            image_id=last[3],
            size=int(last[5]),
            build_seconds=seconds,
            build_output=done.stdout,
            netns=netns,
            root=base / "root",
            runroot=runroot,
            containers_conf=conf,
        )
        yield image
    finally:
        if image is not None:
            image.podman("rmi", "--all", "--force")
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        shutil.rmtree(base / "root", ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)
