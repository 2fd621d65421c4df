"""ws:// and wss:// probes: the HTTP upgrade, then an echo round trip if the server echoes.

The connection is opened and timed by :mod:`probes.tlsinfo` (``connect`` and
``tls`` phases, to the checked address with the URL's host for SNI); the
WebSocket protocol itself is ``websockets``' Sans-I/O ``ClientProtocol``, fed
from those same streams, so no second resolution or hidden connect happens and
every phase is timed where its bytes move:

- ``upgrade``: from writing the upgrade request to the arrival of the bytes
  that completed the ``101`` response;
- ``echo``: from writing a unique text message to the arrival of the bytes
  that brought the same text back.

Arrival times are noted by :class:`probes.tlsinfo.TimedStreamProtocol` as
asyncio hands the bytes over, not when this task next runs. A sample carries
them as extra phases; the result keeps ``phases_ms`` to the contract's five
and reports their medians as ``details.upgrade_ms`` and ``details.echo_ms``.

The sample's latency is connect + tls + upgrade: the time to a usable socket.
A server that does not echo is still answered (``details.echo`` is false); the
probe waits for the echo at most :data:`ECHO_WAIT_S` (and never past 90% of the
time left), so a silent server costs a bounded wait, not a timeout.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI, PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import WebSocketURI, parse_uri

from probes import http, tlsinfo
from probes.base import MESSAGE_CAP_BYTES, ProbeConfig, ProbeError, Sample, Target

ECHO_WAIT_S = 1.0
READ_CHUNK = 64 * 1024


def ws_uri(target: Target) -> str:
    scheme = "wss" if target.tls else "ws"
    return f"{scheme}://{http.host_header(target)}{http.request_target(target)}"


class _Session:
    """One client protocol over one timed connection."""

    def __init__(self, conn: tlsinfo.Connection, protocol: ClientProtocol) -> None:
        self.conn = conn
        self.protocol = protocol
        self.pending: list[Frame] = []
        self.closed = False
        self.arrived_ns = 0
        self.received = 0

    async def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.conn.writer.write(data)
        await self.conn.writer.drain()

    async def receive(self) -> list[Any]:
        """Read once from the network; the events it produced (pongs are sent at once)."""
        data = await self.conn.reader.read(READ_CHUNK)
        # When the newest of these bytes reached the protocol, not when we woke up.
        self.arrived_ns = self.conn.protocol.last_data_ns or time.perf_counter_ns()
        if data:
            self.received += len(data)
            self.protocol.receive_data(data)
        else:
            self.closed = True
            self.protocol.receive_eof()
        events = self.protocol.events_received()
        self._check_frames()
        await self.flush()
        return events

    def _check_frames(self) -> None:
        """Fail on a frame the protocol refused, instead of waiting for an echo that cannot come.

        websockets checks a frame's announced length against ``max_size``
        before it reads the payload, then fails the connection (close code
        1009); the probe ends the sample then, with the reason.
        """
        exc = self.protocol.parser_exc
        if isinstance(exc, PayloadTooBig):
            raise ProbeError(
                f"a WebSocket message that exceeds the {MESSAGE_CAP_BYTES} byte message cap: {exc}"
            )
        if isinstance(exc, ProtocolError | UnicodeDecodeError):
            raise ProbeError(f"the server broke the WebSocket protocol: {exc}")

    async def upgrade(self) -> Response:
        while True:
            try:
                events = await self.receive()
            except ConnectionResetError:
                raise ProbeError("connection reset before the WebSocket upgrade response") from None
            for index, event in enumerate(events):
                if isinstance(event, Response):
                    if self.protocol.handshake_exc is not None:
                        raise ProbeError(
                            f"WebSocket upgrade refused: {self.protocol.handshake_exc}"
                        )
                    # A server may send a first message right behind the 101.
                    self.pending.extend(e for e in events[index + 1 :] if isinstance(e, Frame))
                    return event
            if self.closed and not self.received:
                raise ProbeError("connection closed before the WebSocket upgrade response")
            if self.protocol.handshake_exc is not None:
                cause = self.protocol.handshake_exc.__cause__
                reason = f"{self.protocol.handshake_exc}" + (f" ({cause})" if cause else "")
                raise ProbeError(f"WebSocket upgrade failed: {reason}")
            if self.closed:
                raise ProbeError("connection closed before the WebSocket upgrade response")

    async def echo(self, token: bytes, wait_s: float) -> bool:
        """Send ``token`` as text; True once the same text comes back within ``wait_s``."""
        self.protocol.send_text(token)
        await self.flush()
        try:
            async with tlsinfo.until(time.monotonic() + wait_s):
                while True:
                    frames, self.pending = self.pending, []
                    for frame in frames:
                        if frame.opcode is Opcode.TEXT and frame.data == token:
                            return True
                    if self.closed:
                        return False
                    self.pending = [e for e in await self.receive() if isinstance(e, Frame)]
        except TimeoutError:
            return False


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    try:
        uri = parse_uri(ws_uri(target))
    except InvalidURI as exc:
        raise ProbeError(f"invalid WebSocket URL: {exc}") from exc
    async with tlsinfo.until(deadline):
        try:
            conn = await tlsinfo.connect(target, tls=target.tls, insecure=config.insecure)
        except tlsinfo.CertificateVerifyError as exc:
            return http.verify_failure(exc)
        try:
            sample = await _exchange(conn, uri, config, deadline)
        except BaseException:
            conn.abort()
            raise
        await conn.close(tlsinfo.close_grace(deadline))
    return sample


async def _exchange(
    conn: tlsinfo.Connection, uri: WebSocketURI, config: ProbeConfig, deadline: float
) -> Sample:
    protocol = ClientProtocol(uri, max_size=MESSAGE_CAP_BYTES)
    request = protocol.connect()
    request.headers["User-Agent"] = http.USER_AGENT
    protocol.send_request(request)
    session = _Session(conn, protocol)

    conn.protocol.reset()
    started = time.perf_counter_ns()
    await session.flush()
    response = await session.upgrade()
    upgrade_ms = (session.arrived_ns - started) / 1e6

    token = f"switchboard-probe-{uuid.uuid4().hex}".encode()
    wait_s = min(ECHO_WAIT_S, 0.9 * (deadline - time.monotonic()))
    conn.protocol.reset()
    echo_started = time.perf_counter_ns()
    echoed = await session.echo(token, wait_s) if wait_s > 0 else False
    echo_ms = (session.arrived_ns - echo_started) / 1e6 if echoed else None

    if not session.closed:
        protocol.send_close(1000)
        await session.flush()

    details: dict[str, Any] = {
        "upgrade_status": response.status_code,
        "subprotocol": protocol.subprotocol,
        "extensions": [ext.name for ext in protocol.extensions],
        "echo": echoed,
    }
    if session.closed and not echoed:
        details["closed_by_server"] = True
    if conn.tls:
        details["tls"] = conn.tls
    phases = conn.phases()
    phases["upgrade"] = round(upgrade_ms, 3)
    phases["echo"] = round(echo_ms, 3) if echo_ms is not None else None
    latency = conn.connect_ms + (conn.tls_ms or 0.0) + upgrade_ms
    return Sample(latency_ms=round(latency, 3), phases_ms=phases, details=details)
