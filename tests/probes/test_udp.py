"""udp:// probes against an RFC 862 echo, a lossy echo, the responder and liars."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from probes import udp
from probes.base import ProbeConfig, ProbeError, Sample
from probes.guard import resolve_target
from probes.responder import Responder
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, UDPEchoServer, wait_until


def sample(url: str, timeout_s: float = 1.0) -> Sample:
    async def go() -> Sample:
        target = await resolve_target(url, allowed_networks=LOOPBACK_NETWORKS)
        async with asyncio.timeout(timeout_s):
            return await udp.probe(target, ProbeConfig(), time.monotonic() + timeout_s)

    return asyncio.run(go())


class StrayFirstEcho(UDPEchoServer):
    """Sends a stray datagram (another sample's id) before each real echo."""

    def on_readable(self) -> None:
        data, peer = self.sock.recvfrom(65535)
        self.sock.sendto(udp.make_payload(0, "0" * 16), peer)
        self.sock.sendto(data, peer)


class WrongAnswers(UDPEchoServer):
    """Answers every datagram, but never with the same bytes."""

    def on_readable(self) -> None:
        data, peer = self.sock.recvfrom(65535)
        self.sock.sendto(data.upper() + b"!", peer)


def test_rfc862_echo(allow_loopback: str, udp_echo: int) -> None:
    result = run_probe_sync(
        f"udp://127.0.0.1:{udp_echo}",
        ProbeConfig(count=5, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert result.ok and (result.samples, result.succeeded, result.loss) == (5, 5, 0.0)
    assert result.latency_ms is not None and result.latency_ms.min > 0
    assert result.jitter_ms is not None
    assert result.details["payload_bytes"] == udp.PAYLOAD_BYTES


def test_a_lossy_echo_gives_one_third_loss(
    allow_loopback: str, udp_echo_factory: Callable[..., UDPEchoServer]
) -> None:
    server = udp_echo_factory(drop_every=3)
    result = run_probe_sync(
        f"udp://127.0.0.1:{server.port}",
        ProbeConfig(count=9, interval_ms=10, timeout_s=0.3),
        allowed_networks=allow_loopback,
    )
    assert server.received == 9 and server.echoed == 6
    assert (result.samples, result.succeeded) == (9, 6)
    assert result.loss == pytest.approx(1 / 3, abs=1e-3)
    assert result.ok and result.details["sample_errors"] == {"timed out after 0.3 s": 3}


def test_the_responder_echoes(allow_loopback: str, responder: Responder) -> None:
    result = run_probe_sync(
        f"udp://127.0.0.1:{responder.udp_port}",
        ProbeConfig(count=4, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert result.ok and result.succeeded == 4
    echo = responder.echo
    assert echo is not None
    # The responder counts after it sends, on its own thread: the probe may see the
    # last echo before the count moves.
    wait_until(lambda: echo.echoed == 4, what="the responder to count four echoes")


def test_a_closed_port_fails_at_once(allow_loopback: str, closed_tcp_port: int) -> None:
    # Nothing listens on UDP there either (bound by TCP only, now released).
    started = time.monotonic()
    with pytest.raises(ProbeError, match="port unreachable"):
        sample(f"udp://127.0.0.1:{closed_tcp_port}", timeout_s=2.0)
    assert time.monotonic() - started < 2.0


def test_a_reply_for_another_sample_is_not_counted(allow_loopback: str) -> None:
    with StrayFirstEcho().start() as server:
        result = sample(f"udp://127.0.0.1:{server.port}")
    assert result.ok and result.details["unmatched_datagrams"] == 1


def test_answers_that_are_no_echo_are_lost_samples(allow_loopback: str) -> None:
    with WrongAnswers().start() as server:
        result = run_probe_sync(
            f"udp://127.0.0.1:{server.port}",
            ProbeConfig(count=2, interval_ms=10, timeout_s=0.2),
            allowed_networks=allow_loopback,
        )
    assert not result.ok and result.loss == 1.0
    assert result.error == "timed out after 0.2 s"


def test_every_payload_is_unique() -> None:
    assert udp.make_payload(1, "a" * 16) != udp.make_payload(2, "a" * 16)
    assert udp.make_payload(1, "a" * 16) != udp.make_payload(1, "b" * 16)
    assert len(udp.make_payload(123, "f" * 16)) == udp.PAYLOAD_BYTES


def test_ipv6_echo(allow_loopback: str) -> None:
    with UDPEchoServer(host="::1").start() as server:
        result = run_probe_sync(
            f"udp://[::1]:{server.port}",
            ProbeConfig(count=2, interval_ms=10),
            allowed_networks=allow_loopback,
        )
    assert result.ok and result.address == "::1"
