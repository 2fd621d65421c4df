"""Deadlines hold for every scheme: no socket outlives its sample, no silence its timeout.

- **File descriptors.** For every registered scheme, many samples against a
  silent peer (accepts, never answers), a refusing one (a closed port) and a
  garbage one (random bytes, then silence); the process's open file
  descriptors (``/proc/self/fd``) are counted before and after: they may not
  grow beyond a small constant. The peers run in a process of their own
  (``peers_process.py``), so every descriptor counted here is the probe's.
  gRPC's channels used to keep connecting for its 20 s minimum connect
  timeout after a timed-out sample: 61 sockets open after 60 silent samples.
- **Timeouts.** A target that never answers ends as a ``timeout`` within the
  sample's timeout plus one second, for every scheme (``time.monotonic``
  against the bound: correctness, not speed).
- **Floods.** A target that streams 100 MB at whatever connects (after an
  HTTP head when it was sent an HTTP request) is read only up to the probe's
  cap, with bounded memory (tracemalloc peak and resident high-water mark),
  for every TCP scheme. (UDP reads one datagram of at most 64 KiB at a time.)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.base import ProbeConfig, ProbeResult
from probes.registry import schemes
from probes.runner import run_probe
from tests.probes.conftest import LOOPBACK_NETWORKS, open_fds
from tests.probes.hostile import HostileServer, measure

pytestmark = pytest.mark.usefixtures("allow_loopback")

SCHEMES = schemes()
SAMPLES = 8
SAMPLE_TIMEOUT_S = 0.25
FD_SLACK = 2  # descriptors a library may open once and keep (an epoll, an eventfd)
SETTLE_S = 1.0  # the longest a closed socket may take to leave /proc/self/fd
FLOOD = 100 * 1024 * 1024
MEMORY_BOUND = 8 * 1024 * 1024
RSS_BOUND = 32 * 1024 * 1024


def url_for(scheme: str, tcp_port: int, udp_port: int) -> str:
    port = udp_port if scheme == "udp" else tcp_port
    user = "prober:pw@" if scheme == "sftp" else ""  # sftp refuses a URL without a user
    return f"{scheme}://{user}127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def peers() -> Iterator[dict[str, int]]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("peers_process.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    ports: dict[str, int] = json.loads(process.stdout.readline())
    try:
        yield ports
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def closed_ports() -> tuple[int, int]:
    """A TCP and a UDP port on loopback that nothing listens on (bound, then released)."""
    import socket

    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("127.0.0.1", 0))
        udp.bind(("127.0.0.1", 0))
        return tcp.getsockname()[1], udp.getsockname()[1]


def ports_for(
    scheme: str, peer: str, peers: dict[str, int], closed: tuple[int, int]
) -> tuple[int, int]:
    if peer == "refusing":
        return closed
    if scheme == "tcp" and peer == "silent":
        # For tcp:// an accepted connection is the answer; silence is a connect
        # that never completes.
        return peers["blackhole_tcp"], peers["silent_udp"]
    return peers[f"{peer}_tcp"], peers[f"{peer}_udp"]


def run(url: str, config: ProbeConfig) -> ProbeResult:
    return asyncio.run(run_probe(url, config, allowed_networks=LOOPBACK_NETWORKS))


def settled_fds(limit: int) -> dict[int, str]:
    """The open descriptors once they are at most ``limit``, or after SETTLE_S."""
    end = time.monotonic() + SETTLE_S
    while True:
        now = open_fds()
        if len(now) <= limit or time.monotonic() > end:
            return now
        time.sleep(0.02)


@pytest.mark.parametrize("peer", ["silent", "refusing", "garbage"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_socket_outlives_its_sample(
    scheme: str, peer: str, peers: dict[str, int], closed_ports: tuple[int, int]
) -> None:
    url = url_for(scheme, *ports_for(scheme, peer, peers, closed_ports))
    config = ProbeConfig(count=SAMPLES, interval_ms=10, timeout_s=SAMPLE_TIMEOUT_S)
    # One sample first: a library's one-time descriptors (gRPC's pollers) are not a leak.
    run(url, config.model_copy(update={"count": 1}))
    before = open_fds()
    result = run(url, config)
    after = settled_fds(len(before) + FD_SLACK)
    if not (scheme == "tcp" and peer == "garbage"):  # tcp:// only connects: that answers
        assert not result.ok, result
    assert result.samples == SAMPLES
    new = {fd: what for fd, what in after.items() if before.get(fd) != what}
    assert len(after) <= len(before) + FD_SLACK, (
        f"{scheme} against a {peer} peer: {len(before)} descriptors before {SAMPLES} samples, "
        f"{len(after)} {SETTLE_S:g} s after the probe ended ({result.failure}: {result.error}); "
        f"new: {sorted(new.values())}"
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_silent_target_ends_as_a_timeout_within_timeout_plus_a_second(
    scheme: str, peers: dict[str, int]
) -> None:
    url = url_for(scheme, *ports_for(scheme, "silent", peers, (0, 0)))
    timeout_s = 1.0
    started = time.monotonic()
    result = run(url, ProbeConfig(count=1, timeout_s=timeout_s))
    elapsed = time.monotonic() - started
    assert result.failure == "timeout", (result.failure, result.error)
    assert "timed out" in (result.error or ""), result.error
    assert elapsed <= timeout_s + 1.0, f"{scheme}: {elapsed:.2f} s for a {timeout_s:g} s timeout"


async def firehose(
    server: HostileServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """100 MB at whatever connects; after an HTTP head when it asked in HTTP."""
    try:
        first = await asyncio.wait_for(reader.read(4096), 0.2)
    except TimeoutError:
        first = b""  # a client that waits for the server to speak first
    if first.split(b" ", 1)[0] in (b"GET", b"POST", b"HEAD", b"PUT"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % FLOOD)
    await server.flood(writer, total=FLOOD, chunk=b"\0" * 65536)


@pytest.mark.parametrize("throughput", [False, True], ids=["default", "throughput"])
@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "udp"])
def test_a_100_mb_stream_is_read_only_to_the_cap(scheme: str, throughput: bool) -> None:
    """With ``--throughput`` the cap (256 MiB) is over the stream: memory must stay bounded."""
    timeout_s = 5.0
    config = ProbeConfig(count=1, timeout_s=timeout_s, throughput=throughput)
    server = HostileServer(firehose)
    try:
        measured = measure(url_for(scheme, server.port, 0), config)
    finally:
        server.close()
    result = measured.result
    assert measured.elapsed_s <= timeout_s + 1.0, measured.elapsed_s
    assert measured.peak_bytes < MEMORY_BOUND, f"{scheme}: tracemalloc peak {measured.peak_bytes:,}"
    if measured.rss_growth_bytes is not None:
        assert measured.rss_growth_bytes < RSS_BOUND, (
            f"{scheme}: RSS +{measured.rss_growth_bytes:,}"
        )
    if not throughput:
        assert server.sent < FLOOD, f"{scheme} read the whole 100 MB"
    if result.ok:
        assert (result.details.get("transfer_bytes") or 0) <= config.read_cap
