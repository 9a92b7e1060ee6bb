"""The cluster from files: ENIConfig YAML in a directory, the node's labels from the command line.

For the emulator, the demo and nodes without API access (``vpccni ipamd --eniconfig-dir DIR
--node-label k=v --node-annotation k=v``). The directory holds what ``kubectl get eniconfigs -o
yaml`` prints (a ``List``), single ENIConfig documents, or several in one multi-document file;
``*.yaml``, ``*.yml`` and ``*.json``, names starting with ``.`` skipped (so a ConfigMap mounted
there works: its ``..data`` links are not read twice). Objects are read by the same functions as
the API's (``adapters.kubernetes_objects``), so the same objects give the same view.

The directory is read at start (a bad file is a start error naming the file and what is wrong)
and again whenever a file's name, size or modification time changes, checked on each ``view()``
(each pool tick). A bad file found while running keeps the last good ENIConfigs and says why in
the view's ``problem`` until it is fixed. ``reachable`` is always false: this is not the live
API.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from vpccni.adapters.kubernetes_objects import ObjectError, eniconfig_from, eniconfig_objects
from vpccni.core.cluster import ClusterView, EniConfig, NodeInfo
from vpccni.errors import InvalidInput

log = logging.getLogger("vpccni.kubernetes")
SUFFIXES = (".yaml", ".yml", ".json")
Signature = tuple[tuple[str, int, int], ...]


class FileSource:
    """A :class:`~vpccni.ports.ClusterSource` over ``directory`` (None: no ENIConfigs)."""

    def __init__(self, directory: Path | None, node: NodeInfo) -> None:
        self.directory = directory
        self.node = node
        self._lock = threading.Lock()
        self._signature = self._scan()  # first: a change during the read is seen next time
        eniconfigs = {} if directory is None else read_directory(directory)
        self._view = ClusterView(node=node, eniconfigs=eniconfigs, generation=1)

    def view(self) -> ClusterView:
        with self._lock:
            if self.directory is not None:
                self._poll(self.directory)
            return self._view

    def close(self) -> None:
        """Nothing runs in the background."""

    def _scan(self) -> Signature | None:
        if self.directory is None:
            return None
        try:
            return _signature(self.directory)
        except OSError:
            return None

    def _poll(self, directory: Path) -> None:
        signature = self._scan()
        if signature == self._signature:
            return
        self._signature = signature
        old = self._view
        try:
            eniconfigs = read_directory(directory)
            problem = ""
        except InvalidInput as error:
            eniconfigs, problem = dict(old.eniconfigs), f"{error} (kept the last good ENIConfigs)"
        if (eniconfigs, problem) == (dict(old.eniconfigs), old.problem):
            return
        if problem:
            log.warning("%s", problem)
        else:
            log.info("--eniconfig-dir %s re-read: %s", directory, ", ".join(sorted(eniconfigs)))
        self._view = ClusterView(
            node=self.node, eniconfigs=eniconfigs, generation=old.generation + 1, problem=problem
        )


def _signature(directory: Path) -> Signature:
    found = []
    for path in _files(directory):
        info = path.stat()
        found.append((path.name, info.st_mtime_ns, info.st_size))
    return tuple(found)


def _files(directory: Path) -> list[Path]:
    return sorted(
        directory / name
        for name in os.listdir(directory)
        if not name.startswith(".") and name.endswith(SUFFIXES) and (directory / name).is_file()
    )


def read_directory(directory: Path) -> dict[str, EniConfig]:
    """Every ENIConfig in ``directory``; raises InvalidInput naming the first bad file."""
    try:
        paths = _files(directory)
    except OSError as error:
        raise InvalidInput(
            f"cannot read --eniconfig-dir {directory}: {error.strerror}; give a directory of "
            "ENIConfig YAML (what 'kubectl get eniconfigs -o yaml' prints)"
        ) from None
    found: dict[str, tuple[EniConfig, Path]] = {}
    for path in paths:
        for eniconfig in read_file(path):
            if eniconfig.name in found:
                raise InvalidInput(
                    f"{path}: ENIConfig {eniconfig.name!r} is also in {found[eniconfig.name][1]}; "
                    "keep one of them"
                )
            found[eniconfig.name] = (eniconfig, path)
    return {name: found[name][0] for name in sorted(found)}


def read_file(path: Path) -> list[EniConfig]:
    """The ENIConfigs in one file (YAML or JSON, one or more documents)."""
    import yaml  # type: ignore[import-untyped]  # only with --eniconfig-dir: not at idle

    try:
        text = path.read_text(encoding="utf-8")
        documents = list(yaml.safe_load_all(text))
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text; ENIConfig files are YAML") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput(f"{path}{where}: {problem}; fix the YAML") from None
    found = []
    for number, document in enumerate(documents, 1):
        where = f"{path}" if len(documents) == 1 else f"{path} document {number}"
        try:
            found += [eniconfig_from(obj) for obj in eniconfig_objects(document)]
        except ObjectError as error:
            raise InvalidInput(f"{where}: {error}") from None
    return found
