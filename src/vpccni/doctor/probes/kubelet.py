"""kubelet's ``maxPods``: from a config file given, else from the running kubelet (its
``--max-pods`` flag, else its ``--config`` file), else from the EKS AMIs' config paths.
kubelet's default when nothing sets it is 110.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from vpccni.doctor.evidence import KubeletMaxPods, Missing

KUBELET_DEFAULT_MAX_PODS = 110
EKS_CONFIGS = (
    Path("/etc/kubernetes/kubelet/config.json"),  # AL2023
    Path("/etc/kubernetes/kubelet/kubelet-config.json"),  # AL2
)


def kubelet_max_pods(config: Path | None, proc: Path = Path("/proc")) -> KubeletMaxPods | Missing:
    """kubelet's maxPods and where it was read."""
    if config is not None:
        return _from_config(config)
    argv = _kubelet_argv(proc)
    if argv is not None:
        return _from_argv(argv)
    for path in EKS_CONFIGS:
        if path.is_file():
            return _from_config(path)
    return Missing(
        "no kubelet process or kubelet config found (give --kubelet-config FILE to check it)"
    )


def _from_argv(argv: list[str]) -> KubeletMaxPods | Missing:
    flag = _flag(argv, "--max-pods")
    if flag is not None:
        if flag.isdigit():
            return KubeletMaxPods(int(flag), "kubelet --max-pods")
        return Missing(f"kubelet's --max-pods is {flag!r}")
    given = _flag(argv, "--config")
    if given is not None:
        return _from_config(Path(given))
    return KubeletMaxPods(KUBELET_DEFAULT_MAX_PODS, "kubelet's default (no --max-pods)")


def _from_config(path: Path) -> KubeletMaxPods | Missing:
    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        return Missing(f"cannot read kubelet's config {path}: {error}")
    if not isinstance(document, dict):
        return Missing(f"kubelet's config {path} is not a mapping")
    value = document.get("maxPods")
    if value is None:
        return KubeletMaxPods(KUBELET_DEFAULT_MAX_PODS, f"kubelet's default ({path} sets none)")
    if type(value) is not int or value < 1:
        return Missing(f"maxPods in {path} is {value!r}")
    return KubeletMaxPods(value, f"maxPods in {path}")


def _kubelet_argv(proc: Path) -> list[str] | None:
    try:
        entries = list(os.scandir(proc))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (Path(entry.path) / "comm").read_text().strip() != "kubelet":
                continue
            raw = (Path(entry.path) / "cmdline").read_bytes()
        except OSError:
            continue
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return None


def _flag(argv: list[str], name: str) -> str | None:
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None
