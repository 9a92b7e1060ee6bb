"""The pod's network namespace as the plugin passes it: two file descriptors, checked before use.

For ADD and CHECK the plugin opens ``CNI_NETNS``, enters it, creates a ``NETLINK_ROUTE`` socket
there and sends both descriptors with the first bytes of its request (``SCM_RIGHTS``, in the
order [namespace, socket]), naming them in the request: ``"fds": ["netns", "netlink"]``
(docs/plugin-api.md). A daemon that wires pods reaches the pod only through them, so it needs
no ``CAP_SYS_ADMIN`` and no view of the host's netns paths. :func:`pod_namespace` checks what
came: exactly the two named descriptors, the first a network namespace (``NS_GET_NSTYPE``), the
second a datagram
``NETLINK_ROUTE`` socket living in that same namespace (``SIOCGSKNS``), which is not the node's
own. Anything else is refused with a :class:`PodFdsRefused` that says what came instead; the
caller answers CNI error 4 and allocates nothing. The descriptors stay the caller's: this module
opens and closes only the namespace descriptor ``SIOCGSKNS`` returns.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Sequence
from typing import Any

from vpccni.ports import PodNamespace

FDS = ["netns", "netlink"]
"""The request's ``fds`` field for ADD and CHECK: what the descriptors are, in order."""
MAX_FDS = 8
"""Descriptors kept per request; more are closed on arrival and the request refused."""
SIOCGSKNS = 0x894C
"""ioctl: a new descriptor of the network namespace a socket lives in (Linux 4.9)."""
NS_GET_NSTYPE = 0xB703
"""ioctl on a namespace descriptor: its CLONE_NEW* type (Linux 4.11); ENOTTY on other files."""
CLONE_NEWNET = 0x40000000
REINSTALL = "reinstall the plugin that ships with this daemon: vpccni install-cni"
MISSING = (
    "the plugin did not pass the pod's network namespace (fds); reinstall the plugin that ships "
    "with this daemon: vpccni install-cni"
)


class PodFdsRefused(Exception):
    """The descriptors that came with a request are not the pod's namespace and socket."""

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def pod_namespace(
    declared: Any,
    fds: Sequence[int],
    overflow: bool,
    netns: str,
    node_netns: tuple[int, int],
) -> PodNamespace:
    """The checked pair, or :class:`PodFdsRefused`.

    ``declared``: the request's ``fds`` field; ``fds``: the descriptors that came, in order
    (``overflow``: more than the listener keeps came, and the rest were closed); ``netns``: the
    request's ``CNI_NETNS``, for messages; ``node_netns``: (st_dev, st_ino) of the node's
    namespace.
    """
    if declared is None and not fds and not overflow:
        raise PodFdsRefused(MISSING)
    if declared != FDS:
        raise PodFdsRefused(
            f"the request's fds field is {str(declared)[:80]}, expected {FDS}",
            f"docs/plugin-api.md: ADD and CHECK pass the pod's namespace and a netlink socket "
            f"in it; {REINSTALL}",
        )
    if overflow or len(fds) != len(FDS):
        count = f"more than {MAX_FDS}" if overflow else str(len(fds))
        raise PodFdsRefused(
            f"{count} file descriptors came with the request; expected 2: the pod's network "
            "namespace, then a NETLINK_ROUTE socket created in it",
            f"the plugin sends both with its first write (SCM_RIGHTS); {REINSTALL}",
        )
    netns_fd, netlink_fd = fds
    namespace = _namespace_id(netns_fd, netns)
    _check_netlink(netlink_fd)
    if _socket_namespace_id(netlink_fd) != namespace:
        raise PodFdsRefused(
            f"the netlink socket passed for CNI_NETNS {netns} lives in another network namespace",
            "the plugin must create it after entering the pod's namespace (setns)",
        )
    if namespace == node_netns:
        raise PodFdsRefused(
            f"CNI_NETNS {netns} is the node's own network namespace",
            "a pod needs a namespace of its own; check what the runtime passes as CNI_NETNS",
        )
    return PodNamespace(netns_fd, netlink_fd)


def describe(descriptor: int) -> str:
    """What a descriptor is, as /proc names it (``net:[4026532]``, ``socket:[81]``, a path)."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError as error:
        return f"unreadable ({error.strerror})"


def _namespace_id(descriptor: int, netns: str) -> tuple[int, int]:
    """(st_dev, st_ino) of a network namespace descriptor. Its /proc name is no test: one opened
    through a bind mount (``/var/run/netns/NAME``) is named by that path, not ``net:[...]``."""
    try:
        kind = fcntl.ioctl(descriptor, NS_GET_NSTYPE)
    except OSError:
        kind = 0  # ENOTTY: not a namespace at all
    if kind != CLONE_NEWNET:
        what = describe(descriptor)
        raise PodFdsRefused(
            f"the first file descriptor passed for CNI_NETNS {netns} is not a network namespace "
            f"but {'another kind of namespace, ' if kind else ''}{what[:120]}",
            f"it must be CNI_NETNS opened read-only; {REINSTALL}",
        )
    stat = os.fstat(descriptor)
    return stat.st_dev, stat.st_ino


def _check_netlink(descriptor: int) -> None:
    try:
        probe = socket.socket(fileno=descriptor)
    except OSError:
        raise PodFdsRefused(
            f"the second file descriptor is not a socket but {describe(descriptor)[:120]}",
            f"it must be a NETLINK_ROUTE socket created in the pod's namespace; {REINSTALL}",
        ) from None
    try:
        domain = probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        protocol = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        kind = probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    finally:
        probe.detach()  # the descriptor stays the caller's
    if domain != socket.AF_NETLINK or protocol != socket.NETLINK_ROUTE:
        raise PodFdsRefused(
            f"the second file descriptor is a socket of family {domain} protocol {protocol}, "
            f"not a NETLINK_ROUTE socket (family {int(socket.AF_NETLINK)}, protocol "
            f"{socket.NETLINK_ROUTE})",
            f"the plugin creates socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE); {REINSTALL}",
        )
    if kind != socket.SOCK_DGRAM:
        raise PodFdsRefused(
            f"the netlink socket is of type {kind}, not SOCK_DGRAM ({int(socket.SOCK_DGRAM)})",
            f"the plugin creates socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE); {REINSTALL}",
        )


def _socket_namespace_id(descriptor: int) -> tuple[int, int]:
    try:
        namespace = fcntl.ioctl(descriptor, SIOCGSKNS)
    except OSError as error:
        raise PodFdsRefused(
            f"cannot tell which network namespace the netlink socket lives in: {error.strerror}",
            "the daemon needs CAP_NET_ADMIN (ioctl SIOCGSKNS, Linux 4.9 or later)",
        ) from None
    try:
        stat = os.fstat(namespace)
        return stat.st_dev, stat.st_ino
    finally:
        os.close(namespace)
