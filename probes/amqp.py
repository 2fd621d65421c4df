"""``amqp://[user:password@]host:port[/vhost]`` and ``amqps://``: a publish/consume round trip.

Every sample opens a new AMQP 0-9-1 connection to the checked address (TLS
for ``amqps`` through :mod:`probes.tlsinfo`, as every TLS probe: the
certificate checked against the URL's host name, which is also the SNI, its
facts in ``details.tls``), opens a channel in publisher-confirm mode, declares a
server-named, exclusive, auto-delete queue, consumes from it, and publishes
one unique message to it through the default exchange. The time from the
publish to the message arriving at the consumer is the sample's latency; the
broker's confirm (``Basic.Ack``) time is reported as ``confirm_ms``. The queue
disappears with the connection, so a probe leaves nothing behind. A server
of another protocol is named by what it answered; one that waits silently
for more (Redis, reading the protocol header as an inline command) ends as
a timeout.

Credentials are the URL's; without any, AMQP's customary ``guest``/``guest``
(a user name without a password gets ``guest`` as its password, as aiormq
does). The vhost is the URL path without its leading slash, percent-decoded
(``/%2F`` is ``/``); an empty path means the default vhost ``/``.

Phases: ``connect`` is the TCP connect plus the AMQP handshake up to
``Connection.OpenOk`` (the moment the connection is usable), ``tls`` the TLS
handshake in between, kept out of ``connect``. ``details`` breaks the connect
down (``tcp_connect_ms``, ``handshake_ms``), gives ``channel_open_ms``,
``queue_declare_ms`` and the temporary queue's name, and the broker's
``product``, ``version``, ``platform`` and ``cluster_name`` from its
connection properties.

aiormq (aio-pika's protocol layer) speaks the protocol over a connection we
open ourselves (:class:`TimedTransport`, aiormq's transport-factory hook), so
the TCP connect and the TLS handshake are timed apart from the AMQP handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import Any
from urllib.parse import unquote

import aiormq
import aiormq.exceptions as amqp_errors
from aiormq.abc import DeliveredMessage
from aiormq.connection import TransportFactory
from pamqp import commands as spec
from pamqp.frame import unmarshal as frame_unmarshal
from yarl import URL

from probes import tlsinfo
from probes.base import ProbeConfig, ProbeError, Sample, Target

DEFAULT_CREDENTIALS = ("guest", "guest")

SERVER_FACTS = ("product", "version", "platform", "cluster_name")
PREVIEW_BYTES = 40
# The largest frame the probe reads (payload and end octet). A frame's length
# is the peer's word, and aiormq reads what it announces (``readexactly``),
# buffering all of it: a hostile peer announcing 4 GB and sending it made a
# probe allocate gigabytes. The probe's own frames are a few hundred bytes;
# RabbitMQ's default frame_max is 128 KiB, and no broker needs more for a
# Connection.Start. A longer frame fails the sample before anything is read.
MAX_FRAME_BYTES = 128 * 1024


def vhost(target: Target) -> str:
    name = unquote(target.path[1:] if target.path.startswith("/") else target.path)
    return name or "/"


class RecordingReader(asyncio.StreamReader):
    """The connection's reader as aiormq sees it, keeping what it read to explain a failure.

    A server of another protocol answers the AMQP header with bytes that are
    no frame, and aiormq reports a refused ``Connection.Open`` (an unknown
    vhost) without the broker's reply text; both are read back from here.
    It passes the three calls aiormq's frame receiver makes (``readexactly``,
    ``read``, ``at_eof``) to the real reader; its own buffer stays unused.
    """

    def __init__(self, inner: asyncio.StreamReader) -> None:
        super().__init__()
        self.inner = inner
        self.first = b""
        # aiormq reads a frame in three parts: type, rest of the header, payload.
        self.last: deque[bytes] = deque(maxlen=3)
        # Why a frame was refused unread (its announced length), once it was.
        self.refused: str | None = None

    async def readexactly(self, n: int) -> bytes:
        if n > MAX_FRAME_BYTES + 1:
            # Refused on the announcement: nothing of it is read or allocated.
            self.refused = (
                f"an AMQP frame of {n - 1} bytes exceeds the {MAX_FRAME_BYTES} byte frame cap"
            )
            if not self.first.startswith(b"\x01\x00\x00"):
                # Not even the start of an AMQP answer: another protocol's
                # greeting read as a frame header ("INFO {" is 1.3 GB).
                self.refused = f"not an AMQP broker: it answered {_preview(self.first)}"
            raise ProbeError(self.refused)
        try:
            data = await self.inner.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            self._remember(exc.partial)
            raise
        self._remember(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        # Never "everything up to EOF": that too is as much as the peer sends.
        data = await self.inner.read(n if 0 <= n <= MAX_FRAME_BYTES else MAX_FRAME_BYTES)
        self._remember(data)
        return data

    def at_eof(self) -> bool:
        return self.inner.at_eof()

    def _remember(self, data: bytes) -> None:
        if len(self.first) < PREVIEW_BYTES:
            self.first += data[: PREVIEW_BYTES - len(self.first)]
        self.last.append(data)

    def last_frame(self) -> object | None:
        with contextlib.suppress(Exception):
            return frame_unmarshal(b"".join(self.last))[2]
        return None


class TimedTransport(TransportFactory):
    """Opens the connection aiormq talks over, timing TCP and TLS separately.

    The probe calls :meth:`open` itself, before aiormq starts, so a refused
    connection is the probe's plain OSError (aiormq would log it as an error)
    and TLS goes through :mod:`probes.tlsinfo` like every TLS probe's;
    aiormq's call to :meth:`create` then gets the streams already open.
    """

    def __init__(self, target: Target, config: ProbeConfig) -> None:
        self.target = target
        self.config = config
        self.conn: tlsinfo.Connection | None = None
        self.reader: RecordingReader | None = None

    async def open(self) -> tlsinfo.Connection:
        self.conn = await tlsinfo.connect(
            self.target, tls=self.target.tls, insecure=self.config.insecure
        )
        self.reader = RecordingReader(self.conn.reader)
        return self.conn

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.conn is None or self.reader is None:
            raise RuntimeError("TimedTransport.open() must run before aiormq connects")
        return self.reader, self.conn.writer

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.abort()


def connection_for(target: Target, transport: TimedTransport) -> aiormq.Connection:
    user, password = DEFAULT_CREDENTIALS
    if target.username:
        user = target.username
        password = target.password.get_secret_value() if target.password else password
    # The URL only carries what aiormq reads from it: the credentials, and
    # heartbeat=0 because a sample's connection lives for milliseconds. The
    # host and port in it are never dialled (the transport connects).
    url = URL.build(
        scheme=target.scheme,
        user=user,
        password=password,
        host=target.address,
        port=target.port,
        query={"heartbeat": "0"},
    )
    connection = aiormq.Connection(url, transport_factory=transport)
    # Set after parsing: yarl's path quoting would mangle a vhost such as "/".
    connection.vhost = vhost(target)
    return connection


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    transport = TimedTransport(target, config)
    try:
        return await _sample(target, config, deadline, transport)
    except Exception:
        # aiormq wraps or replaces what its frame reader raised; a frame refused
        # for its length is the reason whatever aiormq made of it.
        if transport.reader is not None and transport.reader.refused is not None:
            raise ProbeError(transport.reader.refused) from None
        raise


async def _sample(
    target: Target, config: ProbeConfig, deadline: float, transport: TimedTransport
) -> Sample:
    connection = connection_for(target, transport)
    payload = uuid.uuid4().bytes
    details: dict[str, object] = {"vhost": connection.vhost}
    succeeded = False
    try:
        async with tlsinfo.until(deadline):
            conn = await transport.open()
            phases = conn.phases()
            if target.tls:
                details["tls"] = conn.tls
            started = time.perf_counter_ns()
            await connection.connect()
            handshake_ms = _since(started)
            # The connection is usable from here: TCP connect plus the AMQP handshake.
            phases["connect"] = conn.connect_ms + handshake_ms
            details.update(tcp_connect_ms=conn.connect_ms, handshake_ms=handshake_ms)
            details.update(_server_facts(connection.server_properties))

            started = time.perf_counter_ns()
            channel = await connection.channel(publisher_confirms=True)
            details["channel_open_ms"] = _since(started)

            started = time.perf_counter_ns()
            declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
            details["queue_declare_ms"] = _since(started)
            queue = declared.queue
            if not queue:
                raise ProbeError("the broker did not name the temporary queue")
            details["queue"] = queue

            loop = asyncio.get_running_loop()
            arrived: asyncio.Future[int] = loop.create_future()

            async def on_message(message: DeliveredMessage) -> None:
                now = time.perf_counter_ns()
                if message.body == payload and not arrived.done():
                    arrived.set_result(now)

            await channel.basic_consume(queue, on_message, no_ack=True)

            started = time.perf_counter_ns()
            confirmation = await channel.basic_publish(
                payload,
                routing_key=queue,
                properties=spec.Basic.Properties(delivery_mode=1),
                mandatory=True,
            )
            confirmed_ms = _since(started)
            if not isinstance(confirmation, spec.Basic.Ack):
                raise ProbeError(f"the broker did not confirm the message: {confirmation!r}")
            delivered = await arrived
            details["confirm_ms"] = confirmed_ms
            latency = (delivered - started) / 1e6
            succeeded = True
            return Sample(latency_ms=latency, phases_ms=phases, details=details)
    except amqp_errors.ProbableAuthenticationError as exc:
        raise ProbeError(f"authentication failed: {_reply_text(exc)}", failure="other") from None
    except amqp_errors.AuthenticationError as exc:
        raise ProbeError(f"authentication failed: {_reply_text(exc)}", failure="other") from None
    except (amqp_errors.ProtocolSyntaxError, amqp_errors.AMQPConnectionError, ValueError) as exc:
        if "handshake_ms" not in details:
            raise ProbeError(_handshake_failure(transport.reader, exc)) from None
        if isinstance(exc, amqp_errors.ConnectionClosed):
            raise ProbeError(f"the broker closed the connection: {_reply_text(exc)}") from None
        raise ProbeError(f"the AMQP connection failed: {_reply_text(exc)}") from None
    except amqp_errors.ChannelClosed as exc:
        raise ProbeError(f"the broker closed the channel: {_reply_text(exc)}") from None
    except amqp_errors.PublishError as exc:
        raise ProbeError(f"the broker returned the message: {_reply_text(exc)}") from None
    except ConnectionResetError:
        if transport.conn is None:
            raise
        raise ProbeError("the server reset the connection: not an AMQP broker?") from None
    finally:
        await _close(connection, transport, deadline, graceful=succeeded)


async def _close(
    connection: aiormq.Connection, transport: TimedTransport, deadline: float, graceful: bool
) -> None:
    """Close politely after a good sample (the broker logs no lost client), else at once.

    Nothing here waits past the deadline: after the abort, aiormq's reader sees
    the connection lost and ends its own tasks even when close() is not awaited.
    """
    if graceful and deadline > time.monotonic():
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(deadline - time.monotonic()):
                await connection.close()
    transport.abort()
    if not connection.is_closed and deadline > time.monotonic():
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(deadline - time.monotonic()):
                await connection.close()


def _handshake_failure(reader: RecordingReader | None, exc: BaseException) -> str:
    if reader is None:
        return f"the AMQP connection failed: {_reply_text(exc)}"
    frame = reader.last_frame()
    if isinstance(frame, spec.Connection.Close):
        # E.g. "NOT_ALLOWED - vhost x not found" in answer to Connection.Open.
        return f"the broker closed the connection: {frame.reply_text}"
    if reader.first and not reader.first.startswith(b"\x01\x00\x00"):
        # An AMQP broker's first frame is Connection.Start on channel 0.
        return f"not an AMQP broker: it answered {_preview(reader.first)}"
    if not reader.first:
        return "the server closed the connection without an AMQP answer: not an AMQP broker?"
    return f"the AMQP handshake failed: {_reply_text(exc)}"


def _preview(data: bytes) -> str:
    text = data[:PREVIEW_BYTES].decode("ascii", "backslashreplace")
    return repr(text) + ("..." if len(data) >= PREVIEW_BYTES else "")


def _server_facts(properties: dict[str, Any]) -> dict[str, object]:
    facts: dict[str, object] = {}
    for key in SERVER_FACTS:
        value = properties.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if value:
            facts[key] = value
    return facts


def _reply_text(exc: BaseException) -> str:
    """The broker's reply text (e.g. ``ACCESS_REFUSED - Login was refused ...``)."""
    args = [a for a in exc.args if a not in (None, "")]
    text = " ".join(str(a) for a in args if not isinstance(a, int)) or exc.__class__.__name__
    return text[:200]


def _since(started: int) -> float:
    return (time.perf_counter_ns() - started) / 1e6
