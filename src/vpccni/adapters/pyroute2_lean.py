"""pyroute2's ``IPRoute`` and ``NetlinkError`` without the package's ``__init__``.

pyroute2 0.9.7's package ``__init__`` imports every module it has (NDB with sqlite3, IPDB,
conntrack, ethtool, wireguard, nl80211, ``unittest.mock``, ...): 163 modules, ~24 MiB of a fresh
process's RSS with one ``IPRoute`` open, against 99 modules and ~17 MiB for what the daemon uses
(measured with ``from pyroute2 import IPRoute`` vs this module; benchmarks/daemon_rss.py gives
the daemon's figure). Every vpccni adapter imports pyroute2 through here.

How: before the first pyroute2 import, ``pyroute2`` is registered as its package module *not yet
executed* (``importlib.util.module_from_spec``), so ``import pyroute2.iproute.linux`` loads just
that submodule and what it imports itself. The package's own namespace (``pyroute2.NDB``, ``from
pyroute2 import IPRoute`` in someone else's code) still works: the first attribute the module
does not have - and that is not one of its submodules, which is simply imported - runs the
real ``__init__`` into it (PEP 562 ``__getattr__``), after which it is the full package. If
pyroute2 was already imported, nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

PACKAGE = "pyroute2"
_lock = threading.Lock()


def _lean_package() -> None:
    """Register ``pyroute2`` unexecuted, to be completed on the first missing attribute."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        raise ImportError(f"{PACKAGE} is not installed (pip install pyroute2)")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        if not name.startswith("__") and importlib.util.find_spec(f"{PACKAGE}.{name}"):
            return importlib.import_module(f"{PACKAGE}.{name}")  # ``from pyroute2 import config``
        with _lock:
            if module.__dict__.get("__getattr__") is complete:
                del module.__dict__["__getattr__"]
                loader.exec_module(module)  # the package's own __init__, now
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    module.__dict__["__getattr__"] = complete
    sys.modules[PACKAGE] = module


_lean_package()

from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError"]
