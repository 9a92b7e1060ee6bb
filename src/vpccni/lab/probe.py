"""UDP probe for the lab (tests and the demo), run inside a namespace with ``ip netns exec``:
``python -m vpccni.lab.probe ...``.

``serve PORT ADDRESS...``: answer every datagram with "<sender address> <ingress
interface>", from the address it was sent to (one socket per address, so NATed replies match).
``send HOST PORT``: send a datagram, print the answer; resent every second (the lab's VPC
routes follow EC2 a moment behind the daemon), exit 1 after 5 s of silence. A reply the VPC
side cannot route yet is dropped, never fatal to the server.
"""

from __future__ import annotations

import select
import socket
import struct
import sys

IP_PKTINFO = 8


def serve(port: int, addresses: list[str]) -> None:
    sockets = []
    for address in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((address, port))
        sockets.append(sock)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(sockets, [], [])
        for sock in readable:
            _data, ancillary, _, peer = sock.recvmsg(2048, 256)
            ifname = "?"
            for level, kind, payload in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    ifname = socket.if_indextoname(struct.unpack("I", payload[:4])[0])
            try:
                sock.sendto(f"{peer[0]} {ifname}".encode(), peer)
            except OSError as error:  # e.g. no route back yet: the sender retries
                print(f"reply to {peer[0]} failed: {error}", file=sys.stderr, flush=True)


def send(host: str, port: int, attempts: int = 5) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        for _ in range(attempts):
            sock.sendto(b"hello", (host, port))
            try:
                print(sock.recv(2048).decode())
                return
            except TimeoutError:
                continue
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3:])
    else:
        send(sys.argv[2], int(sys.argv[3]))
