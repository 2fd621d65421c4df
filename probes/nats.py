"""``nats://[user:password@|token@]host:port``: connect, then a request/reply round trip.

Every sample opens a new connection to the checked address. The server
speaks first with its INFO; the probe answers CONNECT and PING and waits for
PONG, the moment the server has accepted the client (an authorization error
comes back instead of PONG). One connection then plays both parts: a
responder subscribed to a unique subject ``switchboard.probe.<uuid>`` and a
requester subscribed to a unique inbox ``_INBOX.switchboard.<uuid>``; a
PING/PONG makes sure the server has both subscriptions before the clock
starts. The time from publishing the request (reply subject: the inbox) to
the reply arriving in the inbox is the sample's latency: request and reply
each pass through the server once, as in ``nats req``/``nats reply``. The
probe's own responder answers the moment the request arrives, so the latency
contains no application time. Servers of client-first protocols (Redis,
RabbitMQ, Mosquitto) say nothing to a NATS client, so against them a probe
ends as a timeout; a server that greets with something else is named by
its greeting.

Phases: ``connect`` is the TCP connect plus INFO -> CONNECT/PING -> PONG;
``tls`` is the TLS upgrade a server asks for with ``tls_required`` in its INFO
(with :mod:`probes.tlsinfo`'s contexts, as every TLS probe: the certificate
checked against the URL's host name, which is also the SNI, its facts in
``details.tls``), kept out of ``connect``. ``details`` breaks the connect down
(``tcp_connect_ms``, ``handshake_ms``) and carries the INFO facts:
``server_id``, ``server_name``, ``version``, ``proto``, ``jetstream``
(whether JetStream is available), ``max_payload``, ``headers``,
``tls_required``. Credentials: user and password from the URL, or a user
name alone as a token (``nats://TOKEN@host``), the NATS URL convention.

Why the protocol by hand instead of nats-py: with ``max_reconnect_attempts=0``
nats-py 2.16 retries a failed first connect without end (a refused port
became a timeout instead of "connection refused"), its connect timeout is in
whole seconds, it does the TLS upgrade inside ``connect()`` so TLS cannot be
timed alone, and it keeps the server's INFO (server id, JetStream) only in a
private attribute. The client side of core NATS that a probe needs is a few
text lines on asyncio streams.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

from probes import tlsinfo
from probes.base import MESSAGE_CAP_BYTES, ProbeConfig, ProbeError, Sample, Target

SUBJECT_PREFIX = "switchboard.probe."
INBOX_PREFIX = "_INBOX.switchboard."
PREVIEW_BYTES = 40
INFO_FACTS = (
    "server_id",
    "server_name",
    "version",
    "proto",
    "max_payload",
    "headers",
    "tls_required",
)
CLIENT_FACTS = {
    "verbose": False,
    "pedantic": False,
    "name": "switchboard-probe",
    "lang": "python",
    "version": "1",
    "protocol": 1,
}


def credentials(target: Target) -> dict[str, str]:
    if target.password is not None:
        return {"user": target.username or "", "pass": target.password.get_secret_value()}
    if target.username:
        return {"auth_token": target.username}
    return {}


def preview(data: bytes) -> str:
    text = data[:PREVIEW_BYTES].decode("ascii", "backslashreplace")
    return repr(text) + ("..." if len(data) > PREVIEW_BYTES else "")


@dataclass(frozen=True)
class Message:
    subject: str
    sid: str
    reply: str | None
    data: bytes


class Connection:
    """The client half of core NATS on one stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cap: int):
        self.reader = reader
        self.writer = writer
        self.cap = cap

    async def line(self) -> bytes:
        try:
            return (await self.reader.readuntil(b"\r\n"))[:-2]
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ProbeError(f"not a NATS server: it answered {preview(exc.partial)}") from None
            raise ProbeError("the server closed the connection") from None
        except asyncio.LimitOverrunError:
            raise ProbeError("not a NATS server: a protocol line without an end") from None

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next_message(self) -> Message:
        """The next MSG, answering the server's PINGs and skipping +OK and PONG."""
        while True:
            line = await self.line()
            op = line.split(b" ", 1)[0].upper()
            if op == b"MSG":
                return await self._message(line)
            if op == b"PING":
                await self.send(b"PONG\r\n")
            elif op == b"-ERR":
                raise ProbeError(f"the server reported an error: {_err_text(line)}")
            elif op not in (b"+OK", b"PONG", b"INFO"):
                raise ProbeError(f"unexpected NATS line {preview(line)}")

    async def pong(self) -> None:
        """Wait for PONG; an -ERR before it is the server refusing what came before."""
        while True:
            line = await self.line()
            op = line.split(b" ", 1)[0].upper()
            if op == b"PONG":
                return
            if op == b"PING":
                await self.send(b"PONG\r\n")
            elif op == b"-ERR":
                text = _err_text(line)
                if "authorization" in text.lower() or "authentication" in text.lower():
                    raise ProbeError(f"authentication failed: {text}", failure="other")
                raise ProbeError(f"the server refused the client: {text}")
            elif op not in (b"+OK", b"INFO"):
                raise ProbeError(f"unexpected NATS line {preview(line)}")

    async def _message(self, line: bytes) -> Message:
        # MSG <subject> <sid> [reply-to] <#bytes>
        parts = line.decode("utf-8", "replace").split()
        if len(parts) not in (4, 5) or not parts[-1].isdigit():
            raise ProbeError(f"malformed NATS MSG line {preview(line)}")
        size = int(parts[-1])
        if size > self.cap:
            raise ProbeError(
                f"a NATS message of {size} bytes exceeds the {self.cap} byte message cap"
            )
        data = (await self.reader.readexactly(size + 2))[:-2]
        reply = parts[3] if len(parts) == 5 else None
        return Message(subject=parts[1], sid=parts[2], reply=reply, data=data)


def _err_text(line: bytes) -> str:
    return line[4:].decode("utf-8", "replace").strip().strip("'")


def parse_info(line: bytes) -> dict[str, Any]:
    if not line.upper().startswith(b"INFO "):
        raise ProbeError(f"not a NATS server: it answered {preview(line)}")
    try:
        info = json.loads(line[5:])
    except ValueError:
        raise ProbeError(f"not a NATS server: INFO is not JSON: {preview(line)}") from None
    if not isinstance(info, dict):
        raise ProbeError("not a NATS server: INFO is not a JSON object")
    return info


def info_facts(info: dict[str, Any]) -> dict[str, object]:
    facts: dict[str, object] = {key: info[key] for key in INFO_FACTS if key in info}
    facts["jetstream"] = bool(info.get("jetstream", False))
    return facts


@dataclass
class Opened:
    """A connection up to the server's INFO (and the TLS upgrade it asked for)."""

    nats: Connection
    info: dict[str, Any]
    tcp_ms: float
    info_ms: float
    tls_ms: float | None = None
    tls: dict[str, Any] | None = None


async def open_connection(target: Target, config: ProbeConfig, verify: bool) -> Opened:
    sock, tcp_ms = await tlsinfo.tcp_connect(target)
    try:
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        nats = Connection(reader, writer, MESSAGE_CAP_BYTES)
        started = time.perf_counter_ns()
        info = parse_info(await nats.line())
        opened = Opened(nats, info, tcp_ms, _since(started))
        if info.get("tls_required"):
            # NATS upgrades after its plain-text INFO; the context and the
            # name are the ones every TLS probe uses (probes.tlsinfo).
            context = tlsinfo.client_context(verify=verify)
            started = time.perf_counter_ns()
            try:
                await writer.start_tls(context, server_hostname=tlsinfo.server_name(target))
            except ssl.SSLCertVerificationError as exc:
                reason = exc.verify_message or exc.reason or str(exc)
                raise tlsinfo.CertificateVerifyError(str(reason), round(tcp_ms, 3)) from None
            except ssl.SSLError as exc:
                raise ProbeError(
                    f"TLS handshake failed: {exc.reason or exc}", failure="tls"
                ) from None
            opened.tls_ms = _since(started)
            opened.tls = tlsinfo.session_facts(writer.get_extra_info("ssl_object"))
            opened.tls.update(verified=verify, verify_error=None)
        return opened
    except BaseException:
        writer.transport.abort()
        raise


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    subject = SUBJECT_PREFIX + uuid.uuid4().hex
    inbox = INBOX_PREFIX + uuid.uuid4().hex
    payload = uuid.uuid4().hex.encode()
    hello = b"CONNECT " + json.dumps({**CLIENT_FACTS, **credentials(target)}).encode()
    async with tlsinfo.until(deadline):
        try:
            opened = await open_connection(target, config, verify=True)
        except tlsinfo.CertificateVerifyError as exc:
            if not config.insecure:
                raise
            # As tlsinfo.connect does: measure a fresh connection that does not
            # verify, and report why the certificate did not.
            opened = await open_connection(target, config, verify=False)
            assert opened.tls is not None
            opened.tls["verify_error"] = exc.reason
        nats = opened.nats
        details = info_facts(opened.info)
        if opened.tls is not None:
            details["tls"] = opened.tls
        try:
            started = time.perf_counter_ns()
            await nats.send(hello + b"\r\nPING\r\n")
            await nats.pong()
            handshake_ms = opened.info_ms + _since(started)
            # The server has accepted the client from here: TCP connect, INFO,
            # CONNECT and PING -> PONG; a TLS upgrade is timed apart.
            phases = {"connect": opened.tcp_ms + handshake_ms, "tls": opened.tls_ms}
            details.update(tcp_connect_ms=opened.tcp_ms, handshake_ms=handshake_ms)

            started = time.perf_counter_ns()
            await nats.send(f"SUB {subject} 1\r\nSUB {inbox} 2\r\nPING\r\n".encode())
            await nats.pong()
            details["subscribe_ms"] = _since(started)

            request = f"PUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n"
            started = time.perf_counter_ns()
            await nats.send(request)
            latency = await _serve_until_reply(nats, subject, inbox, payload, started)
            return Sample(latency_ms=latency, phases_ms=phases, details=details)
        except ConnectionResetError:
            raise ProbeError("the server reset the connection: not a NATS server?") from None
        except asyncio.IncompleteReadError:
            raise ProbeError("the server closed the connection mid-message") from None
        finally:
            nats.writer.transport.abort()


async def _serve_until_reply(
    nats: Connection, subject: str, inbox: str, payload: bytes, started: int
) -> float:
    """Answer the request as the responder, then return the ms until the reply arrived."""
    while True:
        message = await nats.next_message()
        if message.subject == subject and message.reply:
            reply = f"PUB {message.reply} {len(message.data)}\r\n".encode()
            await nats.send(reply + message.data + b"\r\n")
        elif message.subject == inbox and message.data == payload:
            return _since(started)


def _since(started: int) -> float:
    return (time.perf_counter_ns() - started) / 1e6
