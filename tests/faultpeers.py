"""Peers that fail the way real ones do, on 127.0.0.1 (tests/test_health.py and
tests/test_faults.py): one that accepts connections and never answers (a hung
Redis, PostgreSQL or broker), and a port nothing listens on (one that is down).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hung_peer() -> Iterator[int]:
    """An asyncio server on 127.0.0.1:0 that accepts, reads and never writes a byte.

    Yields its port. The connections stay open until the server stops, as a peer
    stuck in a long pause (or a full disk, or a SIGSTOP) keeps them.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):
            pass  # read and discard, answer nothing

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        return server

    server_box: list[asyncio.Server] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        server_box.append(loop.run_until_complete(serve()))
        loop.run_forever()

    thread = threading.Thread(target=run, name="hung-peer", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the hung peer did not start")
    try:
        yield port[0]
    finally:

        async def stop() -> None:
            server_box[0].close()
            for writer in writers:
                writer.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
