"""Hostile lengths: every length a peer announces is capped before anything is allocated.

For every protocol a server on 127.0.0.1:0 announces a length far beyond
what a probe reads (a 4 GB AMQP frame, a 4 GB gRPC message, a 16 MB HTTP/2
frame, a 100 MB NATS, Redis or MQTT message, a 2**62 byte WebSocket frame,
an oversized TLS record or handshake message, a packet of 4 GB after an SSH
banner, an SFTP packet of 4 GB, lines that never end) and then floods: the
bytes to back the announcement keep coming, as fast as the probe reads them.
Each test asserts that the probe

- ends with a clear failure in the result's ``failure`` field (never ok, and
  not a timeout: the announcement alone is reason enough to stop), within
  the sample's timeout plus a second (a correctness bound, not a benchmark);
- needs bounded memory: the tracemalloc peak and the growth of the resident
  high-water mark stay a few MB, where buffering the flood would need tens;
- stopped reading: the server could not push the whole flood.

Protocols that carry no bulk data (AMQP, NATS, Redis, MQTT, WebSocket
messages) cap announced messages at a fixed size even with ``--throughput``,
whose 256 MiB read cap is meant for transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import asyncssh
import pytest
import trustme

from probes.base import ProbeConfig
from tests.probes.hostile import (
    FLOOD_BYTES,
    HostileServer,
    Measured,
    Script,
    h2_frame,
    h2_until_request,
    hpack_literal,
    measure,
    mqtt_length,
    read_head,
    websocket_accept,
)
from tests.probes.servers_ssh import (
    SSH_PASSWORD,
    SSH_USER,
    LoopThread,
    SSHCounters,
    _SSHServer,
    host_key,
)

TIMEOUT_S = 5.0
MEMORY_BOUND = 8 * 1024 * 1024  # bytes: the probe's own buffers are a few hundred KiB
RSS_BOUND = 32 * 1024 * 1024  # the flood is 64 MiB: buffering half of it would show
FOUR_GB = 0xFFFF_FFF0
HUNDRED_MB = 100 * 1024 * 1024

pytestmark = pytest.mark.usefixtures("allow_loopback")

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


def config(throughput: bool = False) -> ProbeConfig:
    return ProbeConfig(count=1, timeout_s=TIMEOUT_S, throughput=throughput)


def assert_refused(
    measured: Measured,
    server: HostileServer | HostileSFTP,
    *words: str,
    failure: str = "wrong_protocol",
) -> None:
    result = measured.result
    assert not result.ok, result
    assert result.failure == failure, (result.failure, result.error)
    error = (result.error or "").lower()
    assert all(word in error for word in words), (words, result.error)
    assert measured.elapsed_s < TIMEOUT_S + 1.0, measured.elapsed_s
    assert measured.peak_bytes < MEMORY_BOUND, f"tracemalloc peak {measured.peak_bytes:,} B"
    if measured.rss_growth_bytes is not None:
        assert measured.rss_growth_bytes < RSS_BOUND, f"RSS grew {measured.rss_growth_bytes:,} B"
    assert server.sent < FLOOD_BYTES, f"the probe read the whole {FLOOD_BYTES:,} B flood"


def probe_hostile(
    scheme: str, script: Script, *, throughput: bool = False
) -> tuple[Measured, HostileServer]:
    server = HostileServer(script)
    try:
        measured = measure(f"{scheme}://127.0.0.1:{server.port}/", config(throughput))
    finally:
        server.close()
    return measured, server


# -- AMQP --------------------------------------------------------------------------


@pytest.mark.parametrize("throughput", [False, True])
def test_amqp_frame_of_4_gb_is_refused_at_its_header(throughput: bool) -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await reader.readexactly(8)  # AMQP\x00\x00\x09\x01
        # A method frame on channel 0 announcing ~4 GB, then the bytes keep coming.
        writer.write(b"\x01\x00\x00" + FOUR_GB.to_bytes(4, "big"))
        await server.flood(writer)

    measured, server = probe_hostile("amqp", script, throughput=throughput)
    assert_refused(measured, server, "frame", "exceeds")


# -- gRPC (HTTP/2) -----------------------------------------------------------------


@pytest.mark.parametrize("size", [1024 * 1024, 0xFFFFFFFF], ids=["1MiB", "4GB"])
def test_grpc_message_over_the_cap_is_refused(size: int) -> None:
    """1 MiB is under gRPC's default 4 MiB limit: only the probe's 64 KiB option refuses it."""

    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        stream = await h2_until_request(reader, writer)
        headers = b"\x88" + hpack_literal(b"content-type", b"application/grpc")
        writer.write(h2_frame(1, 0x4, stream, headers))  # HEADERS, END_HEADERS
        # A gRPC message announcing ``size`` bytes (uncompressed), and its first bytes.
        prefix = b"\x00" + size.to_bytes(4, "big")
        writer.write(h2_frame(0, 0, stream, prefix + b"\0" * 16000))
        await writer.drain()

    measured, server = probe_hostile("grpc", script)
    assert_refused(measured, server, "resource_exhausted")


def test_grpc_http2_frame_of_16_mb_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await reader.readexactly(24)
        # A SETTINGS frame announcing 16 MB, far over the 16 KiB a client accepts.
        writer.write((0xFFFFFF).to_bytes(3, "big") + b"\x04\x00" + b"\0\0\0\0")
        await server.flood(writer)

    measured, server = probe_hostile("grpc", script)
    assert_refused(measured, server, "unavailable")


def test_grpc_endless_response_headers_are_refused() -> None:
    """HEADERS without END_HEADERS, then CONTINUATION frames without end (a CONTINUATION flood)."""

    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        stream = await h2_until_request(reader, writer)
        writer.write(h2_frame(1, 0, stream, b"\x88"))  # :status 200, more headers follow
        field = hpack_literal(b"x-endless", b"y" * 100)
        block = h2_frame(9, 0, stream, field * 150)  # CONTINUATION, never END_HEADERS
        await server.flood(writer, chunk=block * 4)

    measured, server = probe_hostile("grpc", script)
    assert_refused(measured, server)


# -- SSH and SFTP --------------------------------------------------------------------


def test_ssh_packet_of_4_gb_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(b"SSH-2.0-hostile\r\n" + FOUR_GB.to_bytes(4, "big") + b"\x04")
        await server.flood(writer)

    measured, server = probe_hostile("ssh", script)
    assert_refused(measured, server, "ssh handshake failed")


def test_ssh_endless_banner_line_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await server.flood(writer, chunk=b"x" * 65536)  # no newline, ever

    measured, server = probe_hostile("ssh", script)
    assert_refused(measured, server)


class HostileSFTP:
    """A real SSH server (asyncssh) whose ``sftp`` subsystem announces a 4 GB packet.

    The login is real (password, as the sftp tests use); the subsystem is not:
    its first bytes are the length of an SFTP packet of 4 GB, then some of them.
    """

    FOLLOW = 2 * 1024 * 1024  # what the SSH window lets through before the client reads

    def __init__(self) -> None:
        self.sent = 0
        self._loop = LoopThread()
        outer = self

        class Session(asyncssh.SSHServerSession):
            def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
                self.chan = chan

            def subsystem_requested(self, subsystem: str) -> bool:
                return subsystem == "sftp"

            def session_started(self) -> None:
                self.chan.write(FOUR_GB.to_bytes(4, "big") + b"\x02" + b"\0" * outer.FOLLOW)
                outer.sent += outer.FOLLOW

        class Server(_SSHServer):
            def session_requested(self) -> asyncssh.SSHServerSession:
                return Session()

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1",
                0,
                server_host_keys=[host_key()],
                server_factory=lambda: Server(SSHCounters()),
                encoding=None,
                allow_scp=False,
            )

        self._acceptor = self._loop.run(start())
        self.port: int = self._acceptor.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def stop() -> None:
            self._acceptor.close()

        self._loop.run(stop())
        self._loop.stop()


def test_sftp_packet_of_4_gb_is_refused() -> None:
    server = HostileSFTP()
    try:
        url = f"sftp://{SSH_USER}:{SSH_PASSWORD}@127.0.0.1:{server.port}/"
        measured = measure(url, config())
    finally:
        server.close()
    assert_refused(measured, server, "sftp", "packet")


# -- FTP ------------------------------------------------------------------------------


def test_ftp_endless_banner_line_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(b"220 ")
        await server.flood(writer, chunk=b"x" * 65536)

    measured, server = probe_hostile("ftp", script)
    assert_refused(measured, server, "overlong")


def test_ftp_endless_multiline_reply_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(b"220-welcome\r\n")
        await server.flood(writer, chunk=b"more of the same\r\n" * 3600)

    measured, server = probe_hostile("ftp", script)
    assert_refused(measured, server, "overlong")


@pytest.mark.parametrize("throughput", [False, True])
def test_ftp_endless_listing_is_read_to_the_cap_only(throughput: bool) -> None:
    """The listing is counted as it streams; it is never held in memory whole."""
    data_servers: list[HostileServer] = []

    async def data(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await server.flood(
            writer, total=512 * 1024 * 1024, chunk=b"-rw-r--r-- 1 a b 1 f\r\n" * 3000
        )

    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(b"220 ready\r\n")
        while line := await reader.readline():
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"EPSV":
                listener = HostileServer(data)
                data_servers.append(listener)
                writer.write(
                    f"229 Entering Extended Passive Mode (|||{listener.port}|)\r\n".encode()
                )
            elif verb in (b"LIST", b"MLSD"):
                writer.write(b"150 here it comes\r\n")
            elif verb == b"USER":
                writer.write(b"331 password please\r\n")
            elif verb == b"PASS":
                writer.write(b"230 in\r\n")
            elif verb == b"FEAT":
                writer.write(b"211 no features\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
            else:
                writer.write(b"200 ok\r\n")

    try:
        measured, _ = probe_hostile("ftp", script, throughput=throughput)
    finally:
        for listener in data_servers:
            listener.close()
    result = measured.result
    assert measured.peak_bytes < MEMORY_BOUND, f"tracemalloc peak {measured.peak_bytes:,} B"
    assert data_servers and data_servers[0].sent < 512 * 1024 * 1024
    if result.ok:
        assert result.details["truncated"] is True
    else:
        assert result.failure is not None


# -- NATS -----------------------------------------------------------------------------


async def _nats_until_publish(reader: Reader, writer: Writer) -> bytes:
    """INFO, then PONG to every PING, until the client publishes; returns the subject."""
    writer.write(b'INFO {"server_id":"hostile","version":"2.10.0","max_payload":1048576}\r\n')
    while line := await reader.readline():
        if line.startswith(b"PING"):
            writer.write(b"PONG\r\n")
        elif line.startswith(b"PUB "):
            return line.split()[1]
    raise ConnectionError("the client went away")


@pytest.mark.parametrize("throughput", [False, True])
def test_nats_message_of_100_mb_is_refused(throughput: bool) -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        subject = await _nats_until_publish(reader, writer)
        writer.write(b"MSG " + subject + b" 1 reply.to " + str(HUNDRED_MB).encode() + b"\r\n")
        await server.flood(writer)

    measured, server = probe_hostile("nats", script, throughput=throughput)
    assert_refused(measured, server, "nats message", "exceeds")


def test_nats_endless_info_line_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(b'INFO {"server_id":"')
        await server.flood(writer, chunk=b"x" * 65536)

    measured, server = probe_hostile("nats", script)
    assert_refused(measured, server, "without an end")


# -- WebSocket -----------------------------------------------------------------------


@pytest.mark.parametrize("throughput", [False, True])
def test_websocket_frame_of_2_62_bytes_is_refused(throughput: bool) -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        writer.write(websocket_accept(await read_head(reader)))
        # FIN + binary, 64-bit length 2**62, unmasked (a server's frames are).
        writer.write(b"\x82\x7f" + (1 << 62).to_bytes(8, "big"))
        await server.flood(writer)

    measured, server = probe_hostile("ws", script, throughput=throughput)
    assert_refused(measured, server, "websocket", "exceeds")


def test_websocket_endless_upgrade_header_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Endless: ")
        await server.flood(writer, chunk=b"x" * 65536)

    measured, server = probe_hostile("ws", script)
    assert_refused(measured, server, "upgrade")


# -- TLS -----------------------------------------------------------------------------


async def _client_hello(reader: asyncio.StreamReader) -> None:
    head = await reader.readexactly(5)
    await reader.readexactly(int.from_bytes(head[3:5], "big"))


def test_tls_record_over_the_maximum_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await _client_hello(reader)
        # A handshake record of 65535 bytes: over TLS's 16 KiB (+2 KiB) limit.
        writer.write(b"\x16\x03\x03\xff\xff")
        await server.flood(writer)

    measured, server = probe_hostile("tls", script)
    assert_refused(measured, server, "tls record over the maximum", failure="tls")


def test_tls_handshake_message_of_16_mb_is_refused() -> None:
    """A ServerHello announcing 16 MB (a certificate chain's length is announced the same way)."""

    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await _client_hello(reader)
        record = b"\x16\x03\x03\x40\x00"
        writer.write(record + b"\x02\xff\xff\xff" + b"\0" * (16384 - 4))
        await server.flood(writer, chunk=(record + b"\0" * 16384) * 4)

    measured, server = probe_hostile("tls", script)
    assert_refused(measured, server, "handshake message", failure="tls")


def test_tls_certificate_chain_over_the_cap_is_refused(tmp_path: Path) -> None:
    """A real TLS server whose chain is ~250 KB (the CA certificate, 400 times over)."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes() * 400
    )
    assert chain.stat().st_size > 200_000
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    loop = LoopThread()

    async def hold(reader: Reader, writer: Writer) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.transport.abort()

    server = loop.run(asyncio.start_server(hold, "127.0.0.1", 0, ssl=context))
    try:
        port = server.sockets[0].getsockname()[1]
        measured = measure(f"tls://127.0.0.1:{port}/", config())
    finally:
        loop.run(_stop(server))
        loop.stop()
    result = measured.result
    assert not result.ok and result.failure == "tls", (result.failure, result.error)
    assert "certificate chain" in (result.error or ""), result.error
    assert measured.elapsed_s < TIMEOUT_S + 1.0
    assert measured.peak_bytes < MEMORY_BOUND
    if measured.rss_growth_bytes is not None:
        assert measured.rss_growth_bytes < RSS_BOUND


async def _stop(server: asyncio.Server) -> None:
    server.close()


# -- Already refused before this change: HTTP, Redis, MQTT -----------------------------------


def test_http_endless_header_line_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        await server.flood(writer, chunk=b"x" * 65536)

    measured, server = probe_hostile("http", script)
    assert_refused(measured, server)


def test_http_chunk_of_a_terabyte_is_read_to_the_cap_only() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFF\r\n")
        await server.flood(writer)

    server = HostileServer(script)
    try:
        measured = measure(f"http://127.0.0.1:{server.port}/", config())
    finally:
        server.close()
    assert measured.peak_bytes < MEMORY_BOUND, f"tracemalloc peak {measured.peak_bytes:,} B"
    assert server.sent < FLOOD_BYTES
    assert measured.elapsed_s < TIMEOUT_S + 1.0


@pytest.mark.parametrize("throughput", [False, True])
def test_redis_bulk_reply_of_100_mb_is_refused(throughput: bool) -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await reader.read(1024)
        writer.write(b"$" + str(HUNDRED_MB).encode() + b"\r\n")
        await server.flood(writer)

    measured, server = probe_hostile("redis", script, throughput=throughput)
    assert_refused(measured, server, "redis reply", "exceeds")


def test_redis_endless_line_is_refused() -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await reader.read(1024)
        writer.write(b"+")
        await server.flood(writer, chunk=b"x" * 65536)

    measured, server = probe_hostile("redis", script)
    assert_refused(measured, server, "without an end")


@pytest.mark.parametrize("throughput", [False, True])
def test_mqtt_packet_of_100_mb_is_refused(throughput: bool) -> None:
    async def script(server: HostileServer, reader: Reader, writer: Writer) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20" + mqtt_length(HUNDRED_MB))  # a CONNACK of 100 MB
        await server.flood(writer)

    measured, server = probe_hostile("mqtt", script, throughput=throughput)
    assert_refused(measured, server, "mqtt packet", "exceeds")
