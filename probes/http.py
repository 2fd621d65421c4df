"""http:// and https:// probes, and the HTTP/1.1 exchange graphql and soap reuse.

Each sample opens a new connection to the checked address (no keep-alive), so
the phases are those curl reports for a fresh transfer:

- ``dns``: the guard's single resolution (filled in by the runner);
- ``connect``: the TCP connect;
- ``tls``: the TLS handshake (https only);
- ``ttfb``: from the moment the request was handed to the kernel (for https:
  encrypted and sent) to the first response byte, i.e. curl's
  ``time_starttransfer - time_pretransfer`` (curl's pretransfer "includes the
  sending of the protocol-specific instructions that trigger a transfer"). The
  write itself (microseconds for http, up to about 0.2 ms for https through
  asyncio's TLS layer on a loaded machine) is in neither phase, as in curl;
- ``transfer``: from the first response byte to the last body byte, curl's
  ``time_total - time_starttransfer``.

The request is a minimal ``GET`` with ``Host`` (the URL's host, not the
address), ``User-Agent``, ``Accept`` and ``Connection: close``. Request and
response go through h11 (the HTTP/1.1 parser under httpx and httpcore), fed
from the timed transport below, so the parsing of what a hostile server sends
is a well-kept library's: status line, headers, then a body framed by
``Transfer-Encoding: chunked``, ``Content-Length`` or the close of the
connection. A response head (or chunk header) longer than ``MAX_HEADER_BYTES``
is refused before more is buffered, and at most ``config.read_cap`` body bytes
are read; a longer body is cut there and reported as ``truncated``. Interim
``1xx`` responses (such as ``103 Early Hints``) are skipped, up to
``MAX_INTERIM`` of them; the first byte of the first one still ends ``ttfb``,
as in curl. Whatever h11 refuses (a malformed head, a bad chunk, a body cut
short, an unsolicited ``101``) is a ``wrong_protocol`` failure with h11's
reason in the message.

The first and last byte times are those at which asyncio handed the bytes to
the connection's protocol (:class:`probes.tlsinfo.TimedStreamProtocol`), after
TLS decryption, like curl's ``SSL_read``; they do not include the delay before
the waiting task runs again, which on a loaded machine reached milliseconds
(``bench/accuracy.py``).

TLS offers ALPN ``http/1.1`` only, because the probe speaks HTTP/1.1; the
negotiated protocol is reported in ``details.tls.alpn`` (whether the server
would also speak h2 is not probed). Credentials in the URL are sent as HTTP
Basic authentication and never appear in the result.

Status policy: any complete HTTP response counts as answered, 4xx and 5xx
included: the target was reached and spoke HTTP, which is what the contract's
"answered" means (refused, timed out or a wrong protocol are not). The status
is in ``details.status``, and ``details.http_error`` names a 4xx or 5xx.

A redirect is reported with its status and ``Location`` and not followed,
unless ``--follow-redirects`` asks for it: then up to ``MAX_REDIRECTS`` hops
are followed, each checked by the guard like a new target (resolved once,
refused if private or metadata, connected to by address, credentials never
carried along). The phases are those of the last
request; ``latency_ms`` includes the hops before it, listed in
``details.redirects`` with their time in ``details.redirect_ms``.

``--throughput``: ``Sample.transfer_bytes`` counts the bytes that arrived after
the first arrival, over ``transfer_s``, the transfer phase (first to last
arrival); the bytes of the first arrival came before the phase started.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import h11

from probes import guard, tlsinfo
from probes.base import MAX_REDIRECTS, Failure, ProbeConfig, ProbeError, Sample, Target

USER_AGENT = "Switchboard-probe/0.1"
MAX_HEADER_BYTES = 64 * 1024
# Interim 1xx responses skipped before the final one; a peer sending more is hostile.
MAX_INTERIM = 16
READ_CHUNK = 256 * 1024
ALPN = ("http/1.1",)

DEFAULT_PORTS = {False: 80, True: 443}

# RFC 3986 characters that may stay as they are in a path or query; anything
# else (spaces, control characters, non-ASCII) is percent-encoded so that a URL
# can never split the request line or inject a header.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass
class HttpResponse:
    """One response and the timing of the exchange that produced it."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    body_bytes: int
    truncated: bool
    connect_ms: float
    tls_ms: float | None
    ttfb_ms: float
    transfer_ms: float
    transfer_bytes: int
    tls: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def latency_ms(self) -> float:
        return self.connect_ms + (self.tls_ms or 0.0) + self.ttfb_ms + self.transfer_ms

    def phases(self) -> dict[str, float | None]:
        return {
            "connect": round(self.connect_ms, 3),
            "tls": round(self.tls_ms, 3) if self.tls_ms is not None else None,
            "ttfb": round(self.ttfb_ms, 3),
            "transfer": round(self.transfer_ms, 3),
        }

    def details(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "status": self.status,
            "reason": self.reason,
            "http_version": self.version,
            "body_bytes": self.body_bytes,
            "truncated": self.truncated,
        }
        content_type = self.header("content-type")
        if content_type is not None:
            facts["content_type"] = content_type
        if self.status >= 400:
            facts["http_error"] = f"HTTP {self.status} {self.reason}".strip()
        location = self.header("location")
        if 300 <= self.status < 400 and location is not None:
            facts["redirect"] = {"status": self.status, "location": location, "followed": False}
        if self.tls:
            facts["tls"] = self.tls
        return facts

    def sample(self, *, ok: bool = True, error: str | None = None, **extra: Any) -> Sample:
        """A Sample carrying this exchange's phases, throughput and details.

        A failed one is ``wrong_protocol``: the server answered HTTP, but not
        as the protocol on top (GraphQL, SOAP) should.
        """
        details = self.details()
        details.update(extra)
        return Sample(
            ok=ok,
            error=error,
            failure=None if ok else "wrong_protocol",
            latency_ms=round(self.latency_ms, 3),
            phases_ms=self.phases(),
            transfer_bytes=self.transfer_bytes,
            transfer_s=self.transfer_ms / 1000.0 if self.transfer_ms > 0 else None,
            details=details,
        )


# --- Request ---------------------------------------------------------------------------


def host_header(target: Target) -> str:
    """The Host header: the URL's host (IDNA-encoded), with the port when not the default."""
    try:
        host = target.host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ProbeError(f"host name {target.host!r} cannot be IDNA-encoded: {exc}") from None
    if ":" in host:
        host = f"[{host}]"
    if target.port != DEFAULT_PORTS[target.tls]:
        host = f"{host}:{target.port}"
    return host


def request_target(target: Target, query: str | None = None) -> str:
    path = quote(target.path or "/", safe=_PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    query = target.query if query is None else query
    return f"{path}?{quote(query, safe=_QUERY_SAFE)}" if query else path


@dataclass
class Request:
    """One request, ready to go: the h11 connection that will read its answer, and its bytes.

    h11 tracks the exchange from the request on: it knows a ``HEAD`` has no
    response body, and which framing the answer uses.
    """

    conn: h11.Connection
    data: bytes


def build_request(
    target: Target,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """Serialise the request with h11 (which validates every header) before the clock starts."""
    fields = [("Host", host_header(target)), ("User-Agent", USER_AGENT)]
    names = {name.lower() for name, _ in headers}
    if "accept" not in names:
        fields.append(("Accept", "*/*"))
    if target.username is not None:
        password = target.password.get_secret_value() if target.password else ""
        token = base64.b64encode(f"{target.username}:{password}".encode()).decode("ascii")
        fields.append(("Authorization", f"Basic {token}"))
    for name, value in headers:
        if any(ch in name + value for ch in "\r\n"):
            raise ProbeError(f"header {name!r} contains a line break")
        fields.append((name, value))
    if body or method in ("POST", "PUT", "PATCH"):
        fields.append(("Content-Length", str(len(body))))
    fields.append(("Connection", "close"))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    try:
        encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
        data = conn.send(h11.Request(method=method, target=request_target(target), headers=encoded))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
    except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
        raise ProbeError(f"invalid HTTP request: {exc}") from None
    return Request(conn, data)


# --- Response ------------------------------------------------------------------------


def _looks_like_http(buffer: bytes) -> bool:
    prefix = buffer[:5]
    return b"HTTP/".startswith(prefix) if len(prefix) < 5 else prefix == b"HTTP/"


async def exchange(
    conn: tlsinfo.Connection,
    request: Request,
    *,
    read_cap: int,
    keep_body: int = 0,
) -> HttpResponse:
    """Send ``request`` on ``conn`` and read the response with h11, timing ttfb and transfer.

    h11 parses the status line, the headers and the body's framing (chunked,
    Content-Length or the close); at most ``MAX_HEADER_BYTES`` of a head (or a
    chunk header) is buffered before it is refused, and at most ``read_cap``
    body bytes are read. ``keep_body`` is how many body bytes to keep in memory
    (for a caller that parses the body); the rest are counted and dropped.
    """
    reader, writer = conn.reader, conn.writer
    parser = request.conn
    arrivals = conn.protocol
    arrivals.reset()
    writer.write(request.data)
    # The clock starts once the request is handed to the kernel (for TLS: encrypted
    # and sent), as curl's pretransfer "includes the sending of the protocol-specific
    # instructions that trigger a transfer".
    started = time.perf_counter_ns()
    await writer.drain()
    try:
        first = await reader.read(READ_CHUNK)
    except ConnectionResetError:
        raise ProbeError("connection reset before any response (not an HTTP server?)") from None
    if not first:
        raise ProbeError("connection closed before any response (not an HTTP server?)")
    # When the first byte arrived (noted by the protocol), not when this task woke up.
    first_ns = arrivals.first_data_ns or time.perf_counter_ns()
    # A peer speaking another protocol may send a line and wait: say so at once rather
    # than wait for a blank line that never comes.
    while len(first) < 5 and _looks_like_http(first):
        more = await reader.read(READ_CHUNK)
        if not more:
            break
        first += more
    if not _looks_like_http(first):
        raise ProbeError(f"not an HTTP response: {first[:40]!r}")

    head: h11.Response | None = None
    kept = bytearray()
    body_bytes = 0
    truncated = False
    closed = False
    interim = 0
    parser.receive_data(first)
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise _protocol_error(exc, head, closed, body_bytes) from None
        if event is h11.NEED_DATA:
            if closed:  # h11 raises for an incomplete message; this is for safety
                raise ProbeError("connection closed inside the response")
            # A reset here propagates as it is ("connection reset by peer", failure
            # "other"), as does a TLS error ("tls").
            data = await reader.read(READ_CHUNK)
            if not data:
                if head is None:
                    raise ProbeError("connection closed inside the response headers")
                closed = True
            parser.receive_data(data)
        elif isinstance(event, h11.InformationalResponse):
            # 103 Early Hints and the like: the final response follows.
            interim += 1
            if interim > MAX_INTERIM:
                raise ProbeError(f"more than {MAX_INTERIM} interim (1xx) responses")
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            room = read_cap - body_bytes
            data = event.data if len(event.data) < room else event.data[:room]
            body_bytes += len(data)
            if len(kept) < keep_body:
                kept.extend(data[: keep_body - len(kept)])
            if body_bytes >= read_cap:
                truncated = _more_body(parser, len(event.data) - len(data))
                break
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
            break
    assert head is not None  # a body or its end follows the response head
    last_ns = arrivals.last_data_ns or time.perf_counter_ns()
    return HttpResponse(
        version=f"HTTP/{head.http_version.decode('ascii')}",
        status=head.status_code,
        reason=head.reason.decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers.raw_items()],
        body=bytes(kept),
        body_bytes=body_bytes,
        truncated=truncated,
        connect_ms=conn.connect_ms,
        tls_ms=conn.tls_ms,
        ttfb_ms=(first_ns - started) / 1e6,
        transfer_ms=(last_ns - first_ns) / 1e6,
        transfer_bytes=arrivals.bytes_after_first,
        tls=conn.tls,
    )


def _more_body(parser: h11.Connection, cut: int) -> bool:
    """Whether the body goes on past the read cap (without reading any more of it)."""
    if cut:
        return True
    try:
        return not isinstance(parser.next_event(), h11.EndOfMessage)
    except h11.RemoteProtocolError:
        return True


def _protocol_error(
    exc: h11.RemoteProtocolError, head: h11.Response | None, closed: bool, body_bytes: int
) -> ProbeError:
    """h11's complaint about the peer, as the probe's message (``wrong_protocol``)."""
    if head is None:
        if exc.error_status_hint == 431:
            return ProbeError(f"response headers exceed {MAX_HEADER_BYTES} bytes")
        return ProbeError(f"malformed HTTP response head: {exc}")
    if exc.error_status_hint == 431:
        return ProbeError(f"malformed HTTP body: a chunk header exceeds {MAX_HEADER_BYTES} bytes")
    if closed:
        return ProbeError(f"connection closed after {body_bytes} body bytes: {exc}")
    return ProbeError(f"malformed HTTP body: {exc}")


# --- One request on a new connection -------------------------------------------------


async def fetch(
    target: Target,
    config: ProbeConfig,
    deadline: float,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    keep_body: int = 0,
) -> HttpResponse:
    """Open a new connection, send one request, read the response, close.

    Bounded by ``deadline`` (a ``time.monotonic()`` instant): a silent server
    ends in TimeoutError at the deadline, not later.
    """
    request = build_request(target, method, headers, body)
    async with tlsinfo.until(deadline):
        conn = await tlsinfo.connect(target, tls=target.tls, insecure=config.insecure, alpn=ALPN)
        try:
            response = await exchange(conn, request, read_cap=config.read_cap, keep_body=keep_body)
        except BaseException:
            conn.abort()
            raise
        await conn.close(tlsinfo.close_grace(deadline))
    return response


def verify_failure(exc: tlsinfo.CertificateVerifyError) -> Sample:
    """The failed sample for a certificate that did not verify (without --insecure)."""
    return Sample(
        ok=False,
        error=str(exc),
        failure="tls",
        phases_ms={"connect": exc.connect_ms},
        details={"tls": {"verified": False, "verify_error": exc.reason}},
    )


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    hops: list[dict[str, Any]] = []
    before_ms = 0.0  # time spent on the redirects before the final request
    current = target
    while True:
        try:
            response = await fetch(current, config, deadline)
        except tlsinfo.CertificateVerifyError as exc:
            return verify_failure(exc)
        location = response.header("location")
        if not (config.follow_redirects and 300 <= response.status < 400 and location):
            break
        if len(hops) == MAX_REDIRECTS:
            too_many = f"more than {MAX_REDIRECTS} redirects"
            return _redirected(response, hops, before_ms, too_many, "other")
        # Every hop passes the guard like a new target: resolved once, checked, and
        # connected to by address. A refused hop gets not one packet.
        started = time.perf_counter_ns()
        try:
            following = await guard.check_redirect(
                location, current, timeout_s=max(deadline - time.monotonic(), 0.001)
            )
        except guard.GuardError as exc:
            kind: Failure = "not_allowed" if isinstance(exc, guard.NotAllowedError) else "other"
            refused = f"redirect not followed: {exc}"
            return _redirected(response, hops, before_ms, refused, kind)
        resolve_ms = (time.perf_counter_ns() - started) / 1e6
        hops.append(
            {
                "status": response.status,
                "location": guard.mask_url(location),
                "address": following.address,
                "ms": round(response.latency_ms + resolve_ms, 3),
            }
        )
        before_ms += response.latency_ms + resolve_ms
        current = following
    return _redirected(response, hops, before_ms, None)


def _redirected(
    response: HttpResponse,
    hops: list[dict[str, Any]],
    before_ms: float,
    error: str | None,
    failure: Failure | None = None,
) -> Sample:
    """The sample of the last response, its latency including the redirects before it."""
    sample = response.sample(ok=error is None, error=error)
    if failure is not None:
        sample.failure = failure
    if hops:
        sample.details["redirects"] = hops
        sample.details["redirect_ms"] = round(before_ms, 3)
        if sample.latency_ms is not None:
            sample.latency_ms = round(sample.latency_ms + before_ms, 3)
    return sample
