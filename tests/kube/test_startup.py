"""Upstream's start-up rule (vpccni.daemon.cluster.wait_for_api): with custom networking wait for
the API, retrying every 2 s; otherwise wait a while and start without it."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from tests.kube.conftest import TOKEN
from tests.kube.fake_apiserver import NODES, FakeApiServer, node
from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.core.config import IpamConfig
from vpccni.daemon.cluster import BLOCKING_RETRY_SECONDS, NoClusterSource, wait_for_api

DEAD = "http://127.0.0.1:9"


def source_for(url: str, token_file: Path, *, blocking: bool) -> KubernetesSource:
    return KubernetesSource(
        KubeApi(KubeEndpoint(url, token_file, timeout_seconds=2)),
        "node-1",
        eniconfigs=blocking,
        retry_cap_until_synced=BLOCKING_RETRY_SECONDS if blocking else None,
    )


def test_without_custom_networking_start_goes_on_without_the_api(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(DEAD, token_file, blocking=False)
    try:
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="vpccni.ipamd"):
            assert wait_for_api(source, IpamConfig(), threading.Event(), optional_wait=0.5)
        assert 0.4 < time.monotonic() - began < 3
        assert "the Kubernetes API did not answer in 0.5 s" in caplog.text
        assert "cannot reach the Kubernetes API at http://127.0.0.1:9" in caplog.text
    finally:
        source.close()
    assert wait_for_api(NoClusterSource(), IpamConfig(custom_networking=True), threading.Event())


def test_with_custom_networking_start_waits_until_the_api_answers(token_file: Path) -> None:
    """The API comes up late (a server on a port that refuses, then answers): the wait ends
    within the 2 s retry cadence, whatever the backoff had grown to."""
    server = FakeApiServer(tokens={TOKEN}).start()
    port = server.port
    server.stop()  # the port refuses for now
    source = source_for(f"http://127.0.0.1:{port}", token_file, blocking=True)
    later = FakeApiServer(tokens={TOKEN})
    try:
        done: list[bool] = []
        stop = threading.Event()
        waiter = threading.Thread(
            target=lambda: done.append(
                wait_for_api(source, IpamConfig(custom_networking=True), stop)
            )
        )
        waiter.start()
        time.sleep(5)  # past several retries: the uncapped backoff would be at 4 s and more
        assert not done
        later.start_on(port)
        later.put(NODES, node("node-1"))
        began = time.monotonic()
        waiter.join(10)
        assert done == [True]
        assert time.monotonic() - began < BLOCKING_RETRY_SECONDS + 1.5
        assert source.view().node is not None
    finally:
        source.close()
        later.stop()


def test_a_blocked_start_ends_on_a_signal(token_file: Path) -> None:
    source = source_for(DEAD, token_file, blocking=True)
    stop = threading.Event()
    try:
        threading.Timer(0.5, stop.set).start()
        began = time.monotonic()
        assert not wait_for_api(source, IpamConfig(custom_networking=True), stop)
        assert time.monotonic() - began < 2
    finally:
        source.close()
