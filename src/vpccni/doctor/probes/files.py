"""Files the doctor reads: the CNI conf dir, the plugin binary, and a private copy of the
checkpoint (never the daemon's own files: loading may repair, and a repair writes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vpccni.adapters.checkpoint_file import (
    JOURNAL_NAME,
    SNAPSHOT_NAME,
    TEMP_SUFFIX,
    FileCheckpointStore,
)
from vpccni.core.checkpoint import CheckpointCorrupt, CheckpointState
from vpccni.doctor.evidence import CheckpointCopy, ConfDir, ConfFile, InstalledPlugin, Missing
from vpccni.node.plugin_install import (
    ELF_MAGIC,
    PLUGIN_NAME,
    STATIC_PLUGIN,
    is_shipped_python_plugin,
)
from vpccni.plugin import cni

CONF_EXTENSIONS = (".conf", ".conflist", ".json")
"""What libcni reads from the conf dir (sorted by name; the runtime uses the first)."""
MAX_CONF_BYTES = 1 << 20
COPY_ATTEMPTS = 3


def conf_dir(path: Path) -> ConfDir | Missing:
    """The network configurations in ``path``, in the order the runtime reads them."""
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(path)
            if entry.name.endswith(CONF_EXTENSIONS) and entry.is_file()
        )
    except OSError as error:
        return Missing(f"cannot list the CNI conf dir {path}: {error.strerror or error}")
    return ConfDir(str(path), tuple(conf_file(path / name) for name in names))


def conf_file(path: Path) -> ConfFile:
    """One network configuration (a ``.conflist`` or a single-plugin ``.conf``)."""
    try:
        with path.open("rb") as stream:
            document = json.loads(stream.read(MAX_CONF_BYTES))
    except (OSError, ValueError) as error:
        return ConfFile(path.name, error=f"cannot be read as JSON: {error}")
    if not isinstance(document, dict):
        return ConfFile(path.name, error="is not a JSON object")
    plugins = document.get("plugins") if "plugins" in document else [document]
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        return ConfFile(path.name, error="has no list of plugin objects")
    types = tuple(str(plugin.get("type", "")) for plugin in plugins)
    ours = plugins[0] if types[:1] == (PLUGIN_NAME,) else {}
    return ConfFile(
        path.name,
        network=str(document.get("name", "")),
        plugin_types=types,
        socket=str(ours.get("socket", "")),
        plugin_log=str(ours.get("pluginLogFile", "")),
    )


def bin_dir_names(path: Path) -> frozenset[str] | Missing:
    """The executables in the CNI bin dir."""
    try:
        return frozenset(
            entry.name
            for entry in os.scandir(path)
            if entry.is_file() and os.access(entry.path, os.X_OK)
        )
    except OSError as error:
        return Missing(f"cannot list the CNI bin dir {path}: {error.strerror or error}")


def installed_plugin(
    bin_dir: Path, static_reference: Path = STATIC_PLUGIN
) -> InstalledPlugin | Missing:
    """``vpccni-cni`` in ``bin_dir``: which plugin, whether it is this vpccni's, and its
    answer to CNI VERSION."""
    path = bin_dir / PLUGIN_NAME
    try:
        data = path.read_bytes()
    except OSError as error:
        return Missing(f"{path}: {error.strerror or error}")
    digest = hashlib.sha256(data).hexdigest()[:16]
    if data.startswith(b"#!"):
        same = is_shipped_python_plugin(bin_dir, data)
        kind, reference = "python", "vpccni's launcher and vpccni-cni.d/cni.py"
    elif data.startswith(ELF_MAGIC):
        kind = "static"
        try:
            same, reference = data == static_reference.read_bytes(), str(static_reference)
        except OSError:
            same, reference = None, f"no static plugin at {static_reference} to compare with"
    else:
        kind, same, reference = "unknown", False, "neither a script nor an ELF executable"
    answer, refusal = _version_answer(path)
    return InstalledPlugin(str(path), kind, same, reference, answer, refusal, digest)


def _version_answer(path: Path) -> tuple[str, str]:
    """The plugin's answer to CNI VERSION (a read-only verb: no stdin, no daemon, no log)."""
    try:
        done = subprocess.run(
            [str(path)],
            env={"CNI_COMMAND": "VERSION", "PATH": os.defpath},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return "", f"does not run: {error}"
    answer = done.stdout.decode(errors="replace").strip()
    try:
        versions = json.loads(answer).get("supportedVersions")
    except (ValueError, AttributeError):
        versions = None
    if done.returncode != 0 or versions != list(cni.SUPPORTED_VERSIONS):
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [answer[:80]]
        return "", (
            f"answers VERSION with exit {done.returncode} ({detail[0]}); this vpccni's plugin "
            f"speaks {', '.join(cni.SUPPORTED_VERSIONS)}"
        )
    return answer, ""


def loaded_copy(directory: Path) -> CheckpointState | str | None:
    """The checkpoint in ``directory`` loaded from a private copy: its state, or why it cannot
    be loaded (a string), or None when there is none. A copy that caught the daemon between a
    compaction's renames is taken again."""
    names = (SNAPSHOT_NAME, JOURNAL_NAME, JOURNAL_NAME + TEMP_SUFFIX)
    if not any((directory / name).exists() for name in names):
        return None
    last = ""
    for _ in range(COPY_ATTEMPTS):
        with tempfile.TemporaryDirectory(prefix="vpccni-doctor-") as scratch:
            copy = Path(scratch)
            try:
                for name in names:
                    if (directory / name).exists():
                        shutil.copy2(directory / name, copy / name)
                store = FileCheckpointStore(copy)
                state = store.load()
                store.close()
            except CheckpointCorrupt as error:
                last = f"corrupt: {error}"
                continue
            except OSError as error:
                return f"cannot copy it: {error.strerror or error}"
        return state
    return last


def checkpoint_copy(directory: Path) -> CheckpointCopy | Missing:
    """What the doctor judges of the checkpoint in ``directory``."""
    found = loaded_copy(directory)
    if found is None:
        return CheckpointCopy(str(directory), absent=True)
    if isinstance(found, str):
        if found.startswith("corrupt: "):
            return CheckpointCopy(str(directory), corrupt=found.removeprefix("corrupt: "))
        return Missing(f"{directory}: {found}")
    return CheckpointCopy(
        str(directory),
        frozenset(str(a.address) for a in found.assignments.values()),
        len(found.cooldowns),
    )
