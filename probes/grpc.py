"""grpc://host:port[/service] and grpcs:// -- the standard health check (grpc.health.v1).

One sample is a new channel (closed afterwards) to ``target.address`` --
given to gRPC as an ``ipv4:``/``ipv6:`` target, so gRPC resolves nothing
itself -- with the URL's host as ``:authority`` and, for grpcs, as the name
the certificate must carry (``grpc.ssl_target_name_override``). HTTP proxies
from the environment are disabled (they would send the request elsewhere) and
the channel gets its own subchannel pool, so no connection is shared between
samples.

The path names the service to check (``grpc://host:50051/my.pkg.Service``);
no path checks the server as a whole (the empty service name).

- SERVING: the sample is ok.
- NOT_SERVING (or UNKNOWN): the sample fails with "health status NOT_SERVING".
- gRPC status NOT_FOUND: the service is unknown to the health service.
- UNIMPLEMENTED: the server has no health service.

Phases: ``connect`` is the channel becoming READY (TCP, TLS for grpcs and the
HTTP/2 preface and settings exchange: gRPC does these in its C core and does
not expose them apart, so ``tls`` is null and ``details["connect_includes_tls"]``
says so); ``ttfb`` is the Check call on the ready channel, request to response;
``latency_ms`` is the two together.

Certificates: grpcs trusts the system store plus ``PROBE_CA_FILE`` (as
:mod:`probes.tlsinfo` does), read before the clock starts. gRPC cannot be told
to skip verification, so ``--insecure`` works by pinning: after a failed check,
the certificate the server presents is fetched on an untimed connection and
trusted as the only root for a second, timed attempt; ``details`` says it did
not verify and why. The certificate must still name the URL's host: a name
mismatch is not something pinning can excuse, and fails even with --insecure.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import ssl
import time
from typing import Any
from urllib.parse import unquote

# gRPC's C core logs connection events to stderr by itself; the probe reports
# them in its result instead. An operator's own setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.tlsinfo import (
    ENV_CA_FILE,
    client_context,
    close_writer,
    server_name,
    tcp_connect,
)

# Bounds the response we accept; a health response is a few bytes.
MAX_MESSAGE_BYTES = 64 * 1024
CLOSE_GRACE_S = 0.5
DIAGNOSIS_MARGIN_S = 0.01
VERIFY_FAILED_MARKERS = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "Hostname Verification Check failed",
)
Status = health_pb2.HealthCheckResponse.ServingStatus


def sample_timeout(deadline: float) -> asyncio.Timeout:
    """Fires just before the runner's timeout for the same deadline (see probes.ssh)."""
    return asyncio.timeout(max(0.0, deadline - time.monotonic() - DIAGNOSIS_MARGIN_S))


def channel_address(target: Target) -> str:
    """gRPC target naming the checked address, so gRPC's resolver is never used."""
    if ":" in target.address:
        return f"ipv6:[{target.address}]:{target.port}"
    return f"ipv4:{target.address}:{target.port}"


def authority(target: Target) -> str:
    host = target.host.strip("[]")
    return f"[{host}]:{target.port}" if ":" in host else f"{host}:{target.port}"


def service_name(target: Target) -> str:
    return unquote(target.path or "/").strip("/")


@functools.lru_cache(maxsize=8)
def _trusted_roots(ca_file: str | None) -> bytes:
    """The system CA bundle plus the optional extra CA file, as PEM (read once)."""
    defaults = ssl.get_default_verify_paths()
    system = next(
        (p for p in (defaults.cafile, defaults.openssl_cafile) if p and os.path.isfile(p)), None
    )
    pem = b""
    for path in (system, ca_file):
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                pem += handle.read() + b"\n"
        except OSError as exc:
            raise ProbeError(f"CA file {path!r} could not be read: {exc.strerror}") from None
    return pem


def trusted_roots() -> bytes:
    return _trusted_roots(os.environ.get(ENV_CA_FILE) or None)


def connect_timeout_ms(deadline: float) -> int:
    """The time left to the deadline, in whole milliseconds (at least 1)."""
    return max(1, math.ceil((deadline - time.monotonic()) * 1000))


def channel_options(target: Target, deadline: float) -> list[tuple[str, Any]]:
    # gRPC's core gives every connection attempt (TCP, TLS, the HTTP/2
    # settings exchange) at least its "minimum connect timeout", 20 s by
    # default, and closing the channel does not cut an attempt short: a
    # silent peer kept each sample's socket open ~20 s after the sample had
    # timed out (61 open after 60 samples). The minimum is read from
    # grpc.min_reconnect_backoff_ms, and an attempt's deadline is the later
    # of it and the next backoff step, so all three end at the sample's deadline.
    bound_ms = connect_timeout_ms(deadline)
    options: list[tuple[str, Any]] = [
        ("grpc.default_authority", authority(target)),
        ("grpc.enable_http_proxy", 0),
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.min_reconnect_backoff_ms", bound_ms),
        ("grpc.initial_reconnect_backoff_ms", bound_ms),
        ("grpc.max_reconnect_backoff_ms", bound_ms),
    ]
    if target.tls:
        options.append(("grpc.ssl_target_name_override", server_name(target)))
    return options


def make_channel(target: Target, roots: bytes | None, deadline: float) -> grpc.aio.Channel:
    options = channel_options(target, deadline)
    if not target.tls:
        return grpc.aio.insecure_channel(channel_address(target), options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=roots or None)
    return grpc.aio.secure_channel(channel_address(target), credentials, options=options)


async def fetch_certificate_pem(target: Target) -> bytes:
    """The server's certificate from an untimed handshake that does not verify."""
    sock, _ = await tcp_connect(target)
    try:
        _, writer = await asyncio.open_connection(
            sock=sock,
            ssl=client_context(verify=False, alpn=("h2",)),
            server_hostname=server_name(target),
        )
    except BaseException:
        sock.close()
        raise
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        await close_writer(writer)
    if not der:
        raise ProbeError("the server presented no certificate", failure="tls")
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")


async def _wait_connected(
    channel: grpc.aio.Channel, watches: list[asyncio.Future[None]]
) -> grpc.ChannelConnectivity:
    """Until the channel is READY or its first connection attempt failed.

    Each state watch runs as its own task, shielded: when the deadline cancels
    this wait, the watch stays registered in gRPC's core until the channel is
    closed, and the caller drains it then. A watch left behind would otherwise
    complete after ``asyncio.run`` has closed the loop, and gRPC would log
    "Event loop is closed" from its poller thread.
    """
    state = channel.get_state(try_to_connect=True)
    while state not in (
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    ):
        watch = asyncio.ensure_future(channel.wait_for_state_change(state))
        watches.append(watch)
        await asyncio.shield(watch)
        state = channel.get_state(try_to_connect=True)
    return state


async def _close(channel: grpc.aio.Channel, watches: list[asyncio.Future[None]]) -> None:
    await channel.close(grace=CLOSE_GRACE_S)
    pending = [watch for watch in watches if not watch.done()]
    if pending:
        # Closing moves the channel to SHUTDOWN, which completes every watch.
        await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
    for watch in watches:
        if watch.done() and not watch.cancelled():
            watch.exception()  # retrieved, so asyncio does not log it as lost
        elif not watch.done():
            watch.cancel()


def _rpc_error(exc: grpc.aio.AioRpcError, service: str) -> Exception:
    code = exc.code()
    text = exc.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ProbeError("no health service (grpc.health.v1.Health is UNIMPLEMENTED)")
    if code == grpc.StatusCode.NOT_FOUND:
        return ProbeError(f"unknown service {service!r} (the health service answered NOT_FOUND)")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimeoutError()
    if code == grpc.StatusCode.UNAVAILABLE:
        if "Connection refused" in text:
            return ConnectionRefusedError("connection refused")
        if any(marker in text for marker in VERIFY_FAILED_MARKERS):
            return _VerifyFailed(text)
        return ProbeError(f"unavailable: {text[:300]}")
    return ProbeError(f"{code.name}: {text[:300]}")


class _VerifyFailed(ProbeError):
    """The certificate did not verify; ``reason`` is the short form of gRPC's text."""

    def __init__(self, text: str) -> None:
        self.reason = verify_reason(text)
        super().__init__(f"certificate verify failed: {self.reason}", failure="tls")


def verify_reason(text: str) -> str:
    """'unable to get local issuer certificate' out of gRPC's long connect error."""
    if "Hostname Verification Check failed" in text:
        return "the certificate does not name the URL's host"
    marker = "CERTIFICATE_VERIFY_FAILED:"
    if marker in text:
        reason = text.split(marker, 1)[1].strip()
        return reason.removesuffix(": OK").strip() or "unknown reason"
    return text[:300]


async def _check(
    target: Target, roots: bytes | None, service: str, deadline: float
) -> tuple[float, float, int]:
    """One channel: ms to READY, ms for the Check call, and the serving status."""
    request = health_pb2.HealthCheckRequest(service=service)
    channel = make_channel(target, roots, deadline)
    watches: list[asyncio.Future[None]] = []
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        # gRPC's own connect timeout (20 s) knows nothing of the sample's deadline.
        async with sample_timeout(deadline):
            started = time.perf_counter_ns()
            await _wait_connected(channel, watches)
            ready = time.perf_counter_ns()
            # On TRANSIENT_FAILURE the call fails at once, and its status says why.
            call_timeout = max(0.001, deadline - time.monotonic())
            response = await stub.Check(request, timeout=call_timeout, wait_for_ready=False)
            answered = time.perf_counter_ns()
    except grpc.aio.AioRpcError as exc:
        raise _rpc_error(exc, service) from None
    finally:
        await _close(channel, watches)
    return (ready - started) / 1e6, (answered - ready) / 1e6, int(response.status)


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    service = service_name(target)
    roots = trusted_roots() if target.tls else None
    details: dict[str, Any] = {"service": service, "connect_includes_tls": target.tls}
    try:
        connect_ms, check_ms, status = await _check(target, roots, service, deadline)
        if target.tls:
            details.update(tls_verified=True, tls_verify_error=None)
    except _VerifyFailed as exc:
        if not config.insecure:
            raise ProbeError(str(exc), failure="tls") from None
        pinned = await fetch_certificate_pem(target)
        try:
            connect_ms, check_ms, status = await _check(target, pinned, service, deadline)
        except _VerifyFailed as again:
            raise ProbeError(
                f"certificate verify failed even with --insecure: {again.reason} "
                "(pinning the presented certificate cannot excuse that)",
                failure="tls",
            ) from None
        details.update(tls_verified=False, tls_verify_error=exc.reason)
    name = Status.Name(status) if status in Status.values() else str(status)
    details["status"] = name
    phases: dict[str, float | None] = {
        "connect": connect_ms,
        "tls": None,
        "ttfb": check_ms,
        "transfer": None,
    }
    if status != health_pb2.HealthCheckResponse.SERVING:
        label = f"service {service!r}" if service else "the server"
        return Sample(
            ok=False,
            error=f"health status {name} for {label}",
            phases_ms=phases,
            details=details,
        )
    return Sample(ok=True, latency_ms=connect_ms + check_ms, phases_ms=phases, details=details)
