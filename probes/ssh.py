"""ssh://host:port -- banner, negotiated algorithms and host-key fingerprint, never logging in.

How it avoids logging in: asyncssh's own :func:`asyncssh.get_server_host_key`
builds an ``SSHClientConnection`` with ``wait="kex"``; such a connection
resolves its waiter as soon as the first key exchange finishes and *returns
before sending the ``ssh-userauth`` service request* (RFC 4253 section 10), so
no user name, password, key or even the ``none`` method ever reaches the server.
This module builds the connection the same way, on a socket it connected itself
(so the TCP connect is timed alone and goes to ``target.address``), and aborts
it right after the key exchange. ``asyncssh.connect()`` is not used: it always
goes on to authenticate, and a server that accepts the ``none`` method would
then have logged us in.

What is reported comes from the wire, not from asyncssh internals: a
transparent tap between the socket and asyncssh records the server's
identification line and both sides' ``SSH_MSG_KEXINIT`` packets, which are
sent in the clear (RFC 4253 section 7.1). The negotiated key-exchange and
host-key algorithms are then computed by the RFC's rule (the first algorithm
on the client's list that the server also lists), and the host key itself is
the one the server proved it owns during the key exchange; its fingerprint is
SHA256 in ``ssh-keygen -l`` form.

Phases (``docs/usecase.md`` section 4 names dns, connect, tls, ttfb,
transfer):

- ``connect``: the TCP handshake to ``target.address``.
- ``tls``: null -- SSH has no TLS; its own handshake is reported below.
- ``ttfb``: from the connected socket to the end of the server's
  identification line (the server speaks first in SSH, so this is its first
  byte in the same sense as curl's).
- ``transfer``: null.
- ``details["kex_ms"]``: from the identification line to the end of the key
  exchange (the client's KEXINIT, the DH/ECDH round trip, NEWKEYS).
- ``latency_ms``: the whole sample, TCP connect to finished key exchange.

:func:`open_ssh` is shared with :mod:`probes.sftp`, which goes on to log in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncssh

from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.tlsinfo import tcp_connect

SSH_MSG_KEXINIT = 20
# Enough for any sane identification line plus a KEXINIT; a server that sends
# more before its KEXINIT is not inspected further (asyncssh still decides).
TAP_LIMIT = 64 * 1024
# Pseudo-algorithms that signal extensions, not key-exchange methods (RFC 8308,
# OpenSSH's strict-kex); they never match the other side's list by design.
PSEUDO_KEX = ("ext-info-", "kex-strict-")
DIAGNOSIS_MARGIN_S = 0.01

# asyncssh logs every connection at INFO; with the project's root logger at
# INFO a 200-target run would bury the command's output. An explicit level
# for the "asyncssh" logger in LOGGING still wins.
if logging.getLogger("asyncssh").level == logging.NOTSET:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


# -- the wire tap ---------------------------------------------------------------


@dataclass
class Kexinit:
    """The name-lists of an SSH_MSG_KEXINIT packet (RFC 4253 section 7.1)."""

    kex: list[str]
    host_key: list[str]
    encryption_cs: list[str]
    encryption_sc: list[str]
    mac_cs: list[str]
    mac_sc: list[str]
    compression_cs: list[str]
    compression_sc: list[str]


def parse_kexinit(payload: bytes) -> Kexinit:
    """Parse a KEXINIT payload (message number, cookie, ten name-lists, ...)."""
    if not payload or payload[0] != SSH_MSG_KEXINIT:
        raise ValueError("not a KEXINIT packet")
    pos = 1 + 16  # message number and the random cookie
    lists: list[list[str]] = []
    for _ in range(10):
        if pos + 4 > len(payload):
            raise ValueError("truncated KEXINIT")
        (length,) = struct.unpack_from(">I", payload, pos)
        pos += 4
        if pos + length > len(payload):
            raise ValueError("truncated KEXINIT name-list")
        raw = payload[pos : pos + length].decode("ascii", errors="replace")
        lists.append([name for name in raw.split(",") if name])
        pos += length
    return Kexinit(*lists[:8])


def negotiate(client: Sequence[str], server: Sequence[str]) -> str | None:
    """RFC 4253 section 7.1: the first algorithm on the client's list the server supports."""
    offered = set(server)
    for name in client:
        if name in offered and not name.startswith(PSEUDO_KEX):
            return name
    return None


@dataclass
class _Direction:
    """What one side sent: its identification line and its first binary packet."""

    buffer: bytearray = field(default_factory=bytearray)
    ident: str | None = None
    ident_ns: int | None = None
    first_line: str | None = None
    kexinit: Kexinit | None = None
    done: bool = False

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data[: max(0, TAP_LIMIT - len(self.buffer))]
        if self.ident is None:
            self._read_ident()
        if self.ident is not None and self.kexinit is None:
            self._read_packet()
        if self.kexinit is not None or len(self.buffer) >= TAP_LIMIT:
            self.done = True
            self.buffer.clear()

    def _read_ident(self) -> None:
        # RFC 4253 section 4.2: other lines may precede the "SSH-" line.
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end]).rstrip(b"\r").decode("utf-8", errors="replace")
            del self.buffer[: end + 1]
            if self.first_line is None:
                self.first_line = line
            if line.startswith("SSH-"):
                self.ident = line
                self.ident_ns = time.perf_counter_ns()
                return

    def _read_packet(self) -> None:
        if len(self.buffer) < 5:
            return
        packet_length, padding_length = struct.unpack_from(">IB", self.buffer, 0)
        if packet_length > TAP_LIMIT:
            self.done = True
            return
        if len(self.buffer) < 4 + packet_length:
            return
        payload = bytes(self.buffer[5 : 4 + packet_length - padding_length])
        try:
            self.kexinit = parse_kexinit(payload)
        except ValueError:
            self.done = True


class _TapTransport:
    """Passes asyncssh's writes to the real transport, recording them on the way."""

    def __init__(self, transport: asyncio.Transport, sent: _Direction) -> None:
        self._transport = transport
        self._sent = sent

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sent.feed(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _WireTap(asyncio.Protocol):
    """Sits between the socket and asyncssh and sees the cleartext start of the session."""

    def __init__(self, inner: asyncssh.SSHClientConnection) -> None:
        self.inner = inner
        self.received = _Direction()
        self.sent = _Direction()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tap = _TapTransport(cast(asyncio.Transport, transport), self.sent)
        self.inner.connection_made(cast(asyncio.BaseTransport, tap))

    def data_received(self, data: bytes) -> None:
        self.received.feed(data)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        # asyncssh lets the transport close on EOF (it returns None).
        self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


# -- connecting ----------------------------------------------------------------


async def client_options(target: Target, **login: Any) -> asyncssh.SSHClientConnectionOptions:
    """Options that load nothing from ~/.ssh and trust any host key (we report it instead).

    ``config=None`` matters: the user's ssh_config could name a ProxyCommand or
    another host, and the probe must talk to the checked address only.
    """
    return await asyncssh.SSHClientConnectionOptions.construct(
        config=None,
        host=target.host,
        port=target.port,
        known_hosts=None,
        x509_trusted_certs=None,
        x509_trusted_cert_paths=None,
        x509_purposes="any",
        gss_host=None,
        gss_kex=False,
        gss_auth=False,
        client_keys=None,
        agent_path=None,
        host_based_auth=False,
        public_key_auth=False,
        **login,
    )


@dataclass
class SSHSession:
    """A connection that finished its key exchange (and, with wait="auth", its login)."""

    conn: asyncssh.SSHClientConnection
    tap: _WireTap
    connect_ns: int
    ready_ns: int  # socket connected -> waiter resolved

    @property
    def ident_ns(self) -> int | None:
        return self.tap.received.ident_ns


class Handshake:
    """One SSH connection attempt; ``tap`` stays readable when the attempt fails."""

    def __init__(self) -> None:
        self.tap: _WireTap | None = None
        self.connected_at: int | None = None

    async def open(
        self, target: Target, options: asyncssh.SSHClientConnectionOptions, wait: str
    ) -> SSHSession:
        loop = asyncio.get_running_loop()
        options.waiter = loop.create_future()
        sock, connect_ms = await tcp_connect(target)
        self.connected_at = time.perf_counter_ns()
        conn: asyncssh.SSHClientConnection | None = None

        def factory() -> _WireTap:
            nonlocal conn
            conn = asyncssh.SSHClientConnection(loop, options, wait=wait)
            self.tap = _WireTap(conn)
            return self.tap

        try:
            await loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        assert conn is not None and self.tap is not None
        conn.set_extra_info(host=target.host, port=target.port)
        try:
            await options.waiter
        except BaseException:
            conn.abort()
            raise
        ready_ns = time.perf_counter_ns() - self.connected_at
        return SSHSession(conn, self.tap, round(connect_ms * 1e6), ready_ns)

    def not_ssh_reason(self) -> str | None:
        """Why the peer is not an SSH server, when it said something that is not SSH."""
        if self.tap is None or self.tap.received.ident is not None:
            return None
        first = self.tap.received.first_line
        if first is None:
            return None
        return f"no SSH identification from the server; it said {printable(first)!r}"


async def close_session(conn: asyncssh.SSHClientConnection, timeout: float = 1.0) -> None:
    """Abort without waiting on the peer; bounded so a stuck peer cannot hold the sample."""
    conn.abort()
    try:
        async with asyncio.timeout(timeout):
            await conn.wait_closed()
    except TimeoutError:
        pass


def printable(text: str, limit: int = 200) -> str:
    """Server-supplied text made safe to show: no control characters, bounded length."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean[:limit] + ("..." if len(clean) > limit else "")


def sample_timeout(deadline: float) -> asyncio.Timeout:
    """A timeout that fires just before the runner's own one for the same deadline.

    Both fire at the deadline otherwise, and the runner's would win, replacing
    a diagnosis made here ("it said '220 ...'", not an SSH server) by a bare
    "timed out".
    """
    return asyncio.timeout(max(0.0, deadline - time.monotonic() - DIAGNOSIS_MARGIN_S))


def fingerprint_sha256(public_blob: bytes) -> str:
    """``ssh-keygen -l`` style: base64 of SHA-256 over the key blob, without padding."""
    digest = hashlib.sha256(public_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def algorithm_details(tap: _WireTap) -> dict[str, Any]:
    """Negotiated and offered algorithms, from the two KEXINIT packets."""
    server = tap.received.kexinit
    client = tap.sent.kexinit
    if server is None or client is None:
        return {}
    return {
        "kex_algorithm": negotiate(client.kex, server.kex),
        "host_key_algorithm": negotiate(client.host_key, server.host_key),
        "cipher": negotiate(client.encryption_cs, server.encryption_cs),
        "mac": negotiate(client.mac_cs, server.mac_cs),
        "server_kex_algorithms": [n for n in server.kex if not n.startswith(PSEUDO_KEX)],
        "server_host_key_algorithms": server.host_key,
    }


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


# -- the probe -------------------------------------------------------------------


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    # Built before any timing: this may read files and runs in an executor.
    options = await client_options(target)
    attempt = Handshake()
    try:
        async with sample_timeout(deadline):
            session = await attempt.open(target, options, wait="kex")
    except TimeoutError:
        reason = attempt.not_ssh_reason()
        if reason:
            raise ProbeError(reason) from None
        raise
    except (asyncssh.Error, ValueError) as exc:
        raise ProbeError(attempt.not_ssh_reason() or f"SSH handshake failed: {exc}") from None
    try:
        tap = session.tap
        key = session.conn.get_server_host_key()
        connected_at = attempt.connected_at or 0
        ttfb_ns = None if session.ident_ns is None else session.ident_ns - connected_at
        kex_ns = None if ttfb_ns is None else session.ready_ns - ttfb_ns
        details: dict[str, Any] = {
            "banner": printable(tap.received.ident or ""),
            "kex_ms": _ms(kex_ns),
            **algorithm_details(tap),
        }
        if key is not None:
            details["host_key_type"] = key.get_algorithm()
            details["host_key_fingerprint"] = fingerprint_sha256(key.public_data)
        return Sample(
            ok=True,
            latency_ms=(session.connect_ns + session.ready_ns) / 1e6,
            phases_ms={
                "connect": session.connect_ns / 1e6,
                "tls": None,
                "ttfb": _ms(ttfb_ns),
                "transfer": None,
            },
            details=details,
        )
    finally:
        await close_session(session.conn)
