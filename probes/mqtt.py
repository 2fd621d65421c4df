"""``mqtt://[user:password@]host:port`` and ``mqtts://``: connect, then a QoS 1 round trip.

Every sample opens a new connection to the checked address (TLS for
``mqtts`` through :mod:`probes.tlsinfo`, as every TLS probe: the certificate
checked against the URL's host name, which is also the SNI, its facts in
``details.tls``), sends an MQTT 3.1.1 CONNECT with a unique client id and a clean
session, subscribes at QoS 1 to a unique topic ``switchboard/probe/<uuid>``,
publishes a unique payload to it at QoS 1 and waits until the broker has
delivered the message back. The publish -> receive time is the sample's
latency; the broker's PUBACK time is reported as ``puback_ms``.

Phases: ``connect`` is the TCP connect plus CONNECT -> CONNACK (the moment
the session is usable), ``tls`` the TLS handshake in between, kept out of
``connect``. ``details`` breaks ``connect`` down (``tcp_connect_ms``,
``connack_ms``) and reports the protocol (``MQTT 3.1.1``, level 4), the
CONNACK return code, the session-present flag and the QoS the broker granted.
A broker that refuses the CONNECT is reported by its return code's meaning
(e.g. "bad user name or password"); the password is never echoed. A server
of another protocol is named by what it answered (NATS's INFO, RabbitMQ's
protocol header); one that waits silently for more (Redis reads the CONNECT
as the start of an inline command) can only end as a timeout.

Why MQTT by hand instead of aiomqtt: aiomqtt runs paho-mqtt's blocking
``connect()`` (TCP connect and TLS handshake) in a thread-pool executor. That
puts a thread hop inside the timed connect, queues connects behind the pool's
few threads when many targets are probed at once, cannot be cancelled at the
deadline (the thread finishes the connect later and its socket is then never
closed), and paho gives the SNI and host-name check the address it connects
to, not the URL's host name. The five packets a probe needs (CONNECT,
SUBSCRIBE, PUBLISH, PUBACK, DISCONNECT) are a few lines each on asyncio
streams, with exact timing and one deadline for everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from dataclasses import dataclass

from probes import tlsinfo
from probes.base import MESSAGE_CAP_BYTES, ProbeConfig, ProbeError, Sample, Target

PROTOCOL_LEVEL = 4  # MQTT 3.1.1
KEEPALIVE_S = 60
TOPIC_PREFIX = "switchboard/probe/"
PREVIEW_BYTES = 40

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # the reserved flag bits of SUBSCRIBE are 0010
SUBACK = 0x90
DISCONNECT = 0xE0

# MQTT 3.1.1 section 3.2.2.3.
CONNACK_CODES = {
    1: "the broker refused the connection: unacceptable protocol version",
    2: "the broker refused the connection: client identifier rejected",
    3: "the broker refused the connection: server unavailable",
    4: "authentication failed: bad user name or password",
    5: "authentication failed: not authorized",
}


@dataclass(frozen=True)
class Packet:
    kind: int  # the first byte: type in the high nibble, flags in the low one
    body: bytes

    @property
    def type(self) -> int:
        return self.kind & 0xF0


def encode_length(n: int) -> bytes:
    """MQTT's variable byte integer (7 bits per byte, high bit = more)."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > 0xFFFF:
        raise ProbeError("an MQTT string field is limited to 65535 bytes")
    return struct.pack("!H", len(raw)) + raw


def packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + encode_length(len(body)) + body


def connect_packet(client_id: str, target: Target) -> bytes:
    flags = 0x02  # clean session
    payload = field(client_id)
    password = target.password.get_secret_value() if target.password is not None else None
    # MQTT 3.1.1 allows a password only together with a user name.
    if target.username is not None or password is not None:
        flags |= 0x80
        payload += field(target.username or "")
    if password is not None:
        flags |= 0x40
        payload += field(password)
    header = field("MQTT") + bytes([PROTOCOL_LEVEL, flags]) + struct.pack("!H", KEEPALIVE_S)
    return packet(CONNECT, header + payload)


def preview(data: bytes) -> str:
    text = data[:PREVIEW_BYTES].decode("ascii", "backslashreplace")
    return repr(text) + ("..." if len(data) > PREVIEW_BYTES else "")


async def read_packet(reader: asyncio.StreamReader, cap: int, first: bool = False) -> Packet:
    """One control packet. ``first``: it must be the CONNACK, anything else is not MQTT."""
    try:
        head = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        raise ProbeError(
            "the server closed the connection without an MQTT answer"
            + (": not an MQTT broker?" if first else "")
        ) from None
    if first and head[0] != CONNACK:
        # Another protocol's greeting or error; show what it said.
        rest = b""
        with contextlib.suppress(TimeoutError, OSError):
            rest = await asyncio.wait_for(reader.read(PREVIEW_BYTES), 0.05)
        raise ProbeError(f"not an MQTT broker: it answered {preview(head + rest)}")
    size = 0
    for shift in range(0, 28, 7):
        digit = (await reader.readexactly(1))[0]
        size |= (digit & 0x7F) << shift
        if not digit & 0x80:
            break
    else:
        raise ProbeError("malformed MQTT packet length")
    if size > cap:
        raise ProbeError(f"an MQTT packet of {size} bytes exceeds the {cap} byte message cap")
    return Packet(head[0], await reader.readexactly(size))


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    client_id = "sb-" + uuid.uuid4().hex[:20]  # 23 characters: the 3.1.1 minimum every broker takes
    topic = TOPIC_PREFIX + uuid.uuid4().hex
    payload = uuid.uuid4().bytes
    hello = connect_packet(client_id, target)
    cap = MESSAGE_CAP_BYTES
    details: dict[str, object] = {"protocol": "MQTT 3.1.1", "protocol_level": PROTOCOL_LEVEL}
    async with tlsinfo.until(deadline):
        conn = await tlsinfo.connect(target, tls=target.tls, insecure=config.insecure)
        reader, writer = conn.reader, conn.writer
        phases = conn.phases()
        if target.tls:
            details["tls"] = conn.tls
        try:
            started = time.perf_counter_ns()
            writer.write(hello)
            await writer.drain()
            connack = await read_packet(reader, cap, first=True)
            connack_ms = _since(started)
            # The session is usable from here: TCP connect plus CONNECT -> CONNACK.
            phases["connect"] = conn.connect_ms + connack_ms
            details.update(tcp_connect_ms=conn.connect_ms, connack_ms=connack_ms)
            details.update(_check_connack(connack))

            started = time.perf_counter_ns()
            writer.write(packet(SUBSCRIBE, struct.pack("!H", 1) + field(topic) + b"\x01"))
            await writer.drain()
            suback = await _expect(reader, cap, SUBACK, "SUBACK")
            details["subscribe_ms"] = _since(started)
            granted = suback.body[2:3]
            if len(suback.body) < 3 or suback.body[:2] != b"\x00\x01" or granted == b"\x80":
                raise ProbeError(f"the broker refused the subscription to {topic}")
            details["granted_qos"] = granted[0]

            latency, puback_ms = await _round_trip(reader, writer, topic, payload, cap)
            details["puback_ms"] = puback_ms
            # A clean goodbye, so the broker does not log a lost client.
            writer.write(packet(DISCONNECT, b""))
            await writer.drain()
            return Sample(latency_ms=latency, phases_ms=phases, details=details)
        except ConnectionResetError:
            raise ProbeError(
                "the server reset the connection instead of answering: not an MQTT broker?"
            ) from None
        except asyncio.IncompleteReadError:
            raise ProbeError("the broker closed the connection in the middle of a packet") from None
        except struct.error:
            raise ProbeError("malformed MQTT packet: a field runs past its end") from None
        finally:
            conn.abort()


async def _round_trip(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    topic: str,
    payload: bytes,
    cap: int,
) -> tuple[float, float]:
    """Publish at QoS 1 and wait for both the PUBACK and our own message."""
    message = packet(PUBLISH | 0x02, field(topic) + struct.pack("!H", 2) + payload)
    received: float | None = None
    acked: float | None = None
    started = time.perf_counter_ns()
    writer.write(message)
    await writer.drain()
    while received is None or acked is None:
        incoming = await read_packet(reader, cap)
        now = _since(started)
        if incoming.type == PUBACK and incoming.body == b"\x00\x02":
            acked = now
        elif incoming.type == PUBLISH:
            qos = (incoming.kind >> 1) & 0x03
            name_len = struct.unpack_from("!H", incoming.body)[0]
            name = incoming.body[2 : 2 + name_len].decode("utf-8", "replace")
            offset = 2 + name_len
            if qos:
                (packet_id,) = struct.unpack_from("!H", incoming.body, offset)
                offset += 2
                # Acknowledge outside the timing: the round trip has ended.
                writer.write(packet(PUBACK, struct.pack("!H", packet_id)))
            if name == topic and incoming.body[offset:] == payload:
                received = now
        else:
            raise ProbeError(f"unexpected MQTT packet type {incoming.type >> 4} after PUBLISH")
    return received, acked


async def _expect(reader: asyncio.StreamReader, cap: int, kind: int, name: str) -> Packet:
    incoming = await read_packet(reader, cap)
    if incoming.type != kind & 0xF0:
        raise ProbeError(f"expected {name}, got MQTT packet type {incoming.type >> 4}")
    return incoming


def _check_connack(connack: Packet) -> dict[str, object]:
    if len(connack.body) != 2:
        raise ProbeError(f"not an MQTT broker: malformed CONNACK {preview(connack.body)}")
    flags, code = connack.body
    if code:
        raise ProbeError(
            CONNACK_CODES.get(code, f"the broker refused the connection (code {code})")
        )
    return {"connack_code": code, "session_present": bool(flags & 0x01)}


def _since(started: int) -> float:
    return (time.perf_counter_ns() - started) / 1e6
