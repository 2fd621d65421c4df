"""Shared fixtures for probe tests: loopback policy, and small real servers.

Every server here listens on ``127.0.0.1:0`` and runs in a background thread,
so a test can drive the probes with ``asyncio.run`` in the main thread.
Other probe test modules import from here, e.g.::

    from tests.probes.conftest import UDPEchoServer, wait_until

Fixtures:

- ``allow_loopback``: the policy ``"127.0.0.0/8,::1/128"``, to pass as
  ``allowed_networks=`` (the instrument reads no environment; the CLI tests
  set ``PROBE_ALLOWED_NETWORKS`` for their subprocess themselves).
- ``default_policy``: the empty policy (loopback refused). Both also clear
  ``PROBE_ALLOWED_NETWORKS`` so a developer's environment cannot matter.
- ``udp_echo``: an RFC 862 echo server (port); ``udp_echo_factory(drop_every=3)``
  makes one that drops every third datagram.
- ``silent_udp``: a bound UDP port that never answers.
- ``tcp_listener``: a TCP server that accepts and closes at once (counts accepts).
- ``silent_tcp``: a TCP server that accepts and never speaks.
- ``closed_tcp_port``: a port nothing listens on.
- ``responder``: the Switchboard responder (UDP echo and TCP source) in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from probes import tlsinfo
from probes.responder import Responder, start_responder
from tests.probes.servers_http import Certificates, Server, certificates, running, start_http

T = TypeVar("T")
S = TypeVar("S", bound="_ServerThread")

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def open_fds() -> dict[int, str]:
    """Open file descriptors of this process and what they point to (Linux)."""
    table: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own fd is gone already
            table[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return table


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("PROBE_ALLOWED_NETWORKS", raising=False)
    return LOOPBACK_NETWORKS


@pytest.fixture
def default_policy(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("PROBE_ALLOWED_NETWORKS", raising=False)
    return ""


class _ServerThread:
    """A socket server loop in a daemon thread, stopped by :meth:`close`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.port: int = sock.getsockname()[1]
        self._stop = threading.Event()
        # Made here, not in the thread, so its fd exists before a test counts fds.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self: S) -> S:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._selector.select(timeout=0.05):
                self.on_readable()

    def on_readable(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._selector.close()
        self.sock.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UDPEchoServer(_ServerThread):
    """RFC 862 echo; with ``drop_every=n`` it swallows every n-th datagram."""

    def __init__(self, drop_every: int = 0, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        super().__init__(sock)
        self.drop_every = drop_every
        self.received = 0
        self.echoed = 0

    def on_readable(self) -> None:
        try:
            data, peer = self.sock.recvfrom(65535)
        except BlockingIOError:
            return
        self.received += 1
        if self.drop_every and self.received % self.drop_every == 0:
            return
        self.sock.sendto(data, peer)
        self.echoed += 1


class TCPListener(_ServerThread):
    """Accepts connections; closes them at once, or holds them when ``silent``."""

    def __init__(self, silent: bool = False) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        super().__init__(sock)
        self.silent = silent
        self.accepted = 0
        self.held: list[socket.socket] = []

    def on_readable(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        if self.silent:
            self.held.append(conn)
        else:
            conn.close()
        self.accepted += 1

    def close(self) -> None:
        super().close()
        for conn in self.held:
            conn.close()


class LoopThread:
    """An asyncio event loop in a daemon thread, for in-process asyncio servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def udp_echo() -> Iterator[int]:
    with UDPEchoServer().start() as server:
        yield server.port


@pytest.fixture
def udp_echo_factory() -> Iterator[Callable[..., UDPEchoServer]]:
    servers: list[UDPEchoServer] = []

    def make(drop_every: int = 0) -> UDPEchoServer:
        server = UDPEchoServer(drop_every=drop_every).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def silent_udp() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def tcp_listener() -> Iterator[TCPListener]:
    with TCPListener().start() as server:
        yield server


@pytest.fixture
def silent_tcp() -> Iterator[TCPListener]:
    with TCPListener(silent=True).start() as server:
        yield server


@pytest.fixture
def closed_tcp_port() -> int:
    """A loopback port with no listener (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def responder() -> Iterator[Responder]:
    loop = LoopThread()
    running = loop.run(start_responder(0, 0, "127.0.0.1"))
    yield running
    with contextlib.suppress(Exception):
        loop.run(running.close())
    loop.close()


# Servers and certificates the HTTP-family probe tests share, one per test module.


@pytest.fixture(scope="module")
def web() -> Iterator[Server]:
    with running(start_http()) as server:
        yield server


@pytest.fixture(scope="module")
def certs() -> Iterator[Certificates]:
    with certificates() as bundle:
        yield bundle


@pytest.fixture
def trust_ca(certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Probes trust the test CA, as an operator would with PROBE_CA_FILE."""
    monkeypatch.setenv(tlsinfo.ENV_CA_FILE, str(certs.ca_file))
    return certs.ca_file
