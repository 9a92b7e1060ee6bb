"""Upstream's ``AWS_EC2_ENDPOINT`` and ``HTTP_TIMEOUT`` reach the clients the daemon builds.

``AWS_EC2_ENDPOINT`` is where EC2 calls go (a real HTTP server records them), unless the SDK's
own ``AWS_ENDPOINT_URL_EC2`` is set, which wins; ``HTTP_TIMEOUT`` is botocore's connect and read
timeout and IMDS's, built from the settings as ``vpccni.daemon.runner`` builds them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from vpccni.adapters.ec2_boto3 import make_ec2_client
from vpccni.adapters.imds_http import ImdsV2
from vpccni.settings import MIN_HTTP_TIMEOUT, parse_settings

ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code>'
    b"<Message>recorded</Message></Error></Errors><RequestID>r</RequestID></Response>"
)
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


class _Recorder(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).paths.append(self.path)
        self.send_response(401)
        self.send_header("Content-Length", str(len(ERROR)))
        self.end_headers()
        self.wfile.write(ERROR)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _calls_reaching_the_recorder(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = parse_settings({"AWS_MAX_ATTEMPTS": "1", **env})
    client = make_ec2_client(settings.cloud.ec2("us-west-2"))
    with pytest.raises(Exception, match="AuthFailure"):
        client.describe_instances()
    return len(_Recorder.paths)


def test_aws_ec2_endpoint_is_where_ec2_calls_go(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _calls_reaching_the_recorder({"AWS_EC2_ENDPOINT": recorder}, monkeypatch) == 1
    both = {"AWS_ENDPOINT_URL_EC2": recorder, "AWS_EC2_ENDPOINT": NOWHERE}
    assert _calls_reaching_the_recorder(both, monkeypatch) == 2  # the standard variable wins


def test_http_timeout_is_ec2s_and_imdss() -> None:
    default = parse_settings({}).cloud
    cloud = parse_settings({"HTTP_TIMEOUT": "25"}).cloud
    assert (default.http_timeout, cloud.http_timeout) == (MIN_HTTP_TIMEOUT, 25.0)
    config = make_ec2_client(cloud.ec2("us-west-2")).meta.config
    assert (config.connect_timeout, config.read_timeout) == (25.0, 25.0)
    # the runner builds IMDS's client as ImdsV2(cloud.imds_endpoint, timeout_seconds=...)
    assert ImdsV2(cloud.imds_endpoint, timeout_seconds=cloud.http_timeout).timeout == 25.0
