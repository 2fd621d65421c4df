"""tcp:// probes: connect time, and throughput against the responder protocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from probes import tcp
from probes.base import ProbeConfig, ProbeError, Sample
from probes.guard import resolve_target
from probes.responder import Responder
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener, wait_until

Handler = Callable[[socket.socket], None]
Scripted = Callable[[Handler], "ScriptedServer"]


class ScriptedServer:
    """A TCP server that runs ``handler(conn)`` for each connection in a thread."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        # OSError: the probe closed first, as it does when it stops early.
        with conn, contextlib.suppress(OSError):
            self.handler(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    servers: list[ScriptedServer] = []

    def make(handler: Handler) -> ScriptedServer:
        servers.append(ScriptedServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def sample(url: str, config: ProbeConfig) -> Sample:
    async def go() -> Sample:
        target = await resolve_target(url, allowed_networks=LOOPBACK_NETWORKS)
        return await tcp.probe(target, config, time.monotonic() + config.timeout_s)

    return asyncio.run(go())


def test_connect_time_is_the_latency(allow_loopback: str, tcp_listener: TCPListener) -> None:
    result = sample(f"tcp://127.0.0.1:{tcp_listener.port}", ProbeConfig())
    assert result.ok and result.latency_ms is not None and result.latency_ms > 0
    assert result.phases_ms == {"connect": result.latency_ms}
    wait_until(lambda: tcp_listener.accepted == 1, what="the connection")


def test_ipv6_loopback(allow_loopback: str) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as server:
        server.bind(("::1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        result = run_probe_sync(
            f"tcp://[::1]:{port}",
            ProbeConfig(count=2, interval_ms=10),
            allowed_networks=allow_loopback,
        )
    assert result.ok and result.address == "::1" and result.succeeded == 2


def test_a_closed_port_raises_refused(allow_loopback: str, closed_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        sample(f"tcp://127.0.0.1:{closed_tcp_port}", ProbeConfig())


def test_throughput_against_the_responder(allow_loopback: str, responder: Responder) -> None:
    config = ProbeConfig(count=2, interval_ms=10, timeout_s=10, throughput=True)
    result = run_probe_sync(
        f"tcp://127.0.0.1:{responder.tcp_port}", config, allowed_networks=allow_loopback
    )
    assert result.ok and result.succeeded == 2, result.error
    assert result.throughput_bps is not None and result.throughput_bps > 0
    assert result.details["bytes_read"] == config.read_cap
    assert result.details["time_bounded"] is False
    for phase in ("connect", "ttfb", "transfer"):
        assert result.phases_ms[phase] is not None


def test_throughput_is_bytes_over_transfer_time(allow_loopback: str, scripted: Scripted) -> None:
    # 20 chunks of 10 kB, 20 ms apart: about 200 kB in about 0.4 s after the first.
    def trickle(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"OK 210000\n")
        for _ in range(21):
            conn.sendall(b"x" * 10_000)
            time.sleep(0.02)  # the server's pace, not a wait for the test

    server = scripted(trickle)
    result = sample(f"tcp://127.0.0.1:{server.port}", ProbeConfig(timeout_s=5, throughput=True))
    assert result.ok
    assert result.details["bytes_read"] == 210_000
    assert result.transfer_s is not None
    measured = result.transfer_bytes * 8 / result.transfer_s
    # Pacing sets the upper bound: at most 21 chunks of 10 kB counted over at
    # least 20 gaps of 20 ms (4.2 Mbit/s). A transfer time measured too short
    # (from the wrong instant) would push the rate above it.
    assert measured <= 4_200_000
    assert result.transfer_bytes >= 190_000


def test_a_slow_stream_is_cut_and_still_measured(allow_loopback: str, scripted: Scripted) -> None:
    def endless(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"OK 1000000000\n")
        while True:
            conn.sendall(b"x" * 1000)
            time.sleep(0.01)

    server = scripted(endless)
    config = ProbeConfig(count=1, timeout_s=2.0, throughput=True)
    started = time.monotonic()
    result = run_probe_sync(
        f"tcp://127.0.0.1:{server.port}", config, allowed_networks=allow_loopback
    )
    assert result.ok, result.error
    assert result.details["time_bounded"] is True
    assert result.throughput_bps is not None and result.throughput_bps > 0
    # It stops reading at 90 % of the timeout, well before the deadline.
    assert time.monotonic() - started <= 2.2


def test_a_server_that_is_no_responder_is_a_wrong_protocol(
    allow_loopback: str, scripted: Scripted
) -> None:
    server = scripted(lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n"))
    with pytest.raises(ProbeError, match="not a Switchboard responder"):
        sample(f"tcp://127.0.0.1:{server.port}", ProbeConfig(throughput=True))


def test_a_stream_that_ends_early_fails(allow_loopback: str, scripted: Scripted) -> None:
    def short(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"OK 1000\n" + b"x" * 10)

    server = scripted(short)
    with pytest.raises(ProbeError, match="ended after 10 of 1000"):
        sample(f"tcp://127.0.0.1:{server.port}", ProbeConfig(throughput=True))


def test_a_silent_server_ends_as_a_timeout(allow_loopback: str, silent_tcp: TCPListener) -> None:
    # It accepts but never answers SEND: the sample times out on schedule.
    started = time.monotonic()
    result = run_probe_sync(
        f"tcp://127.0.0.1:{silent_tcp.port}",
        ProbeConfig(count=1, timeout_s=2.0, throughput=True),
        allowed_networks=allow_loopback,
    )
    assert not result.ok and result.error == "timed out after 2 s"
    assert time.monotonic() - started <= 2.2
