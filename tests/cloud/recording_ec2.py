"""A real HTTP server standing in for EC2 that records each request (path, User-Agent) and
answers AuthFailure, so a test sees where the daemon's client sends its calls and how it names
itself without any EC2 behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

AUTH_FAILURE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code>'
    b"<Message>recorded</Message></Error></Errors><RequestID>r</RequestID></Response>"
)


@dataclass
class RecordingEc2:
    """The server's URL and the requests it has seen, in order."""

    url: str
    paths: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)


@pytest.fixture
def recording_ec2() -> Iterator[RecordingEc2]:
    record = RecordingEc2("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record.paths.append(self.path)
            record.agents.append(self.headers.get("User-Agent", ""))
            self.send_response(401)
            self.send_header("Content-Length", str(len(AUTH_FAILURE)))
            self.end_headers()
            self.wfile.write(AUTH_FAILURE)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
