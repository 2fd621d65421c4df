"""http:// and https:// probes, and the HTTP/1.1 exchange graphql and soap reuse.

Each sample opens a new connection to the checked address (no keep-alive), so
the phases are those curl reports for a fresh transfer:

- ``dns``: the guard's single resolution (filled in by the runner);
- ``connect``: the TCP connect;
- ``tls``: the TLS handshake (https only);
- ``ttfb``: from just before the request is written to the first response
  byte, i.e. curl's ``time_starttransfer - time_pretransfer``;
- ``transfer``: from the first response byte to the last body byte, curl's
  ``time_total - time_starttransfer``.

The request is a minimal ``GET`` with ``Host`` (the URL's host, not the
address), ``User-Agent``, ``Accept`` and ``Connection: close``. The response is
parsed by hand: status line, headers, then a body framed by
``Transfer-Encoding: chunked``, ``Content-Length`` or the close of the
connection. At most ``config.read_cap`` body bytes are read; a longer body is
cut there and reported as ``truncated``. Interim ``1xx`` responses (such as
``103 Early Hints``) are skipped; the first byte of the first one still ends
``ttfb``, as in curl.

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

from probes import guard, tlsinfo
from probes.base import MAX_REDIRECTS, Failure, ProbeConfig, ProbeError, Sample, Target

USER_AGENT = "Switchboard-probe/0.1"
MAX_HEADER_BYTES = 64 * 1024
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


def build_request(
    target: Target,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    lines = [
        f"{method} {request_target(target)} HTTP/1.1",
        f"Host: {host_header(target)}",
        f"User-Agent: {USER_AGENT}",
    ]
    names = {name.lower() for name, _ in headers}
    if "accept" not in names:
        lines.append("Accept: */*")
    if target.username is not None:
        password = target.password.get_secret_value() if target.password else ""
        token = base64.b64encode(f"{target.username}:{password}".encode()).decode("ascii")
        lines.append(f"Authorization: Basic {token}")
    for name, value in headers:
        if any(ch in name + value for ch in "\r\n"):
            raise ProbeError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- Response parsing ----------------------------------------------------------------


@dataclass
class _Head:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]


def _parse_head(raw: bytes) -> _Head:
    text = raw.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeError(f"malformed HTTP status line: {status_line[:80]!r}")
    if len(parts[1]) != 3:
        raise ProbeError(f"malformed HTTP status code: {parts[1][:10]!r}")
    headers: list[tuple[str, str]] = []
    for line in rest.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProbeError(f"malformed HTTP header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    return _Head(parts[0], int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers)


def _looks_like_http(buffer: bytes | bytearray) -> bool:
    prefix = bytes(buffer[:5])
    return b"HTTP/".startswith(prefix) if len(prefix) < 5 else prefix == b"HTTP/"


class _ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder (RFC 9112 section 7.1)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._state = "size"
        self._remaining = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Decoded bytes contained in ``data``; sets ``done`` at the last chunk."""
        self._pending += data
        out = bytearray()
        while not self.done:
            if self._state == "size":
                end = self._pending.find(b"\r\n")
                if end < 0:
                    if len(self._pending) > 1024:
                        raise ProbeError("malformed chunked body: chunk size line too long")
                    break
                line = bytes(self._pending[:end]).split(b";", 1)[0].strip()
                del self._pending[: end + 2]
                try:
                    self._remaining = int(line, 16)
                except ValueError:
                    raise ProbeError(
                        f"malformed chunked body: bad chunk size {line[:20]!r}"
                    ) from None
                self._state = "data" if self._remaining else "trailer"
            elif self._state == "data":
                take = min(self._remaining, len(self._pending))
                out += self._pending[:take]
                del self._pending[:take]
                self._remaining -= take
                if self._remaining:
                    break
                self._state = "crlf"
            elif self._state == "crlf":
                if len(self._pending) < 2:
                    break
                if self._pending[:2] != b"\r\n":
                    raise ProbeError("malformed chunked body: missing CRLF after a chunk")
                del self._pending[:2]
                self._state = "size"
            else:  # trailer section: header lines up to an empty line
                end = self._pending.find(b"\r\n")
                if end < 0:
                    if len(self._pending) > MAX_HEADER_BYTES:
                        raise ProbeError("malformed chunked body: trailer too long")
                    break
                line_empty = end == 0
                del self._pending[: end + 2]
                if line_empty:
                    self.done = True
        return bytes(out)


async def exchange(
    conn: tlsinfo.Connection,
    request: bytes,
    *,
    read_cap: int,
    keep_body: int = 0,
    head_request: bool = False,
) -> HttpResponse:
    """Send ``request`` on ``conn`` and read the response, timing ttfb and transfer.

    ``keep_body`` is how many body bytes to keep in memory (for a caller that
    parses the body); the rest are counted and dropped.
    """
    reader, writer = conn.reader, conn.writer
    arrivals = conn.protocol
    arrivals.reset()
    started = time.perf_counter_ns()
    writer.write(request)
    await writer.drain()
    try:
        first = await reader.read(READ_CHUNK)
    except ConnectionResetError:
        raise ProbeError("connection reset before any response (not an HTTP server?)") from None
    if not first:
        raise ProbeError("connection closed before any response (not an HTTP server?)")
    # When the first byte arrived (noted by the protocol), not when this task woke up.
    first_ns = arrivals.first_data_ns or time.perf_counter_ns()
    buffer = bytearray(first)

    async def more() -> bytes:
        return await reader.read(READ_CHUNK)

    # Headers, skipping interim 1xx responses.
    while True:
        if not _looks_like_http(buffer):
            raise ProbeError(f"not an HTTP response: {bytes(buffer[:40])!r}")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise ProbeError(f"response headers exceed {MAX_HEADER_BYTES} bytes")
            chunk = await more()
            if not chunk:
                raise ProbeError("connection closed inside the response headers")
            buffer += chunk
            continue
        head = _parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        if 100 <= head.status < 200 and head.status != 101:
            continue
        break

    kept = bytearray()
    body_bytes = 0
    truncated = False

    def take(data: bytes) -> bool:
        """Count (and keep) body bytes; True once the read cap is reached."""
        nonlocal body_bytes, truncated
        room = read_cap - body_bytes
        if len(data) >= room:
            data = data[:room]
            truncated = True
        body_bytes += len(data)
        if len(kept) < keep_body:
            kept.extend(data[: keep_body - len(kept)])
        return truncated

    encoding = (_header(head.headers, "transfer-encoding") or "").lower()
    length_text = _header(head.headers, "content-length")
    no_body = head_request or head.status in (101, 204, 304) or 100 <= head.status < 200
    if no_body:
        pass
    elif encoding.endswith("chunked"):
        decoder = _ChunkedDecoder()
        data = bytes(buffer)
        while True:
            if take(decoder.feed(data)) or decoder.done:
                break
            data = await more()
            if not data:
                raise ProbeError("connection closed inside a chunked body")
    elif length_text is not None:
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length_text)
        except ValueError:
            raise ProbeError(f"malformed Content-Length: {length_text[:20]!r}") from None
        wanted = min(length, read_cap)
        data = bytes(buffer)
        while True:
            take(data[: length - body_bytes])
            if body_bytes >= wanted:
                truncated = length > read_cap
                break
            data = await more()
            if not data:
                raise ProbeError(f"connection closed after {body_bytes} of {length} body bytes")
    else:
        # Neither length nor chunked: the body ends when the server closes.
        data = bytes(buffer)
        while True:
            if data and take(data):
                break
            data = await more()
            if not data:
                break
    last_ns = arrivals.last_data_ns or time.perf_counter_ns()
    return HttpResponse(
        version=head.version,
        status=head.status,
        reason=head.reason,
        headers=head.headers,
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


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


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
            response = await exchange(
                conn,
                request,
                read_cap=config.read_cap,
                keep_body=keep_body,
                head_request=method == "HEAD",
            )
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
