"""Timed connections, TLS contexts and certificate facts shared by the TCP-based probes.

:func:`connect` opens the TCP connection to the address the guard checked and,
for TLS, runs the handshake with the URL's host name for SNI and the
certificate check. It times exactly two things with ``perf_counter_ns``: the
TCP connect (``sock_connect`` on a socket created beforehand) and the TLS
handshake. Everything else (building the SSL context, parsing the certificate)
happens outside those intervals: contexts are built once per process and
cached, and certificate facts are read after the handshake has been timed.

Certificate verification:

- Without ``insecure`` the handshake verifies the chain and the host name; a
  failure raises :class:`CertificateVerifyError` with OpenSSL's reason
  ("certificate has expired", "self-signed certificate", "Hostname mismatch").
- With ``insecure`` the first handshake still verifies. When it fails, the
  reason is kept, that connection is dropped, and a *new* connection is opened
  and handshaken without verification; the phases reported are those of the
  second connection, so the failed attempt is never timed. A certificate that
  verifies therefore costs nothing extra, and ``details`` always tells whether
  it verified and why not.

Extra trust anchors: the environment variable ``PROBE_CA_FILE`` names a PEM
file of CA certificates trusted *in addition to* the system store (for an
internal CA; the tests use it for a ``trustme`` CA). It is read when a context
is built, and the cache is keyed on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from probes.base import ProbeError, Target

ENV_CA_FILE = "PROBE_CA_FILE"

# StreamReader buffer limit: large enough that a fast download is not paused
# and resumed every 128 KiB, small enough to bound memory per connection.
STREAM_LIMIT = 1024 * 1024

# A TLS close waits for the peer's close_notify; a misbehaving peer must not
# hold the socket (and its file descriptor) for asyncio's default 30 s.
SHUTDOWN_TIMEOUT_S = 1.0


# What OpenSSL's terse reasons mean, for the ones a wrong or hostile server causes.
# OpenSSL checks a record's and a handshake message's announced length before
# it buffers them: a record over 16 KiB (+ expansion), a certificate chain over
# 100 KiB (its max_cert_list), any other handshake message over its own limit.
REASON_HINTS = {
    "WRONG_VERSION_NUMBER": " (the server does not speak TLS on this port?)",
    "PACKET_LENGTH_TOO_LONG": " (the server announced a TLS record over the maximum size)",
    "RECORD_OVERFLOW": " (the server announced a TLS record over the maximum size)",
    "EXCESSIVE_MESSAGE_SIZE": (
        " (the server announced a handshake message, such as its certificate chain,"
        " over the size a client accepts)"
    ),
}


class CertificateVerifyError(ProbeError):
    """The certificate did not verify; ``reason`` is OpenSSL's explanation."""

    def __init__(self, reason: str, connect_ms: float | None = None) -> None:
        super().__init__(f"certificate verify failed: {reason}", failure="tls")
        self.reason = reason
        self.connect_ms = connect_ms


# --- SSL contexts ------------------------------------------------------------------


def client_context(*, verify: bool, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """The cached client context for these settings (built outside any timed phase)."""
    return _context(verify, tuple(alpn), os.environ.get(ENV_CA_FILE) or None)


@functools.lru_cache(maxsize=32)
def _context(verify: bool, alpn: tuple[str, ...], ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ProbeError(
                f"{ENV_CA_FILE}={ca_file!r} could not be loaded: {exc}", failure="other"
            ) from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


# --- Certificate and session facts ----------------------------------------------------


def certificate_facts(der: bytes, now: dt.datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, SANs, validity and fingerprint of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    moment = now or dt.datetime.now(dt.UTC)
    not_after = cert.not_valid_after_utc
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        pass
    else:
        names = ext.value
        if isinstance(names, x509.SubjectAlternativeName):
            sans.extend(names.get_values_for_type(x509.DNSName))
            sans.extend(str(ip) for ip in names.get_values_for_type(x509.IPAddress))
    seconds_left = (not_after - moment).total_seconds()
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": sans,
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        # Whole days left, rounded down: 0 on the last day, negative once expired.
        "days_to_expiry": int(seconds_left // 86400),
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def session_facts(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
    """Protocol version, cipher, ALPN and the peer certificate's facts."""
    if ssl_object is None:
        return {}
    cipher = ssl_object.cipher()
    facts: dict[str, Any] = {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "alpn": ssl_object.selected_alpn_protocol(),
    }
    # binary_form works even when the certificate was not verified (CERT_NONE).
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        try:
            facts.update(certificate_facts(der))
        except ValueError as exc:
            facts["certificate_error"] = f"unparseable certificate: {exc}"
    return facts


# --- Timed connections ----------------------------------------------------------------


class TimedStreamProtocol(asyncio.StreamReaderProtocol):
    """A StreamReaderProtocol that notes when bytes arrive.

    asyncio calls ``connection_made`` (for TLS: the moment the handshake
    completes) and ``data_received`` synchronously from the transport, so the
    times noted here are when the handshake finished and when application bytes
    arrived (decrypted, for TLS), not when the task waiting for them was next
    scheduled. On a busy machine that wake-up can lag by milliseconds.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.connected_ns: int | None = None
        self.first_data_ns: int | None = None
        self.first_chunk = 0
        self.last_data_ns: int | None = None
        self.bytes_after_first = 0

    def reset(self) -> None:
        """Forget earlier arrivals: the next bytes are the answer to what is sent now."""
        self.first_data_ns = None
        self.first_chunk = 0
        self.last_data_ns = None
        self.bytes_after_first = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_ns = time.perf_counter_ns()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self.first_data_ns is None:
            self.first_data_ns = now
            self.first_chunk = len(data)
        else:
            self.bytes_after_first += len(data)
        self.last_data_ns = now
        super().data_received(data)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: TimedStreamProtocol
    connect_ms: float
    tls_ms: float | None = None
    tls: dict[str, Any] = field(default_factory=dict)

    def phases(self) -> dict[str, float | None]:
        return {"connect": round(self.connect_ms, 3), "tls": _round(self.tls_ms)}

    async def close(self, grace_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Close politely (TLS close_notify), but never wait more than ``grace_s``."""
        await close_writer(self.writer, grace_s)

    def abort(self) -> None:
        """Drop the connection at once: on errors and timeouts nothing may wait."""
        self.writer.transport.abort()


def until(deadline: float) -> asyncio.Timeout:
    """``asyncio.timeout`` for a ``time.monotonic()`` deadline, as the probe contract gives it."""
    return asyncio.timeout(max(0.0, deadline - time.monotonic()))


def close_grace(deadline: float) -> float:
    """How long a polite close may wait: at most half the time left, so that a
    slow close_notify can never turn an answered sample into a timeout."""
    return max(0.0, min(SHUTDOWN_TIMEOUT_S, (deadline - time.monotonic()) / 2))


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _elapsed_ms(started_ns: int) -> float:
    return (time.perf_counter_ns() - started_ns) / 1e6


async def tcp_connect(target: Target) -> tuple[socket.socket, float]:
    """A connected non-blocking socket to ``target.address`` and the connect time in ms."""
    family = (
        socket.AF_INET6 if ipaddress.ip_address(target.address).version == 6 else socket.AF_INET
    )
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        # curl sets TCP_NODELAY too: a small request must leave at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        started = time.perf_counter_ns()
        await loop.sock_connect(sock, (target.address, target.port))
        return sock, _elapsed_ms(started)
    except BaseException:
        sock.close()
        raise


def server_name(target: Target) -> str:
    """SNI and certificate host name: the URL's host, never the resolved address."""
    return target.host.strip("[]")


async def open_stream(
    sock: socket.socket,
    context: ssl.SSLContext | None = None,
    hostname: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, TimedStreamProtocol]:
    """Streams over a connected socket (TLS handshake included when ``context`` is given).

    ``asyncio.open_connection`` with a :class:`TimedStreamProtocol` in place of
    the plain one; the socket is closed on any failure.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    protocol = TimedStreamProtocol(reader)
    try:
        if context is None:
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        else:
            transport, _ = await loop.create_connection(
                lambda: protocol,
                sock=sock,
                ssl=context,
                server_hostname=hostname,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            )
    except BaseException:
        sock.close()
        raise
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop), protocol


async def _handshake(
    sock: socket.socket, target: Target, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, TimedStreamProtocol, float]:
    started = time.perf_counter_ns()
    try:
        reader, writer, protocol = await open_stream(sock, context, server_name(target))
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or str(exc)
        raise CertificateVerifyError(str(reason)) from exc
    except (ssl.SSLEOFError, ConnectionError) as exc:
        raise ProbeError(
            "TLS handshake failed: the peer closed the connection", failure="tls"
        ) from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        reason += REASON_HINTS.get(reason, "")
        raise ProbeError(f"TLS handshake failed: {reason}", failure="tls") from exc
    # The handshake ended when asyncio called connection_made, not when we woke up.
    finished = protocol.connected_ns or time.perf_counter_ns()
    return reader, writer, protocol, (finished - started) / 1e6


async def connect(
    target: Target, *, tls: bool, insecure: bool = False, alpn: Sequence[str] = ()
) -> Connection:
    """Open a new connection to the target, timing the TCP connect and TLS handshake."""
    if not tls:
        sock, connect_ms = await tcp_connect(target)
        reader, writer, protocol = await open_stream(sock)
        return Connection(reader, writer, protocol, connect_ms)

    verifying = client_context(verify=True, alpn=alpn)
    sock, connect_ms = await tcp_connect(target)
    try:
        reader, writer, protocol, tls_ms = await _handshake(sock, target, verifying)
    except CertificateVerifyError as exc:
        exc.connect_ms = round(connect_ms, 3)
        if not insecure:
            raise
        # Measure on a fresh connection that does not verify; report why it failed.
        permissive = client_context(verify=False, alpn=alpn)
        sock, connect_ms = await tcp_connect(target)
        reader, writer, protocol, tls_ms = await _handshake(sock, target, permissive)
        facts = session_facts(writer.get_extra_info("ssl_object"))
        facts.update(verified=False, verify_error=exc.reason)
        return Connection(reader, writer, protocol, connect_ms, tls_ms, facts)
    facts = session_facts(writer.get_extra_info("ssl_object"))
    facts.update(verified=True, verify_error=None)
    return Connection(reader, writer, protocol, connect_ms, tls_ms, facts)


async def inspect_unverified(target: Target, alpn: Sequence[str] = ()) -> dict[str, Any]:
    """TLS facts from an untimed handshake that does not verify (after a verify failure)."""
    sock, _ = await tcp_connect(target)
    context = client_context(verify=False, alpn=alpn)
    _reader, writer, _protocol, _ms = await _handshake(sock, target, context)
    try:
        return session_facts(writer.get_extra_info("ssl_object"))
    finally:
        await close_writer(writer)


async def close_writer(writer: asyncio.StreamWriter, grace_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Close a connection without letting a silent peer hold it open."""
    if grace_s <= 0:
        writer.transport.abort()
        return
    writer.close()
    try:
        async with asyncio.timeout(grace_s):
            await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        writer.transport.abort()
