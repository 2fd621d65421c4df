"""Misbehaving peers in a process of their own, for tests that count the probe's file descriptors.

Run as a script (``python tests/probes/peers_process.py``); it listens on
127.0.0.1 with ports the system picks, prints them as one JSON line, and
serves until its standard input closes:

- ``silent_tcp``: accepts and never says a word (holds each connection until
  the client closes it);
- ``garbage_tcp``: accepts, sends 4 KiB of random bytes, then holds the
  connection silently;
- ``silent_udp``: a bound UDP port that never answers;
- ``garbage_udp``: answers every datagram with random bytes;
- ``blackhole_tcp``: a listener whose accept queue is full and never
  drained, so the kernel drops new SYNs and a connect never completes: the
  target that never answers, for ``tcp://``, whose sample is the connect.

In a separate process the peers' own sockets are not in the test process's
``/proc/self/fd``, so what the test counts there is the probes' alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys

GARBAGE = os.urandom(4096)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    writer.transport.abort()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(GARBAGE)
        await writer.drain()
    except OSError:
        pass
    await silent(reader, writer)


class GarbageUDP(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(GARBAGE[:512], addr)  # type: ignore[attr-defined]


async def main() -> None:
    loop = asyncio.get_running_loop()
    silent_tcp = await asyncio.start_server(silent, "127.0.0.1", 0, backlog=1024)
    garbage_tcp = await asyncio.start_server(garbage, "127.0.0.1", 0, backlog=1024)
    silent_udp, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    garbage_udp, _ = await loop.create_datagram_endpoint(GarbageUDP, local_addr=("127.0.0.1", 0))
    # Backlog 0: one connection waiting to be accepted fills the queue.
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(blackhole.getsockname())
        fillers.append(filler)
    ports = {
        "blackhole_tcp": blackhole.getsockname()[1],
        "silent_tcp": silent_tcp.sockets[0].getsockname()[1],
        "garbage_tcp": garbage_tcp.sockets[0].getsockname()[1],
        "silent_udp": silent_udp.get_extra_info("sockname")[1],
        "garbage_udp": garbage_udp.get_extra_info("sockname")[1],
    }
    print(json.dumps(ports), flush=True)
    # Until the test closes our stdin (or dies: then the pipe closes too).
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
