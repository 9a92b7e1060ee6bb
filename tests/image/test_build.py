"""The node image as ``scripts/build-image.sh`` builds it from scratch (``built_image``, once per
session): what runs in it, what it holds and what it leaves out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.image.conftest import BuiltImage
from vpccni import __version__
from vpccni.plugin import cni

FACTS = """
import glob, importlib.util, json, os, shutil, struct, subprocess, sys

def run(*command, **env):
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    return done.stdout + done.stderr

def elf_kind(path):
    data = open(path, 'rb').read()
    if data[:4] != b'\\x7fELF' or data[4] != 2:
        return 'not a 64-bit ELF'
    offset = struct.unpack_from('<Q', data, 0x20)[0]
    size, count = struct.unpack_from('<HH', data, 0x36)
    kinds = {struct.unpack_from('<I', data, offset + i * size)[0] for i in range(count)}
    return 'dynamic' if kinds & {2, 3} else 'static'  # PT_DYNAMIC, PT_INTERP

plugin = '/usr/lib/vpccni/vpccni-cni'
print(json.dumps({
    'version': run('vpccni', '--version').strip(),
    'vpccni': shutil.which('vpccni'),
    'uid': os.getuid(),
    'plugin': elf_kind(plugin),
    'plugin_version': json.loads(run(plugin, CNI_COMMAND='VERSION')),
    'compilers': [t for t in ('gcc', 'cc', 'c++', 'g++', 'go', 'gofmt') if shutil.which(t)],
    'pip': [p for p in ('pip', 'pip3') if shutil.which(p)]
    + glob.glob('/opt/vpccni/bin/pip*') + glob.glob('/root/.cache/pip') + glob.glob('/usr/lib/go*'),
    'planning': [m for m in ('openpyxl', 'matplotlib') if importlib.util.find_spec(m)],
    'python': sys.version.split()[0],
    'ip': run('ip', '-V').strip(),
    'iptables': run('iptables', '--version').strip(),
    'certificates': os.path.exists('/etc/ssl/certs/ca-certificates.crt'),
}))
"""


@pytest.fixture(scope="module")
def facts(built_image: BuiltImage) -> dict[str, Any]:
    """What one container of the image (default user) finds: one ``podman run`` for them all."""
    done = built_image.run("python3", "-c", FACTS)
    assert done.returncode == 0, done
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_the_build_reports_its_size_and_timings(
    built_image: BuiltImage, request: pytest.FixtureRequest
) -> None:
    mib = built_image.size / 1048576
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"node image {built_image.ref}: {mib:.1f} MiB, built in {built_image.build_seconds:.0f} s"
    )
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
        for timing in built_image.build_output.splitlines():
            if timing.startswith("build-image: "):
                reporter.write_line("  " + timing)
    assert built_image.ref == f"localhost/vpccni:{__version__}"
    assert "podman build" in built_image.build_output
    assert 30 < mib < 600, line


def test_vpccni_runs_in_the_image(facts: dict[str, Any]) -> None:
    assert facts["version"] == f"vpccni {__version__}"
    assert facts["vpccni"] == "/opt/vpccni/bin/vpccni"


def test_the_plugin_is_a_static_elf_that_answers_version(facts: dict[str, Any]) -> None:
    assert facts["plugin"] == "static"
    assert facts["plugin_version"]["supportedVersions"] == list(cni.SUPPORTED_VERSIONS)


def test_no_compilers_pip_or_planning_libraries(facts: dict[str, Any]) -> None:
    assert facts["compilers"] == []
    assert facts["pip"] == []
    assert facts["planning"] == []
    assert facts["python"].startswith("3.11.")
    assert "iproute2" in facts["ip"]
    assert facts["iptables"].startswith("iptables v1.8")
    assert facts["certificates"]


def test_the_default_user_is_not_root_and_labels_are_set(
    built_image: BuiltImage, facts: dict[str, Any]
) -> None:
    assert facts["uid"] == 65532
    done = built_image.podman("image", "inspect", built_image.ref)
    assert done.returncode == 0, done
    inspected = json.loads(done.stdout)[0]
    assert inspected["Config"]["User"] == "65532:65532"
    labels = inspected["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"]


def test_node_run_as_the_daemonset_runs_it_refuses_a_bad_variable(
    built_image: BuiltImage,
) -> None:
    """uid 0 with only NET_ADMIN and NET_RAW, read-only root, emptyDir-like /tmp: a bad
    variable exits 1 naming it before anything starts."""
    done = built_image.run(
        "vpccni",
        "node-run",
        options=(
            *("--user", "0", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "all"),
            *("--cap-add", "NET_ADMIN,NET_RAW", "-e", "WARM_IP_TARGET=lots"),
        ),
    )
    assert done.returncode == 1, done
    assert "WARM_IP_TARGET='lots' is not an integer" in done.stderr
    assert done.stdout == ""
