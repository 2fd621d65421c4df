"""``tcp://host:port``: the time a TCP connection takes to open.

Each sample opens a new socket to the checked address and times exactly the
``connect()`` (SYN to the completed handshake), like blackbox_exporter's
tcp_connect. Building the socket and closing it are outside the timing.

With ``--throughput`` the target is expected to be a Switchboard responder
(:mod:`probes.responder`): after connecting, the probe asks for
``SEND <read cap>`` and reads the stream until it has it all or until 90 % of
the sample's time is used, then closes. Phases: ``connect``; ``ttfb`` from the
request to the first byte; ``transfer`` from the first byte to the last. The
bytes of the first read are not counted in the transfer, so the rate is
bytes over the time they took to arrive.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time

from probes.base import ProbeConfig, ProbeError, Sample, Target

RECV_BUFFER = 256 * 1024
HEADER_MAX = 64
YIELD_EVERY = 16


def open_socket(target: Target, kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    """A non-blocking socket of the right family for the checked address."""
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setblocking(False)
    return sock


async def timed_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[str, int]
) -> float:
    """Connect a non-blocking socket; milliseconds from ``connect()`` to writable.

    The end is stamped in the loop's writability callback, the moment the
    selector reports the handshake done, not when this task is next resumed:
    with many probes in one loop, the resumption can wait behind others'
    callbacks, and that wait is not the network's.
    """
    done: asyncio.Future[int] = loop.create_future()

    def on_writable() -> None:
        if not done.done():
            done.set_result(time.perf_counter_ns())

    fd = sock.fileno()
    started = time.perf_counter_ns()
    err = sock.connect_ex(address)
    if err == 0:
        return (time.perf_counter_ns() - started) / 1e6
    if err not in (errno.EINPROGRESS, errno.EAGAIN):
        raise OSError(err, os.strerror(err))
    loop.add_writer(fd, on_writable)
    try:
        ended = await done
    finally:
        loop.remove_writer(fd)
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))  # e.g. ConnectionRefusedError
    return (ended - started) / 1e6


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    loop = asyncio.get_running_loop()
    sock = open_socket(target)
    try:
        connect_ms = await timed_connect(loop, sock, (target.address, target.port))
        if not config.throughput:
            return Sample(latency_ms=connect_ms, phases_ms={"connect": connect_ms})
        return await _download(loop, sock, config, deadline, connect_ms)
    finally:
        sock.close()


async def _download(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    config: ProbeConfig,
    deadline: float,
    connect_ms: float,
) -> Sample:
    wanted = config.read_cap
    buffer = bytearray(RECV_BUFFER)
    # Stop reading with a tenth of the timeout to spare, so a slow link
    # still yields a measured rate instead of a timed-out sample.
    stop_at = deadline - config.timeout_s * 0.1
    request = f"SEND {wanted}\n".encode()
    sent = time.perf_counter_ns()
    await loop.sock_sendall(sock, request)
    n = await loop.sock_recv_into(sock, buffer)
    first = time.perf_counter_ns()
    if n == 0:
        raise ProbeError("the server closed without answering SEND (not a Switchboard responder?)")
    head = bytes(buffer[:n])
    while b"\n" not in head and len(head) < HEADER_MAX:
        more = await loop.sock_recv(sock, HEADER_MAX)
        if not more:
            break
        head += more
    line, _, rest = head.partition(b"\n")
    announced = _parse_header(line)
    received = len(rest)  # payload bytes that came with the header
    counted = 0  # bytes after the first read: the transfer phase
    last = first
    stopped_early = False
    reads = 0
    try:
        async with asyncio.timeout(max(stop_at - time.monotonic(), 0.0)):
            while received < announced:
                k = await loop.sock_recv_into(sock, buffer)
                if k == 0:
                    break
                received += k
                counted += k
                last = time.perf_counter_ns()
                reads += 1
                if reads % YIELD_EVERY == 0:
                    # While data keeps arriving, sock_recv_into returns without
                    # yielding, so neither the timeout nor other probes in the
                    # loop would get a turn; check the clock and yield here.
                    if time.monotonic() >= stop_at:
                        raise TimeoutError
                    await asyncio.sleep(0)
    except TimeoutError:
        stopped_early = True
    if received < announced and not stopped_early:
        raise ProbeError(f"the stream ended after {received} of {announced} bytes")
    transfer_s = (last - first) / 1e9
    return Sample(
        latency_ms=connect_ms,
        phases_ms={
            "connect": connect_ms,
            "ttfb": (first - sent) / 1e6,
            "transfer": transfer_s * 1000.0,
        },
        transfer_bytes=counted,
        transfer_s=transfer_s if counted else None,
        details={"responder_protocol": 1, "bytes_read": received, "time_bounded": stopped_early},
    )


def _parse_header(line: bytes) -> int:
    text = line.decode("ascii", "replace").strip()
    parts = text.split()
    if len(parts) == 2 and parts[0] == "OK" and parts[1].isdigit():
        return int(parts[1])
    if parts[:1] == ["ERR"]:
        raise ProbeError(f"the responder refused: {text[4:]}")
    raise ProbeError(f"not a Switchboard responder (it answered {text[:40]!r})")
