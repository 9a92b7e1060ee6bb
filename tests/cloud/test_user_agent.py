"""``VPC_CNI_VERSION`` reaches EC2 in the user agent, as upstream sends it (a real HTTP server
records the header boto3 sends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from vpccni.adapters.ec2_boto3 import make_ec2_client
from vpccni.settings import parse_settings

ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code>'
    b"<Message>recorded</Message></Error></Errors><RequestID>r</RequestID></Response>"
)


class _Recorder(BaseHTTPRequestHandler):
    agents: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).agents.append(self.headers.get("User-Agent", ""))
        self.send_response(401)
        self.send_header("Content-Length", str(len(ERROR)))
        self.end_headers()
        self.wfile.write(ERROR)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.agents = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _agent(url: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = parse_settings({"AWS_ENDPOINT_URL_EC2": url, "AWS_MAX_ATTEMPTS": "1", **env})
    endpoint = settings.cloud.ec2("us-west-2", settings.provisioning.cni_version)
    client = make_ec2_client(endpoint)
    with pytest.raises(Exception, match="AuthFailure"):
        client.describe_instances()
    assert len(_Recorder.agents) == 1
    return _Recorder.agents[0]


def test_vpc_cni_version_is_in_the_user_agent(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _agent(recorder, {"VPC_CNI_VERSION": "v1.19.2"}, monkeypatch)
    assert agent.endswith(" vpccni amazon-vpc-cni-k8s/v1.19.2"), agent


def test_without_it_the_user_agent_names_vpccni_only(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _agent(recorder, {}, monkeypatch)
    assert agent.endswith(" vpccni"), agent
    assert "amazon-vpc-cni-k8s" not in agent
