"""``redis://[[user]:password@]host:port[/db]`` and ``rediss://``: a PING round trip.

Every sample opens a new TCP connection to the checked address, upgrades it
to TLS for ``rediss`` (through :mod:`probes.tlsinfo`, as every TLS probe:
the certificate is checked against the URL's host name, which is also the
SNI; ``--insecure`` still reports why it did not verify), authenticates when
the URL carries a password (``AUTH password``, or ``AUTH user password`` for
an ACL user), selects the database from the path, and then times ``PING`` ->
``+PONG``: that round trip is the sample's latency.

Phases: ``connect`` is the TCP connect, ``tls`` the TLS handshake, whose
facts (version, cipher, certificate, ``verified``) are ``details.tls``. The
AUTH and SELECT round trips are reported in ``details`` (``auth_ms``,
``select_ms``), not in the latency. ``INFO server`` and ``INFO replication``
are read after the timed PING for ``redis_version``, ``redis_mode`` and
``role``; a server whose ACL forbids INFO still answers the probe.

Why RESP by hand instead of ``redis.asyncio``: redis-py's connection sends its
own handshake on connect (``CLIENT SETINFO``, optionally ``HELLO``), owns its
socket timeouts and retries, and hides where the connect ends and the command
begins, so neither phase could be timed alone. PING, AUTH, SELECT and INFO
need a few lines of RESP2 on asyncio streams, which gives exact timing, one
deadline for everything, and a clear message when the peer is not Redis.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote

from probes import tlsinfo
from probes.base import MESSAGE_CAP_BYTES, ProbeConfig, ProbeError, Sample, Target

PING = b"*1\r\n$4\r\nPING\r\n"
MAX_DATABASE = 1 << 16  # generous; the server rejects numbers beyond its own "databases"
MAX_NESTING = 4
MAX_ARRAY = 1024
PREVIEW_BYTES = 40

RespValue = str | int | bytes | list["RespValue"] | None


class RedisReplyError(Exception):
    """A RESP error reply (``-ERR ...``); the text is the server's."""


def database(target: Target) -> int:
    """The database number from the URL path (``/`` or empty means 0)."""
    text = unquote(target.path).strip("/")
    if not text:
        return 0
    if not text.isdigit() or int(text) >= MAX_DATABASE:
        raise ProbeError(f"the URL path {target.path!r} is not a Redis database number")
    return int(text)


def check_target(target: Target) -> None:
    """Refuse, before any packet, a URL whose path is no database number."""
    database(target)


def command(*args: str | bytes) -> bytes:
    """A RESP2 array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


def preview(data: bytes) -> str:
    text = data[:PREVIEW_BYTES].decode("ascii", "backslashreplace")
    return repr(text) + ("..." if len(data) > PREVIEW_BYTES else "")


async def read_reply(reader: asyncio.StreamReader, cap: int, depth: int = 0) -> RespValue:
    """One RESP2 reply. Raises RedisReplyError for ``-`` replies, ProbeError for non-RESP."""
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProbeError(f"not a Redis server: it answered {preview(exc.partial)}") from None
        raise ProbeError("the server closed the connection without a Redis reply") from None
    except asyncio.LimitOverrunError:
        raise ProbeError("not a Redis server: a reply line without an end") from None
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode("utf-8", "replace")
    if kind == b"-":
        raise RedisReplyError(body.decode("utf-8", "replace"))
    if kind == b":" and _is_int(body):
        return int(body)
    if kind == b"$" and _is_int(body):
        size = int(body)
        if size < 0:
            return None
        if size > cap:
            raise ProbeError(f"a Redis reply of {size} bytes exceeds the {cap} byte message cap")
        return (await reader.readexactly(size + 2))[:-2]
    if kind == b"*" and _is_int(body) and depth < MAX_NESTING:
        count = int(body)
        if count < 0:
            return None
        if count > MAX_ARRAY:
            raise ProbeError(f"a Redis array of {count} items is more than a probe reads")
        return [await read_reply(reader, cap, depth + 1) for _ in range(count)]
    raise ProbeError(f"not a Redis server: it answered {preview(line)}")


def _is_int(body: bytes) -> bool:
    return body.lstrip(b"-").isdigit()


async def call(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, cap: int
) -> RespValue:
    writer.write(request)
    await writer.drain()
    return await read_reply(reader, cap)


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    db = database(target)
    cap = MESSAGE_CAP_BYTES
    details: dict[str, object] = {}
    async with tlsinfo.until(deadline):
        conn = await tlsinfo.connect(target, tls=target.tls, insecure=config.insecure)
        reader, writer = conn.reader, conn.writer
        if target.tls:
            details["tls"] = conn.tls
        try:
            if target.password is not None:
                details["auth_ms"] = await _auth(reader, writer, target, cap)
            if db:
                started = time.perf_counter_ns()
                try:
                    await call(reader, writer, command("SELECT", str(db)), cap)
                except RedisReplyError as exc:
                    raise ProbeError(_describe_error(exc, f"SELECT {db}")) from None
                details["select_ms"] = _since(started)
                details["db"] = db

            started = time.perf_counter_ns()
            writer.write(PING)
            await writer.drain()
            try:
                reply = await read_reply(reader, cap)
            except RedisReplyError as exc:
                raise ProbeError(_describe_error(exc, "PING")) from None
            latency = _since(started)
            if reply != "PONG":
                raise ProbeError(f"unexpected reply to PING: {preview(repr(reply).encode())}")

            details.update(await _server_facts(reader, writer, cap))
            return Sample(latency_ms=latency, phases_ms=conn.phases(), details=details)
        except ConnectionResetError:
            # A server of another protocol (RabbitMQ, Mosquitto) drops the
            # connection on the first bytes it cannot parse.
            raise ProbeError(
                "the server reset the connection instead of answering: not a Redis server?"
            ) from None
        except asyncio.IncompleteReadError:
            raise ProbeError("the server closed the connection in the middle of a reply") from None
        finally:
            # No graceful close: the replies have all been read, and a TLS
            # close_notify exchange could outlive the deadline.
            conn.abort()


async def _auth(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Target, cap: int
) -> float:
    assert target.password is not None
    secret = target.password.get_secret_value()
    args = ("AUTH", target.username, secret) if target.username else ("AUTH", secret)
    started = time.perf_counter_ns()
    try:
        await call(reader, writer, command(*args), cap)
    except RedisReplyError as exc:
        # The server's message never quotes the password it was sent.
        raise ProbeError(f"authentication failed: {exc}", failure="other") from None
    return _since(started)


def _describe_error(exc: RedisReplyError, what: str) -> str:
    text = str(exc)
    if text.startswith("NOAUTH"):
        return f"authentication required: the server wants a password ({text})"
    return f"{what} failed: {text}"


async def _server_facts(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cap: int
) -> dict[str, object]:
    """Version, mode and role from INFO; outside every timed phase."""
    facts: dict[str, object] = {}
    for section, keys in (("server", ("redis_version", "redis_mode")), ("replication", ("role",))):
        try:
            reply = await call(reader, writer, command("INFO", section), cap)
        except RedisReplyError as exc:
            facts["info_error"] = str(exc)
            continue
        if isinstance(reply, bytes):
            fields = dict(
                line.split(":", 1)
                for line in reply.decode("utf-8", "replace").splitlines()
                if ":" in line
            )
            facts.update({key: fields[key] for key in keys if key in fields})
    return facts


def _since(started: int) -> float:
    return (time.perf_counter_ns() - started) / 1e6
