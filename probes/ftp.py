"""ftp://[user:password@]host:port/path[?tls=1] -- banner, login, a directory listing.

A small FTP client (RFC 959, RFC 2389 FEAT, RFC 2428 EPSV, RFC 3659 MLSD) on
asyncio streams; no third-party client, so every byte sent is visible here.

One sample: TCP connect to ``target.address``, the 220 banner, ``FEAT``,
optionally TLS, ``USER``/``PASS`` (``anonymous`` / ``anonymous@`` when the URL
has no user), ``SYST``, then a listing of the path on a passive data
connection: ``MLSD`` when the server lists it in FEAT (machine-readable, so
the count is exact), ``LIST`` otherwise; then ``QUIT``.

The path follows RFC 1738: it is relative to the login directory, so
``ftp://host/pub`` lists ``pub`` and ``ftp://host/`` lists the login directory.

Passive data connections always go to ``target.address``. ``EPSV`` is tried
first (it carries only a port); with ``PASV`` the reply also names an address,
and that address is ignored: a hostile or misconfigured server could name any
host, including one the guard refuses (an internal service, a metadata
address), and connecting there would turn the probe into an SSRF tool. A PASV
address that differs is reported in ``details["pasv_address_ignored"]``.

FTPS (explicit TLS, RFC 4217) is asked for in the URL, because upgrading is a
choice with consequences (a certificate that does not verify fails the sample):

- ``?tls=1`` (or ``true``, ``yes``, ``require``): ``AUTH TLS`` right after the
  banner, then ``PBSZ 0`` and ``PROT P`` so the listing is encrypted too; a
  server that refuses fails the sample. The certificate is checked against the
  URL's host name; with ``--insecure`` a failing check is reported in
  ``details["tls_verified"]`` / ``["tls_verify_error"]`` and the sample is
  taken again without verification (the failed attempt is never timed), as in
  :mod:`probes.tlsinfo`.
- no ``tls`` parameter or ``tls=0``: plain FTP; ``details["auth_tls_offered"]``
  says whether the server's FEAT offers AUTH TLS.

Limit: asyncio cannot resume a TLS session, so servers that insist the data
connection reuse the control connection's TLS session (vsftpd's
``require_ssl_reuse``) refuse the listing; the error says so.

Phases: ``connect`` (control TCP), ``tls`` (the control handshake, FTPS only),
``ttfb`` (connected until the banner's first line), ``transfer`` (from the
server's 150 to the end of the listing on the data connection, including that
connection's TLS handshake with FTPS); ``details`` adds ``login_ms`` and
``list_ms`` (EPSV/PASV to the final 226). Only passive mode is used: active
mode would have the server connect back to the prober. ``latency_ms`` is TCP
connect to the end of the listing. Credentials are never echoed: server text
is scrubbed of the password.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from probes.base import ProbeConfig, ProbeError, Sample, Target, scrub
from probes.tlsinfo import (
    CertificateVerifyError,
    client_context,
    close_writer,
    server_name,
    session_facts,
    tcp_connect,
)

MAX_REPLY_BYTES = 64 * 1024
MAX_REPLY_LINES = 500
QUIT_WAIT_S = 0.5
REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$", re.DOTALL)
PASV_REPLY = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
EPSV_REPLY = re.compile(r"\((.)\1\1(\d{1,5})\1\)")
TLS_YES = {"1", "true", "yes", "require", "required"}
TLS_NO = {"0", "false", "no"}
# Our own timeout fires this much before the runner's for the same deadline,
# so a diagnosis made here is not replaced by a bare "timed out".
DIAGNOSIS_MARGIN_S = 0.01


def sample_timeout(deadline: float) -> asyncio.Timeout:
    return asyncio.timeout(max(0.0, deadline - time.monotonic() - DIAGNOSIS_MARGIN_S))


def printable(text: str, limit: int = 200) -> str:
    """Server-supplied text made safe to show: no control characters, bounded length."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean[:limit] + ("..." if len(clean) > limit else "")


@dataclass
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " / ".join(line for line in self.lines if line)


@dataclass
class _Session:
    """What one FTP session measured and saw."""

    connect_ms: float = 0.0
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    login_ms: float | None = None
    list_ms: float | None = None
    transfer_ms: float | None = None
    total_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class _Control:
    """The control connection: commands out, replies (RFC 959 section 4.2) in."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Target
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.target = target
        self.first_line_ns: int | None = None

    def clean(self, text: str) -> str:
        return printable(scrub(text, self.target) or "")

    async def _line(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                said = self.clean(exc.partial.decode("utf-8", "replace"))
                raise ProbeError(f"not an FTP server; it said {said!r}") from None
            raise ProbeError("the server closed the control connection") from None
        except asyncio.LimitOverrunError:
            raise ProbeError("the server sent an overlong line") from None
        return line.rstrip(b"\r\n")

    async def reply(self) -> Reply:
        first = await self._line()
        if self.first_line_ns is None:
            self.first_line_ns = time.perf_counter_ns()
        match = REPLY_LINE.match(first)
        if match is None:
            raise ProbeError(
                f"not an FTP server; it said {self.clean(first.decode('utf-8', 'replace'))!r}"
            )
        code = match.group(1)
        lines = [match.group(3).decode("utf-8", "replace")]
        size = len(first)
        if match.group(2) == b"-":
            # Multi-line: runs until a line that starts with the same code and a space.
            while True:
                line = await self._line()
                size += len(line)
                if size > MAX_REPLY_BYTES or len(lines) > MAX_REPLY_LINES:
                    raise ProbeError("the server sent an overlong reply")
                if line.startswith(code + b" "):
                    lines.append(line[4:].decode("utf-8", "replace"))
                    break
                lines.append(line.decode("utf-8", "replace"))
        return Reply(int(code), [self.clean(line) for line in lines])

    async def command(self, line: str) -> Reply:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    def fail(self, what: str, reply: Reply) -> ProbeError:
        return ProbeError(f"{what}: {reply.code} {reply.text}".rstrip())


def check_target(target: Target) -> None:
    """Refuse, before any packet, a URL no FTP server could be asked for."""
    tls_mode(target.query)
    list_argument(target.path)
    credentials(target)


def credentials(target: Target) -> tuple[str, str]:
    user = target.username or "anonymous"
    password = target.password.get_secret_value() if target.password else "anonymous@"
    if any(ch in user + password for ch in "\r\n\0"):
        raise ProbeError("the user name or password contains a line break or NUL")
    return user, password


def tls_mode(query: str) -> bool:
    values = parse_qs(query).get("tls")
    if not values:
        return False
    value = values[-1].strip().lower()
    if value in TLS_YES:
        return True
    if value in TLS_NO:
        return False
    raise ProbeError(f"tls={printable(value)!r} in the URL: use tls=1 (FTPS) or tls=0")


def list_argument(url_path: str) -> str:
    path = unquote(url_path or "/").lstrip("/")
    if any(ch in path for ch in "\r\n\0"):
        raise ProbeError("the path contains a line break or NUL")
    return path


def parse_features(reply: Reply) -> set[str]:
    """FEAT lines (RFC 2389): each feature on its own line, upper-cased name first."""
    if reply.code != 211:
        return set()
    return {line.strip().upper() for line in reply.lines[1:-1] if line.strip()}


def count_entries(listing: bytes, machine: bool) -> int:
    lines = [line for line in listing.decode("utf-8", "replace").splitlines() if line.strip()]
    if machine:
        # MLSD facts: skip the directory itself and its parent.
        return sum(1 for line in lines if not re.search(r"type=(cdir|pdir);", line, re.I))
    return sum(1 for line in lines if not line.lower().startswith("total "))


async def _start_tls(
    writer: asyncio.StreamWriter, target: Target, context: ssl.SSLContext
) -> float:
    started = time.perf_counter_ns()
    try:
        await writer.start_tls(context, server_hostname=server_name(target))
    except ssl.SSLCertVerificationError as exc:
        raise CertificateVerifyError(str(exc.verify_message or exc.reason or exc)) from None
    except ssl.SSLError as exc:
        raise ProbeError(f"TLS handshake failed: {exc.reason or exc}", failure="tls") from None
    return (time.perf_counter_ns() - started) / 1e6


async def _passive_port(ctl: _Control, target: Target, details: dict[str, Any]) -> int:
    reply = await ctl.command("EPSV")
    if reply.code == 229:
        match = EPSV_REPLY.search(reply.text)
        if match is None:
            raise ctl.fail("unreadable EPSV reply", reply)
        return int(match.group(2))
    reply = await ctl.command("PASV")
    if reply.code != 227:
        raise ctl.fail("passive mode refused", reply)
    match = PASV_REPLY.search(reply.text)
    if match is None:
        raise ctl.fail("unreadable PASV reply", reply)
    numbers = [int(n) for n in match.groups()]
    advertised = ".".join(str(n) for n in numbers[:4])
    if advertised != target.address:
        details["pasv_address_ignored"] = advertised
    return numbers[4] * 256 + numbers[5]


# The most of one listing line the probe keeps: enough to classify it. A longer
# line counts as one entry and the rest of it is skipped as it streams.
MAX_LISTING_LINE = 4096


class _EntryCounter:
    """Counts a listing's entries as it streams, holding at most one line of it.

    A listing is as long as the server makes it (with ``--throughput`` the read
    cap is 256 MiB): it is counted chunk by chunk, never kept whole.
    """

    def __init__(self, machine: bool) -> None:
        self.machine = machine
        self.entries = 0
        self.line = b""  # the start of the line still unfinished
        self.skipping = False  # inside a line over MAX_LISTING_LINE: drop to its end

    def feed(self, data: bytes) -> None:
        if self.skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            data, self.skipping = data[end + 1 :], False
        buffer = self.line + data
        end = buffer.rfind(b"\n")
        if end >= 0:
            self.entries += count_entries(buffer[: end + 1], self.machine)
            buffer = buffer[end + 1 :]
        if len(buffer) > MAX_LISTING_LINE:
            self.entries += count_entries(buffer[:MAX_LISTING_LINE], self.machine)
            buffer, self.skipping = b"", True
        self.line = buffer

    def finish(self) -> int:
        self.entries += count_entries(self.line, self.machine)
        self.line = b""
        return self.entries


async def _read_listing(reader: asyncio.StreamReader, cap: int, machine: bool) -> tuple[int, bool]:
    """The entries in the first ``cap`` bytes of the listing, and whether it went on."""
    counter = _EntryCounter(machine)
    total = 0
    while total <= cap:
        chunk = await reader.read(min(65536, cap + 1 - total))
        if not chunk:
            return counter.finish(), False
        total += len(chunk)
        counter.feed(chunk[: max(0, len(chunk) - max(0, total - cap))])
    return counter.finish(), True


async def _listing(
    ctl: _Control,
    target: Target,
    config: ProbeConfig,
    tls_context: ssl.SSLContext | None,
    features: set[str],
    result: _Session,
) -> None:
    argument = list_argument(target.path)
    machine = any(f.startswith(("MLSD", "MLST")) for f in features)
    verb = "MLSD" if machine else "LIST"
    started = time.perf_counter_ns()
    port = await _passive_port(ctl, target, result.details)
    if not 0 < port < 65536:
        raise ProbeError(f"the server named data port {port}")
    sock, _ = await tcp_connect(target.model_copy(update={"port": port}))
    try:
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    truncated = True  # until the listing was read to its end
    try:
        reply = await ctl.command(f"{verb} {argument}".rstrip())
        if reply.code not in (125, 150):
            raise ctl.fail(f"{verb} refused", reply)
        transfer_start = time.perf_counter_ns()
        if tls_context is not None:
            try:
                await _start_tls(writer, target, tls_context)
            except ProbeError as exc:
                raise ProbeError(
                    f"TLS on the data connection failed ({exc}); the server may require "
                    "TLS session reuse, which this client cannot offer"
                ) from None
        entries, truncated = await _read_listing(reader, config.read_cap, machine)
        result.transfer_ms = (time.perf_counter_ns() - transfer_start) / 1e6
    finally:
        # A complete listing is closed politely; anything else is dropped at once.
        await close_writer(writer, grace_s=0.0 if truncated else 0.5)
    final = await ctl.reply()
    if not truncated and final.code not in (226, 250):
        raise ctl.fail(f"{verb} failed", final)
    result.list_ms = (time.perf_counter_ns() - started) / 1e6
    result.details.update(list_command=verb, entries=entries, truncated=truncated)


async def _session(
    target: Target, config: ProbeConfig, use_tls: bool, verify: bool, result: _Session
) -> None:
    # Everything that is not network work is prepared before the clock starts.
    list_argument(target.path)  # a bad path fails before any packet is sent
    user, password = credentials(target)
    tls_context = client_context(verify=verify) if use_tls else None

    sock, result.connect_ms = await tcp_connect(target)
    # Stamped before the stream is set up: the banner may already be on its way.
    connected = time.perf_counter_ns()
    try:
        # The limit bounds a single reply line, so a hostile server cannot make
        # the probe buffer more than the 64 KiB a reply may have in all.
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_REPLY_BYTES)
    except BaseException:
        sock.close()
        raise
    ctl = _Control(reader, writer, target)
    try:
        banner = await ctl.reply()
        while banner.code == 120:  # "ready in nnn minutes": the real greeting follows
            banner = await ctl.reply()
        if ctl.first_line_ns is not None:
            result.ttfb_ms = (ctl.first_line_ns - connected) / 1e6
        if banner.code != 220:
            raise ctl.fail("the server did not greet", banner)
        result.details["banner"] = banner.text
        features = parse_features(await ctl.command("FEAT"))
        result.details["auth_tls_offered"] = "AUTH TLS" in features
        if tls_context is not None:
            reply = await ctl.command("AUTH TLS")
            if reply.code != 234:
                raise ctl.fail("the server refused AUTH TLS", reply)
            result.tls_ms = await _start_tls(writer, target, tls_context)
            result.details["tls"] = session_facts(writer.get_extra_info("ssl_object"))
            for command in ("PBSZ 0", "PROT P"):
                reply = await ctl.command(command)
                if reply.code != 200:
                    raise ctl.fail(f"{command.split()[0]} refused", reply)
        login_start = time.perf_counter_ns()
        reply = await ctl.command(f"USER {user}")
        if reply.code == 331:
            reply = await ctl.command(f"PASS {password}")
        if reply.code == 530:
            raise ProbeError("authentication failed", failure="other")
        if reply.code == 332:
            raise ProbeError("the server wants an account (ACCT), which is not supported")
        if reply.code not in (230, 202):
            raise ctl.fail("login failed", reply)
        result.login_ms = (time.perf_counter_ns() - login_start) / 1e6
        result.details["user"] = "anonymous" if target.username is None else "(from URL)"
        syst = await ctl.command("SYST")
        result.details["system"] = syst.text if syst.code == 215 else None
        await _listing(ctl, target, config, tls_context, features, result)
        result.total_ms = result.connect_ms + (time.perf_counter_ns() - connected) / 1e6
        await _quit(ctl)
    finally:
        await close_writer(writer, grace_s=0.0 if result.total_ms is None else 0.5)


async def _quit(ctl: _Control) -> None:
    """Say goodbye, but do not let a slow server hold the sample."""
    try:
        async with asyncio.timeout(QUIT_WAIT_S):
            await ctl.command("QUIT")
    except (TimeoutError, OSError, ProbeError):
        pass


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    use_tls = tls_mode(target.query)
    result = _Session()
    async with sample_timeout(deadline):
        try:
            await _session(target, config, use_tls, True, result)
            if use_tls:
                result.details.update(tls_verified=True, tls_verify_error=None)
        except CertificateVerifyError as exc:
            if not config.insecure:
                raise
            result = _Session()
            await _session(target, config, use_tls, False, result)
            result.details.update(tls_verified=False, tls_verify_error=exc.reason)
    result.details.update(tls_used=use_tls, login_ms=result.login_ms, list_ms=result.list_ms)
    return Sample(
        ok=True,
        latency_ms=result.total_ms,
        phases_ms={
            "connect": result.connect_ms,
            "tls": result.tls_ms,
            "ttfb": result.ttfb_ms,
            "transfer": result.transfer_ms,
        },
        details=result.details,
    )
