"""The names of the links that are up, from one ``RTM_GETLINK`` dump read with the stdlib.

The leaked-pod sweep asks for the node's up pod veths every tick (5 s). pyroute2 decodes each
link of a dump into ~200 Python objects (~28 kB) held in reference cycles, which only the cyclic
garbage collector frees: at 250 pods one dump is ~7 MB of garbage, several pile up between
collections, and the allocator keeps the memory - the daemon's RSS grew ~60 kB per pod that
exists (issue 18), and each dump cost ~75 ms of the daemon's one GIL. Here a dump is parsed in
place: per link, its name and operational state only (a few bytes), nothing held afterwards.

The socket is opened by the calling thread, so the dump lists the links of that thread's
network namespace (the host adapter's thread lives in the node's).
"""

from __future__ import annotations

import os
import socket
import struct

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLM_F_DUMP_INTR = 0x10
IFLA_IFNAME, IFLA_OPERSTATE = 3, 16
IF_OPER_UP = 6
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg: family, type, index, flags, change
ATTR = struct.Struct("=HH")  # struct rtattr: len, type
ATTEMPTS = 3
"""Dumps tried when a change to the links interrupts one (``NLM_F_DUMP_INTR``); the last is
taken as it is, as pyroute2 does with every dump."""


class LinkDumpError(OSError):
    """The kernel refused the link dump."""


def up_links(prefix: str = "") -> set[str]:
    """Names starting with ``prefix`` of the links that are operationally up, in the calling
    thread's network namespace. Raises ``OSError`` when the dump fails."""
    for _ in range(ATTEMPTS - 1):
        names, interrupted = _dump(prefix)
        if not interrupted:
            return names
    return _dump(prefix)[0]


def _dump(prefix: str) -> tuple[set[str], bool]:
    seq = int.from_bytes(os.urandom(4), "little") or 1
    request = HEADER.pack(
        HEADER.size + IFINFO.size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    ) + IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    names: set[str] = set()
    interrupted = False
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.sendto(request, (0, 0))
        while True:
            done, intr = parse(sock.recv(1 << 16), seq, prefix.encode(), names)
            interrupted = interrupted or intr
            if done:
                return names, interrupted


def parse(data: bytes, seq: int, prefix: bytes, names: set[str]) -> tuple[bool, bool]:
    """Add to ``names`` the up links of one datagram of the dump with ``seq``. Returns (the
    dump is complete, a message was flagged interrupted)."""
    offset, interrupted = 0, False
    while offset + HEADER.size <= len(data):
        length, kind, flags, got_seq, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            raise LinkDumpError(f"link dump: a malformed netlink message (length {length})")
        body = offset + HEADER.size
        if got_seq == seq:
            interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
            if kind == NLMSG_DONE:
                return True, interrupted
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, body)
                if code:
                    raise LinkDumpError(-code, f"link dump refused: {os.strerror(-code)}")
            elif kind == RTM_NEWLINK:
                name = _up_name(data, body + IFINFO.size, offset + length)
                if name is not None and name.startswith(prefix):
                    names.add(name.decode(errors="replace"))
        offset += (length + 3) & ~3
    return False, interrupted


def _up_name(data: bytes, start: int, end: int) -> bytes | None:
    """The link's name when its attributes between ``start`` and ``end`` say it is up."""
    name, up = None, False
    while start + ATTR.size <= end:
        length, kind = ATTR.unpack_from(data, start)
        if length < ATTR.size:
            break
        value = start + ATTR.size
        if kind == IFLA_IFNAME:
            name = data[value : start + length].split(b"\0", 1)[0]
        elif kind == IFLA_OPERSTATE:
            up = data[value] == IF_OPER_UP
        start += (length + 3) & ~3
    return name if up else None
