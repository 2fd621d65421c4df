"""The responder: a small service users run on their own server for probes.

``python manage.py responder --udp PORT --tcp PORT [--bind ADDR]`` starts

- a **UDP echo** (RFC 862) on ``--udp``: every datagram goes back to its
  sender unchanged, so ``udp://server:PORT`` probes measure round trip, loss
  and jitter; and
- a **TCP source** on ``--tcp`` speaking a one-line protocol, so
  ``tcp://server:PORT`` probed with ``--throughput`` measures download rate.

The TCP protocol (version 1), all lines ASCII and ending in ``\\n``::

    client: SEND <nbytes>        server: OK <n>       then n bytes, then close
    client: ECHO                 server: OK ECHO      then echoes until EOF
    anything else                server: ERR <reason> then close

``n`` is ``nbytes`` capped at :data:`SEND_MAX_BYTES`. The client may close
before the end; that is how a time-bounded measurement stops.

Because the responder faces the network, it limits what it can be made to
do: it never answers UDP datagrams from ports below 1024 (which would let a
spoofed datagram start an endless loop with another echo or chargen service),
answers at most :data:`UDP_RATE` datagrams a second per source address,
serves at most :data:`MAX_TCP_CLIENTS` TCP connections at once and drops a
connection that sends no request within :data:`REQUEST_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import cast

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SEND_MAX_BYTES = 1024**3
REQUEST_LINE_MAX = 64
REQUEST_TIMEOUT_S = 10.0
MAX_TCP_CLIENTS = 128
UDP_RATE = 1000.0  # datagrams per second per source address (token bucket)
UDP_BURST = 1000.0
UDP_MIN_SOURCE_PORT = 1024
CHUNK = 256 * 1024
_ZEROS = bytes(CHUNK)


class RateLimiter:
    """A token bucket per source address."""

    def __init__(self, rate: float = UDP_RATE, burst: float = UDP_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, source: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, seen = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        if len(self._buckets) > 10_000:
            # Forget sources quiet for a minute so spoofed addresses cannot fill memory.
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            return False
        self._buckets[source] = (tokens - 1.0, now)
        return True


class UDPEcho(asyncio.DatagramProtocol):
    """RFC 862 echo with the safety limits described in the module docstring."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter or RateLimiter()
        self.transport: asyncio.DatagramTransport | None = None
        self.echoed = 0
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if port < UDP_MIN_SOURCE_PORT or not self.limiter.allow(host):
            self.dropped += 1
            return
        if self.transport is not None:
            self.transport.sendto(data, addr)
            self.echoed += 1

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier reply; nothing to do but carry on.
        logger.debug("udp echo: %s", exc)


def parse_request(line: bytes) -> tuple[str, int]:
    """``(command, nbytes)`` from a request line; ValueError with the reason."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ValueError("request is not ASCII") from exc
    parts = text.split()
    if parts == ["ECHO"]:
        return "ECHO", 0
    if len(parts) == 2 and parts[0] == "SEND" and parts[1].isdigit():
        return "SEND", min(int(parts[1]), SEND_MAX_BYTES)
    raise ValueError("expected 'SEND <nbytes>' or 'ECHO'")


@dataclass
class TCPSource:
    """The TCP side: SEND streams bytes, ECHO echoes them."""

    max_clients: int = MAX_TCP_CLIENTS
    clients: int = 0
    served: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clients >= self.max_clients:
            writer.close()
            return
        self.clients += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stayed silent: normal for a probe target
        finally:
            self.clients -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            writer.write(b"ERR request line too long\n")
            return
        except asyncio.IncompleteReadError:
            return  # connected and closed without a request (a plain tcp:// probe)
        if len(line) > REQUEST_LINE_MAX:
            writer.write(b"ERR request line too long\n")
            return
        try:
            command, nbytes = parse_request(line)
        except ValueError as exc:
            writer.write(f"ERR {exc}\n".encode())
            return
        self.served += 1
        if command == "SEND":
            writer.write(f"OK {nbytes}\n".encode())
            view = memoryview(_ZEROS)
            remaining = nbytes
            while remaining > 0:
                step = min(remaining, CHUNK)
                writer.write(view[:step])
                remaining -= step
                await writer.drain()
            await writer.drain()
            return
        writer.write(b"OK ECHO\n")
        echoed = 0
        while echoed < SEND_MAX_BYTES:
            data = await reader.read(CHUNK)
            if not data:
                break
            echoed += len(data)
            writer.write(data)
            await writer.drain()


@dataclass
class Responder:
    """A running responder; ports are the real ones (useful with port 0)."""

    bind: str
    udp_port: int | None
    tcp_port: int | None
    echo: UDPEcho | None
    source: TCPSource | None
    _udp_transport: asyncio.DatagramTransport | None
    _server: asyncio.Server | None

    async def close(self) -> None:
        if self._udp_transport is not None:
            self._udp_transport.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    async def serve_forever(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()


async def start_responder(
    udp_port: int | None, tcp_port: int | None, bind: str = "0.0.0.0"
) -> Responder:
    """Start the UDP echo and/or the TCP source; port 0 picks a free port."""
    if udp_port is None and tcp_port is None:
        raise ValueError("give --udp PORT, --tcp PORT or both")
    loop = asyncio.get_running_loop()
    echo: UDPEcho | None = None
    udp_transport: asyncio.DatagramTransport | None = None
    real_udp: int | None = None
    if udp_port is not None:
        udp_transport, echo = await loop.create_datagram_endpoint(
            UDPEcho, local_addr=(bind, udp_port)
        )
        real_udp = int(udp_transport.get_extra_info("sockname")[1])
    source: TCPSource | None = None
    server: asyncio.Server | None = None
    real_tcp: int | None = None
    if tcp_port is not None:
        source = TCPSource()
        try:
            server = await asyncio.start_server(source.handle, bind, tcp_port)
        except OSError:
            if udp_transport is not None:
                udp_transport.close()
            raise
        real_tcp = int(server.sockets[0].getsockname()[1])
    return Responder(bind, real_udp, real_tcp, echo, source, udp_transport, server)
