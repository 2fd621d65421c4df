"""http:// and https:// probes against real servers on 127.0.0.1 (tests/probes/servers_http.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from probes import http
from probes.base import MAX_REDIRECTS, ProbeConfig, ProbeError
from probes.runner import run_probe
from tests.probes.conftest import open_fds, wait_until
from tests.probes.servers_http import (
    Certificates,
    Handler,
    Request,
    Server,
    probe_now,
    running,
    start_http,
    start_raw,
    target_for,
)

CHUNKED_BODY = b"alpha," + b"beta," * 1000 + b"gamma"


def url(server: Server, path: str, scheme: str = "http") -> str:
    return f"{scheme}://localhost:{server.port}{path}"


def fetch(
    target_url: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    keep_body: int = 0,
) -> http.HttpResponse:
    config = ProbeConfig()

    async def go() -> http.HttpResponse:
        return await http.fetch(
            target_for(target_url),
            config,
            time.monotonic() + config.timeout_s,
            method=method,
            headers=headers or [],
            body=body,
            keep_body=keep_body,
        )

    return asyncio.run(go())


# --- Plain HTTP ---------------------------------------------------------------------


def test_ok_reports_phases_status_and_sends_the_url_host(web: Server) -> None:
    before = len(web.requests)
    sample = probe_now(http, url(web, "/ok"))

    assert sample.ok, sample.error
    assert sample.details["status"] == 200
    assert sample.details["http_version"] == "HTTP/1.1"
    assert sample.details["body_bytes"] == len(b"hello\n")
    assert sample.phases_ms["tls"] is None
    connect, ttfb, transfer = (sample.phases_ms[k] for k in ("connect", "ttfb", "transfer"))
    assert connect is not None and ttfb is not None and transfer is not None
    assert connect > 0 and ttfb > 0 and transfer >= 0
    assert sample.latency_ms == pytest.approx(connect + ttfb + transfer, abs=0.01)
    request = web.requests[before]
    # Connected to 127.0.0.1, but the Host header names the URL's host.
    assert request.headers["host"] == f"localhost:{web.port}"
    assert request.headers["connection"] == "close"
    assert request.headers["user-agent"] == http.USER_AGENT
    assert (request.method, request.target) == ("GET", "/ok")


def test_redirect_is_reported_with_location_and_not_followed(web: Server) -> None:
    before = len(web.requests)
    sample = probe_now(http, url(web, "/redirect"))

    assert sample.ok
    assert sample.details["status"] == 302
    assert sample.details["redirect"] == {"status": 302, "location": "/ok", "followed": False}
    assert [r.target for r in web.requests[before:]] == ["/redirect"]


FOLLOW = ProbeConfig(timeout_s=5.0, follow_redirects=True)


def test_follow_redirects_checks_and_follows_each_hop(web: Server, allow_loopback: str) -> None:
    before = len(web.requests)
    sample = probe_now(http, url(web, "/redirect"), FOLLOW, allowed=allow_loopback)

    assert sample.ok, sample.error
    assert sample.details["status"] == 200
    assert "redirect" not in sample.details  # the final answer is not a redirect
    (hop,) = sample.details["redirects"]
    assert (hop["status"], hop["location"], hop["address"]) == (302, "/ok", "127.0.0.1")
    assert [r.target for r in web.requests[before:]] == ["/redirect", "/ok"]
    # The latency covers the redirect too; the phases are the final request's.
    assert sample.latency_ms is not None and sample.latency_ms > sample.details["redirect_ms"]


def test_a_redirect_to_a_refused_address_is_not_followed(web: Server, allow_loopback: str) -> None:
    # 127.0.0.0/8 is allowed for the target, but a redirect to the metadata address
    # (always refused) or to a private network that is not allowed must stop there.
    for location in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.255.255.1/",
        "http://user:secret@0xa9fea9fe/",
        "ftp://127.0.0.1/file",
    ):
        target = url(web, "/redirect-to?to=" + quote(location, safe=""))
        sample = probe_now(http, target, FOLLOW, allowed=allow_loopback)
        assert not sample.ok
        assert sample.error is not None and sample.error.startswith("redirect not followed")
        assert "secret" not in sample.error
        assert sample.details["status"] == 302


def test_a_refused_redirect_hop_gets_no_packet(web: Server, default_policy: str) -> None:
    # With the default policy, a public-looking first hop is not possible here, so the
    # check runs on the redirect alone: a listener on loopback must see no connection.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        sample = asyncio.run(
            http.probe(
                target_for(url(web, f"/redirect-to?to=http://127.0.0.1:{port}/"), "127.0.0.1"),
                FOLLOW,
                time.monotonic() + 5,
            )
        )
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not sample.ok and sample.error is not None
    assert "loopback" in sample.error


def test_redirect_loops_end_after_the_limit(web: Server, allow_loopback: str) -> None:
    before = len(web.requests)
    sample = probe_now(http, url(web, "/loop"), FOLLOW, allowed=allow_loopback)
    assert not sample.ok
    assert sample.error == f"more than {MAX_REDIRECTS} redirects"
    assert len(web.requests[before:]) == MAX_REDIRECTS + 1
    assert len(sample.details["redirects"]) == MAX_REDIRECTS


@pytest.mark.parametrize(
    ("path", "error"),
    [("/unavailable", "HTTP 503 Service Unavailable"), ("/missing", "HTTP 404 Not Found")],
)
def test_4xx_and_5xx_are_answers_with_their_status(web: Server, path: str, error: str) -> None:
    # The contract's "answered": the target was reached and spoke HTTP.
    sample = probe_now(http, url(web, path))

    assert sample.ok and sample.error is None
    assert sample.details["http_error"] == error
    assert sample.details["status"] == int(error.split()[1])
    assert sample.phases_ms["ttfb"] is not None


def test_server_think_time_lands_in_ttfb_not_transfer(web: Server) -> None:
    sample = probe_now(http, url(web, "/slow?ms=60"))

    assert sample.ok
    ttfb, transfer = sample.phases_ms["ttfb"], sample.phases_ms["transfer"]
    assert ttfb is not None and transfer is not None
    # The server sleeps 60 ms after reading the request: a lower bound, not a timing race.
    assert ttfb >= 60.0
    assert transfer < ttfb


def test_chunked_body_is_decoded_with_extensions_and_trailer(web: Server) -> None:
    response = fetch(url(web, "/chunked"), keep_body=len(CHUNKED_BODY) + 10)

    assert response.status == 200
    assert response.body == CHUNKED_BODY
    assert response.body_bytes == len(CHUNKED_BODY)
    assert not response.truncated


def test_body_delimited_by_close_and_http_1_0(web: Server) -> None:
    response = fetch(url(web, "/close-delimited"), keep_body=1000)

    assert response.version == "HTTP/1.0"
    assert response.body == b"until close\n" * 10


def test_interim_103_is_skipped_for_the_final_response(web: Server) -> None:
    response = fetch(url(web, "/early-hints"), keep_body=100)

    assert (response.status, response.body) == (200, b"after hints\n")


def test_body_is_cut_at_the_read_cap(web: Server) -> None:
    sample = probe_now(http, url(web, "/large?bytes=1048576"))

    assert sample.ok
    assert sample.details["body_bytes"] == 64 * 1024
    assert sample.details["truncated"] is True


def test_throughput_reads_the_whole_body_and_times_the_transfer(web: Server) -> None:
    size = 8 * 1024 * 1024
    sample = probe_now(http, url(web, f"/large?bytes={size}"), ProbeConfig(throughput=True))

    assert sample.ok
    assert sample.details["body_bytes"] == size
    assert sample.details["truncated"] is False
    # Bytes after the first read, over the transfer phase.
    assert 0 < sample.transfer_bytes <= size + 1024
    assert sample.transfer_s is not None and sample.transfer_s > 0


def test_path_and_query_are_percent_encoded_into_one_request_line(web: Server) -> None:
    before = len(web.requests)
    probe_now(http, url(web, "/a b/ü?q=1 2"))

    assert web.requests[before].target == "/a%20b/%C3%BC?q=1%202"


def test_international_host_name_goes_out_idna_encoded(web: Server) -> None:
    before = len(web.requests)
    sample = probe_now(http, f"http://bücher.localhost:{web.port}/ok")

    assert sample.ok
    assert web.requests[before].headers["host"] == f"xn--bcher-kva.localhost:{web.port}"


def test_ipv6_loopback_target_with_bracketed_host_header(allow_loopback: str) -> None:
    with running(start_http(host="::1")) as server:
        result = asyncio.run(
            run_probe(
                f"http://[::1]:{server.port}/ok",
                ProbeConfig(count=1, timeout_s=2),
                allowed_networks=allow_loopback,
            )
        )
        assert result.ok, result.error
        assert result.address == "::1"
        assert server.requests[0].headers["host"] == f"[::1]:{server.port}"


def test_post_sends_body_and_content_length(web: Server) -> None:
    before = len(web.requests)
    response = fetch(
        url(web, "/graphql"),
        method="POST",
        body=b'{"query":"{__typename}"}',
        headers=[("Content-Type", "application/json")],
        keep_body=1000,
    )

    request = web.requests[before]
    assert request.method == "POST"
    assert request.body == b'{"query":"{__typename}"}'
    assert request.headers["content-length"] == str(len(request.body))
    assert b"__typename" in response.body


# --- Wrong peers --------------------------------------------------------------------


def test_a_server_speaking_another_protocol_is_a_clean_error() -> None:
    with running(start_raw("banner")) as server, pytest.raises(ProbeError) as caught:
        probe_now(http, url(server, "/"))
    assert str(caught.value).startswith("not an HTTP response: b'SSH-2.0-OpenSSH")


def test_a_server_that_hangs_up_at_once_is_a_clean_error() -> None:
    with running(start_raw("close")) as server, pytest.raises(ProbeError) as caught:
        probe_now(http, url(server, "/"))
    assert "before any response" in str(caught.value)


def test_silent_server_times_out_within_timeout_plus_ten_percent(
    allow_loopback: str,
) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    with running(start_raw("silent")) as server:

        async def go() -> tuple[float, object]:
            started = time.monotonic()
            result = await run_probe(
                f"http://127.0.0.1:{server.port}/",
                ProbeConfig(count=1, timeout_s=timeout),
                allowed_networks=allow_loopback,
            )
            return time.monotonic() - started, result

        elapsed, result = asyncio.run(go())
    assert elapsed <= timeout * 1.1
    assert result.ok is False  # type: ignore[attr-defined]
    assert "timed out" in (result.error or "")  # type: ignore[attr-defined]


# --- Hostile peers: h11 parses, the caps hold, every refusal is wrong_protocol ---------


def hostile(*pieces: bytes, forever: bytes = b"") -> Handler:
    """A handler that answers any request with ``pieces``, then ``forever`` until the client
    leaves (when given), then closes."""

    async def handle(req: Request, writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        while forever:
            writer.write(forever)
            await writer.drain()

    return handle


HEAD_OK = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    ("pieces", "forever", "message"),
    [
        # Header lines without end: refused at the cap, not buffered on.
        ((HEAD_OK,), b"X-Filler: " + b"a" * 1000 + b"\r\n", "response headers exceed 65536"),
        ((HEAD_OK + b"X-Long: ",), b"b" * 4096, "response headers exceed 65536"),
        # A chunk-size line without end.
        ((HEAD_OK + b"Transfer-Encoding: chunked\r\n\r\n",), b"f" * 4096, "chunk header"),
        ((b"HTTP/1.1 abc OK\r\n\r\n",), b"", "malformed HTTP response head"),
        ((b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",), b"", "malformed HTTP response head"),
        (
            (HEAD_OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",),
            b"",
            "malformed HTTP response head",
        ),
        ((b"HTTP/1.1 101 Switching Protocols\r\n\r\n",), b"", "malformed HTTP response head"),
        (
            (HEAD_OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",),
            b"",
            "malformed HTTP body",
        ),
        (
            (HEAD_OK + b"Content-Length: 100\r\n\r\n" + b"x" * 10,),
            b"",
            "connection closed after 10 body bytes",
        ),
        (
            (HEAD_OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",),
            b"",
            "connection closed after 3 body bytes",
        ),
        ((HEAD_OK + b"Content-Length: 5\r\n",), b"", "inside the response headers"),
        # Interim responses without end: each is small, their number is capped.
        ((), b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "more than 16 interim"),
    ],
)
def test_a_hostile_response_is_refused_as_the_wrong_protocol(
    pieces: tuple[bytes, ...], forever: bytes, message: str
) -> None:
    handler = hostile(*pieces, forever=forever)
    with running(start_http(handler=handler)) as server, pytest.raises(ProbeError) as caught:
        probe_now(http, url(server, "/"))
    assert message in str(caught.value)
    assert caught.value.failure == "wrong_protocol"


@pytest.mark.parametrize(
    "head",
    [
        # Announced lengths far past memory: the probe reads to its cap and stops.
        HEAD_OK + b"Content-Length: 4294967296000\r\n\r\n",
        HEAD_OK + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        HEAD_OK + b"\r\n",  # no length at all: the body runs until the close
    ],
)
def test_an_announced_length_is_never_trusted_past_the_read_cap(head: bytes) -> None:
    with running(start_http(handler=hostile(head, forever=b"z" * 65536))) as server:
        response = fetch(url(server, "/"), keep_body=1 << 20)
    assert response.body_bytes == ProbeConfig().read_cap
    assert len(response.body) == ProbeConfig().read_cap
    assert response.truncated is True


def test_a_body_of_exactly_the_cap_is_not_reported_truncated() -> None:
    cap = ProbeConfig().read_cap
    body = b"y" * cap
    for head in (
        HEAD_OK + f"Content-Length: {cap}\r\n\r\n".encode(),
        HEAD_OK + f"Transfer-Encoding: chunked\r\n\r\n{cap:x}\r\n".encode(),
    ):
        tail = b"\r\n0\r\n\r\n" if b"chunked" in head else b""
        with running(start_http(handler=hostile(head + body + tail))) as server:
            response = fetch(url(server, "/"))
        assert (response.body_bytes, response.truncated) == (cap, False), head


def test_a_reset_inside_the_body_is_a_reset_not_a_protocol_error(allow_loopback: str) -> None:
    async def reset(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD_OK + b"Content-Length: 100000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    with running(start_http(handler=reset)) as server:
        result = asyncio.run(
            run_probe(
                f"http://127.0.0.1:{server.port}/",
                ProbeConfig(count=1, timeout_s=2),
                allowed_networks=allow_loopback,
            )
        )
    assert not result.ok
    assert result.error == "connection reset by peer"
    assert result.failure == "other"


def test_head_reads_no_body_even_when_one_is_announced(web: Server) -> None:
    response = fetch(url(web, "/ok"), method="HEAD")

    assert response.status == 200
    assert response.header("content-length") == str(len(b"hello\n"))
    assert (response.body_bytes, response.truncated) == (0, False)


def test_a_header_with_a_line_break_is_refused_before_any_connection(web: Server) -> None:
    before = web.accepted
    with pytest.raises(ProbeError, match="line break"):
        fetch(url(web, "/ok"), headers=[("X-Evil", "a\r\nHost: elsewhere")])
    with pytest.raises(ProbeError, match="invalid HTTP request"):
        fetch(url(web, "/ok"), headers=[("Bad Name", "x")])
    assert web.accepted == before


# --- HTTPS --------------------------------------------------------------------------


def test_https_with_a_trusted_ca_verifies_and_uses_sni(certs: Certificates, trust_ca: Path) -> None:
    with running(start_http(certs.trusted())) as server:
        sample = probe_now(http, url(server, "/ok", "https"))

    assert sample.ok, sample.error
    assert sample.phases_ms["tls"] is not None and sample.phases_ms["tls"] > 0
    tls = sample.details["tls"]
    assert tls["verified"] is True and tls["verify_error"] is None
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert "localhost" in tls["sans"]
    assert server.sni == ["localhost"]
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("expired", "certificate has expired"), ("self_signed", "self-signed certificate")],
)
def test_https_bad_certificate_fails_unless_insecure_which_still_measures(
    certs: Certificates, trust_ca: Path, kind: str, reason: str
) -> None:
    with running(start_http(getattr(certs, kind)())) as server:
        strict = probe_now(http, url(server, "/ok", "https"))
        before = len(server.requests)
        loose = probe_now(http, url(server, "/ok", "https"), ProbeConfig(insecure=True))
        requests_after = len(server.requests) - before

    assert not strict.ok
    assert strict.error == f"certificate verify failed: {reason}"
    assert strict.details["tls"] == {"verified": False, "verify_error": reason}

    assert loose.ok, loose.error
    assert loose.details["status"] == 200
    assert loose.details["tls"]["verified"] is False
    assert loose.details["tls"]["verify_error"] == reason
    assert loose.phases_ms["tls"] is not None and loose.phases_ms["ttfb"] is not None
    assert requests_after == 1


def test_https_against_a_plain_http_port_is_a_tls_error(web: Server) -> None:
    with pytest.raises(ProbeError, match="TLS handshake failed: WRONG_VERSION_NUMBER"):
        probe_now(http, url(web, "/ok", "https"))


# --- Through the runner -------------------------------------------------------------


def test_run_probe_http_summarises_phases(web: Server, allow_loopback: str) -> None:
    result = asyncio.run(
        run_probe(
            url(web, "/ok"),
            ProbeConfig(count=3, interval_ms=10, timeout_s=2),
            allowed_networks=allow_loopback,
        )
    )

    assert result.ok and result.succeeded == 3 and result.kind == "http"
    assert result.address in ("127.0.0.1", "::1")
    assert result.phases_ms["dns"] is not None  # "localhost" was resolved once, by the guard
    assert result.phases_ms["tls"] is None
    assert result.phases_ms["ttfb"] is not None and result.phases_ms["connect"] is not None
    assert result.details["status"] == 200
    assert result.throughput_bps is None


def test_run_probe_throughput_reports_bits_per_second(web: Server, allow_loopback: str) -> None:
    config = ProbeConfig(count=2, interval_ms=10, timeout_s=10, throughput=True)
    result = asyncio.run(
        run_probe(
            f"http://127.0.0.1:{web.port}/large?bytes=4194304",
            config,
            allowed_networks=allow_loopback,
        )
    )

    assert result.ok
    assert result.throughput_bps is not None and result.throughput_bps > 0


def test_no_descriptor_leaks_over_many_https_samples(
    certs: Certificates, trust_ca: Path, allow_loopback: str
) -> None:
    # Self-signed + insecure: two connections per sample (the verifying attempt, then the
    # measured one), so both the failure and the success path must release everything.
    with running(start_http(certs.self_signed())) as server:
        config = ProbeConfig(count=200, interval_ms=10, timeout_s=2, insecure=True)
        target = f"https://127.0.0.1:{server.port}/ok"
        asyncio.run(
            run_probe(
                target, config.model_copy(update={"count": 2}), allowed_networks=allow_loopback
            )
        )  # warm up
        before = open_fds()
        result = asyncio.run(run_probe(target, config, allowed_networks=allow_loopback))
        # The server runs in this process too and may close its side a moment later;
        # a descriptor the probe leaked would never go away.
        wait_until(lambda: set(open_fds()) <= set(before), what="descriptors to be released")

    assert result.succeeded == 200, result.error
    assert result.details["tls"]["verified"] is False


def test_manage_py_probe_https_insecure_exit_codes(certs: Certificates) -> None:
    env = {
        **os.environ,
        "PROBE_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
    }
    env.pop("PROBE_CA_FILE", None)
    root = Path(__file__).resolve().parents[2]
    with running(start_http(certs.self_signed())) as server:
        base = [sys.executable, "manage.py", "probe", f"https://127.0.0.1:{server.port}/ok"]
        args = ["--count", "2", "--interval", "10", "--format", "json"]
        strict = subprocess.run(
            [*base, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )
        loose = subprocess.run(
            [*base, *args, "--insecure"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert strict.returncode == 1
    assert "certificate verify failed: self-signed certificate" in strict.stderr
    assert loose.returncode == 0, loose.stderr
    result = json.loads(loose.stdout)
    assert result["ok"] is True and result["kind"] == "https"
    assert result["details"]["tls"]["verified"] is False
    assert result["details"]["tls"]["verify_error"] == "self-signed certificate"
    assert result["phases_ms"]["tls"] is not None
