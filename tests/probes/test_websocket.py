"""ws:// and wss:// probes against real ``websockets`` servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from probes import websocket
from probes.base import PHASES, ProbeConfig, ProbeError
from probes.runner import run_probe
from tests.probes.conftest import open_fds, wait_until
from tests.probes.servers_http import (
    Certificates,
    Server,
    probe_now,
    running,
    start_http,
    start_raw,
    start_websocket,
)


def ws_url(server: Server, scheme: str = "ws", path: str = "/") -> str:
    return f"{scheme}://localhost:{server.port}{path}"


def test_echo_server_upgrade_and_round_trip() -> None:
    with running(start_websocket(echo=True)) as server:
        sample = probe_now(websocket, ws_url(server))

    assert sample.ok, sample.error
    assert sample.details["upgrade_status"] == 101
    assert sample.details["echo"] is True
    phases = sample.phases_ms
    assert phases["tls"] is None
    assert phases["upgrade"] is not None and phases["upgrade"] > 0
    assert phases["echo"] is not None and phases["echo"] > 0
    assert phases["connect"] is not None
    assert sample.latency_ms == pytest.approx(phases["connect"] + phases["upgrade"], abs=0.01)
    assert server.accepted == 1


def test_a_server_that_talks_but_does_not_echo_is_answered_without_echo() -> None:
    # This server sends "welcome" and ignores what it gets: a message that is not
    # our unique text must not count as the echo.
    with running(start_websocket(echo=False)) as server:
        started = time.monotonic()
        sample = probe_now(websocket, ws_url(server), ProbeConfig(timeout_s=5.0))
        elapsed = time.monotonic() - started

    assert sample.ok, sample.error
    assert sample.details["echo"] is False
    assert sample.phases_ms["echo"] is None
    # The echo wait is bounded by ECHO_WAIT_S, not by the 5 s timeout.
    assert elapsed < 5.0


def test_wss_verifies_with_sni(certs: Certificates, trust_ca: Path) -> None:
    with running(start_websocket(echo=True, context=certs.trusted())) as server:
        sample = probe_now(websocket, ws_url(server, "wss"))

    assert sample.ok, sample.error
    assert sample.details["echo"] is True
    assert sample.details["tls"]["verified"] is True
    assert sample.phases_ms["tls"] is not None
    assert server.sni == ["localhost"]


def test_wss_self_signed_fails_unless_insecure(certs: Certificates, trust_ca: Path) -> None:
    with running(start_websocket(echo=True, context=certs.self_signed())) as server:
        strict = probe_now(websocket, ws_url(server, "wss"))
        loose = probe_now(websocket, ws_url(server, "wss"), ProbeConfig(insecure=True))

    assert not strict.ok
    assert strict.error == "certificate verify failed: self-signed certificate"
    assert loose.ok and loose.details["echo"] is True
    assert loose.details["tls"]["verify_error"] == "self-signed certificate"


def test_plain_http_server_refuses_the_upgrade() -> None:
    with running(start_http()) as server, pytest.raises(ProbeError) as caught:
        probe_now(websocket, ws_url(server, path="/ok"))
    assert str(caught.value) == (
        "WebSocket upgrade refused: server rejected WebSocket connection: HTTP 200"
    )


def test_non_http_peer_is_a_clean_error() -> None:
    with running(start_raw("banner")) as server, pytest.raises(ProbeError) as caught:
        probe_now(websocket, ws_url(server))
    assert str(caught.value).startswith("WebSocket upgrade failed: did not receive a valid HTTP")

    with running(start_raw("close")) as server, pytest.raises(ProbeError) as caught:
        probe_now(websocket, ws_url(server))
    assert "before the WebSocket upgrade response" in str(caught.value)


def test_silent_server_times_out_within_timeout_plus_ten_percent(allow_loopback: str) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    with running(start_raw("silent")) as server:

        async def go() -> tuple[float, bool, str | None]:
            started = time.monotonic()
            result = await run_probe(
                f"ws://127.0.0.1:{server.port}/",
                ProbeConfig(count=1, timeout_s=timeout),
                allowed_networks=allow_loopback,
            )
            return time.monotonic() - started, result.ok, result.error

        elapsed, ok, error = asyncio.run(go())
    assert not ok
    assert "timed out" in (error or "")
    assert elapsed <= timeout * 1.1


def test_run_probe_ws_reports_upgrade_and_echo_medians(allow_loopback: str) -> None:
    with running(start_websocket(echo=True)) as server:
        result = asyncio.run(
            run_probe(
                ws_url(server),
                ProbeConfig(count=3, interval_ms=10, timeout_s=2),
                allowed_networks=allow_loopback,
            )
        )

    assert result.ok and result.kind == "ws" and result.succeeded == 3
    # phases_ms keeps exactly the contract's keys; the WebSocket's own phases,
    # as medians, are in details.
    assert list(result.phases_ms) == list(PHASES)
    assert result.phases_ms["connect"] is not None and result.phases_ms["tls"] is None
    assert result.details["upgrade_ms"] > 0 and result.details["echo_ms"] > 0
    assert result.details["echo"] is True


@pytest.mark.parametrize("echo", [True, False])
def test_no_descriptor_leaks_over_many_ws_samples(echo: bool, allow_loopback: str) -> None:
    with running(start_websocket(echo=echo)) as server:
        config = ProbeConfig(count=100 if echo else 3, interval_ms=10, timeout_s=3)
        url = f"ws://127.0.0.1:{server.port}/"
        asyncio.run(
            run_probe(url, config.model_copy(update={"count": 2}), allowed_networks=allow_loopback)
        )  # warm up
        before = open_fds()
        result = asyncio.run(run_probe(url, config, allowed_networks=allow_loopback))
        # The server runs in this process too and may close its side a moment later;
        # a descriptor the probe leaked would never go away.
        wait_until(lambda: set(open_fds()) <= set(before), what="descriptors to be released")

    assert result.succeeded == config.count, result.error
    assert result.details["echo"] is echo
