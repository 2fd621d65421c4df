"""``udp://host[:port]``: echo round trip, against RFC 862 echo or the responder.

Each sample opens a new connected UDP socket, sends one datagram carrying a
random id and a sequence number, and waits for the same bytes to come back.
The round trip is timed from just before ``send()`` to the return of the
``recv()`` that delivered the matching echo. Datagrams that do not match
(another sample's late echo, stray traffic) are skipped, so a late reply is
never counted for the wrong sample. No echo before the deadline is a lost
sample; the runner turns those into loss, and answered round trips into jitter.

The socket is connected, so the kernel passes on an ICMP port-unreachable as
``ConnectionRefusedError``: a closed port fails at once instead of timing out.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import time

from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.tcp import open_socket

PAYLOAD_BYTES = 64  # well under any path MTU (RFC 8085)
MAGIC = b"SWB1"
READ_BATCH = 64
_sequence = itertools.count(1)


def make_payload(sequence: int, token: str) -> bytes:
    head = MAGIC + f" {token} {sequence} ".encode()
    return head + b"." * max(PAYLOAD_BYTES - len(head), 0)


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    loop = asyncio.get_running_loop()
    sequence = next(_sequence)
    payload = make_payload(sequence, secrets.token_hex(8))
    sock = open_socket(target, kind=socket.SOCK_DGRAM)
    echoed: asyncio.Future[int] = loop.create_future()
    strays = 0

    def on_readable() -> None:
        # Runs when the selector reports a datagram; the arrival is stamped
        # here rather than when this task is next resumed (see tcp.timed_connect).
        nonlocal strays
        # At most a batch per call: a flood of stray datagrams must not keep
        # this callback, and so the loop and the deadline, from moving on.
        for _ in range(READ_BATCH):
            if echoed.done():
                return
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP port unreachable arrives as ECONNREFUSED
                echoed.set_exception(exc)
                return
            arrived = time.perf_counter_ns()
            if data == payload:
                echoed.set_result(arrived)
            else:
                strays += 1

    fd = sock.fileno()
    try:
        # connect() on UDP sends nothing; it only fixes the peer address, so
        # the kernel reports ICMP errors and drops datagrams from elsewhere.
        sock.connect((target.address, target.port))
        loop.add_reader(fd, on_readable)
        try:
            started = time.perf_counter_ns()
            sock.send(payload)
            arrived = await echoed
        finally:
            loop.remove_reader(fd)
        rtt_ms = (arrived - started) / 1e6
    except ConnectionRefusedError as exc:
        raise ProbeError(
            "port unreachable (ICMP): nothing listens on that UDP port", failure="refused"
        ) from exc
    finally:
        sock.close()
    details: dict[str, object] = {"payload_bytes": len(payload)}
    if strays:
        details["unmatched_datagrams"] = strays
    return Sample(latency_ms=rtt_ms, phases_ms={}, details=details)
