"""``link_names.parse``: one datagram of an RTM_GETLINK dump, read in place."""

from __future__ import annotations

import struct

import pytest

from vpccni.adapters.link_names import (
    ATTR,
    HEADER,
    IF_OPER_UP,
    IFINFO,
    IFLA_IFNAME,
    IFLA_OPERSTATE,
    NLM_F_DUMP_INTR,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_NEWLINK,
    LinkDumpError,
    parse,
)

SEQ = 7


def attr(kind: int, value: bytes) -> bytes:
    raw = ATTR.pack(ATTR.size + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def message(kind: int, body: bytes, seq: int = SEQ, flags: int = 0) -> bytes:
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def link(name: str, state: int, seq: int = SEQ, flags: int = 0) -> bytes:
    body = IFINFO.pack(0, 1, 3, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
    return message(RTM_NEWLINK, body + attr(IFLA_OPERSTATE, bytes([state])), seq, flags)


def test_up_links_with_the_prefix_are_kept_until_done() -> None:
    names: set[str] = set()
    datagram = link("eniab", IF_OPER_UP) + link("enicd", 2) + link("lo", IF_OPER_UP)
    assert parse(datagram + link("eniold", IF_OPER_UP, seq=SEQ + 1), SEQ, b"eni", names) == (
        False,
        False,
    )
    assert names == {"eniab"}  # down, other prefix and another dump's message: not listed
    assert parse(message(NLMSG_DONE, struct.pack("=i", 0)), SEQ, b"eni", names) == (True, False)


def test_an_interrupted_dump_is_reported() -> None:
    names: set[str] = set()
    assert parse(link("eni1", IF_OPER_UP, flags=NLM_F_DUMP_INTR), SEQ, b"", names) == (
        False,
        True,
    )


def test_a_refusal_and_a_malformed_message_raise() -> None:
    with pytest.raises(LinkDumpError, match="link dump refused: Operation not permitted"):
        parse(message(NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16), SEQ, b"", set())
    with pytest.raises(LinkDumpError, match="malformed"):
        parse(HEADER.pack(400, RTM_NEWLINK, 0, SEQ, 0), SEQ, b"", set())
