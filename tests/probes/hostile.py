"""Hostile peers for the probe tests: servers that lie about lengths, flood, or say nothing.

Every server here is an asyncio server on ``127.0.0.1:0`` in a loop thread
(:class:`tests.probes.conftest.LoopThread`), running a *script* coroutine
``script(server, reader, writer)`` for each connection it accepts. Closing the
server aborts the connections it holds, so a probe that gave up is never kept
waiting by the test, and a probe that did not give up is the probe's fault.

:func:`measure` runs one probe through :func:`probes.runner.run_probe`, as
the product does, and reports the result, the time it took (monotonic clock,
a correctness bound, not a speed figure) and the memory it needed: the
tracemalloc peak (Python allocations, the server thread's included) and the
growth of the process's resident high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``), which also sees what C libraries (gRPC, OpenSSL)
allocate.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from probes.base import ProbeConfig, ProbeResult
from probes.registry import probe_function
from probes.runner import run_probe
from tests.probes.conftest import LOOPBACK_NETWORKS, LoopThread
from tests.probes.servers_misc import _LoopServer

CHUNK = b"\0" * 65536
FLOOD_BYTES = 64 * 1024 * 1024

Script = Callable[["HostileServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class HostileServer(_LoopServer):
    """Runs ``script`` for every connection; counts connections and the bytes it flooded."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.accepted = 0
        self.sent = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = LoopThread()
        self._server = self._loop.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        with contextlib.suppress(Exception):
            await self.script(self, reader, writer)
            # Then hold the connection, silent, until the client goes.
            await reader.read()
        writer.transport.abort()

    async def flood(
        self, writer: asyncio.StreamWriter, total: int = FLOOD_BYTES, chunk: bytes = CHUNK
    ) -> None:
        """Send ``chunk`` until ``total`` bytes are out or the client has gone."""
        done = 0
        while done < total:
            writer.write(chunk)
            await writer.drain()
            done += len(chunk)
            self.sent += len(chunk)


# -- measuring ---------------------------------------------------------------------


def _hwm_kib() -> int | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def _reset_hwm() -> bool:
    """Reset the resident high-water mark to the current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class Measured:
    result: ProbeResult
    elapsed_s: float
    peak_bytes: int  # tracemalloc peak during the probe
    rss_growth_bytes: int | None  # VmHWM growth during the probe; None where unsupported


def measure(url: str, config: ProbeConfig) -> Measured:
    """One ``run_probe`` with its duration and the memory it needed."""
    # The probe's module (and its libraries) load before the measurement.
    probe_function(url.split(":", 1)[0])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        hwm_reset = _reset_hwm()
        before = _hwm_kib() if hwm_reset else None
        started = time.monotonic()
        result = asyncio.run(run_probe(url, config, allowed_networks=LOOPBACK_NETWORKS))
        elapsed = time.monotonic() - started
        after = _hwm_kib() if hwm_reset else None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = None if before is None or after is None else (after - before) * 1024
    return Measured(result, elapsed, peak - baseline, growth)


# -- protocol fragments --------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """An HTTP request head (through the blank line)."""
    return await reader.readuntil(b"\r\n\r\n")


def websocket_accept(head: bytes) -> bytes:
    """A ``101`` answer to a WebSocket upgrade request (RFC 6455 section 4.2.2)."""
    key = b""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
    )


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """An HTTP/2 frame (RFC 9113 section 4.1)."""
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def hpack_literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


async def h2_until_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Server side of the HTTP/2 preface; returns the stream id of the first request."""
    await reader.readexactly(24)  # PRI * HTTP/2.0 ...
    writer.write(h2_frame(4, 0, 0, b""))  # our SETTINGS: all defaults
    while True:
        head = await reader.readexactly(9)
        length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        await reader.readexactly(length)
        if kind == 4 and not flags & 1:
            writer.write(h2_frame(4, 1, 0, b""))  # SETTINGS ACK
        if kind == 1:
            return stream


def mqtt_length(size: int) -> bytes:
    """MQTT's variable-length integer (at most 268,435,455)."""
    out = bytearray()
    while True:
        digit, size = size % 128, size // 128
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)
