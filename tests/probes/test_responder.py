"""The responder: its TCP protocol, its UDP limits, and the management command."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.base import ProbeConfig
from probes.responder import (
    SEND_MAX_BYTES,
    RateLimiter,
    Responder,
    parse_request,
)
from probes.runner import run_probe_sync
from tests.probes.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def exchange(port: int, request: bytes, read_until_eof: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        if not read_until_eof:
            return conn.recv(64)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"SEND 10\n", ("SEND", 10)),
        (b"SEND 0\n", ("SEND", 0)),
        (b"SEND 99999999999999\n", ("SEND", SEND_MAX_BYTES)),
        (b"ECHO\r\n", ("ECHO", 0)),
    ],
)
def test_parse_request(line: bytes, parsed: tuple[str, int]) -> None:
    assert parse_request(line) == parsed


@pytest.mark.parametrize(
    "line", [b"SEND\n", b"SEND -1\n", b"SEND 1e6\n", b"GET / HTTP/1.1\n", b"\xff\n", b"send 1\n"]
)
def test_parse_request_refuses_anything_else(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"SEND|ASCII"):
        parse_request(line)


def test_send_streams_exactly_the_bytes_asked_for(responder: Responder) -> None:
    assert responder.tcp_port is not None
    data = exchange(responder.tcp_port, b"SEND 100000\n")
    header, _, body = data.partition(b"\n")
    assert header == b"OK 100000"
    assert len(body) == 100_000


def test_send_is_capped(responder: Responder) -> None:
    assert responder.tcp_port is not None
    head = exchange(responder.tcp_port, b"SEND 99999999999\n", read_until_eof=False)
    assert head.startswith(f"OK {SEND_MAX_BYTES}\n".encode())


def test_echo_returns_what_was_sent(responder: Responder) -> None:
    assert responder.tcp_port is not None
    with socket.create_connection(("127.0.0.1", responder.tcp_port), timeout=5) as conn:
        conn.sendall(b"ECHO\n" + b"hello responder")
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert data == b"OK ECHO\nhello responder"


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"HELLO\n", b"ERR expected 'SEND <nbytes>' or 'ECHO'\n"),
        (b"SEND " + b"9" * 100 + b"\n", b"ERR request line too long\n"),
    ],
)
def test_bad_requests_get_an_error_line(
    responder: Responder, request_bytes: bytes, answer: bytes
) -> None:
    assert responder.tcp_port is not None
    assert exchange(responder.tcp_port, request_bytes) == answer


def test_rate_limiter_by_hand() -> None:
    limiter = RateLimiter(rate=10.0, burst=3.0)
    assert [limiter.allow("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", now=0.0)  # another source has its own bucket
    assert not limiter.allow("a", now=0.05)  # half a token refilled
    assert limiter.allow("a", now=0.1)  # one whole token
    assert [limiter.allow("a", now=10.0) for _ in range(4)] == [True, True, True, False]


def test_udp_from_privileged_ports_is_not_echoed(responder: Responder) -> None:
    assert responder.udp_port is not None and responder.echo is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", 0 if os.geteuid() else 1007))
        except OSError as exc:
            pytest.skip(f"cannot bind a port below 1024: {exc}")
        if sock.getsockname()[1] >= 1024:
            pytest.skip("not root: cannot bind a port below 1024")
        sock.sendto(b"loop?", ("127.0.0.1", responder.udp_port))
        # Then a datagram from a normal port, which is echoed: once it is
        # back, the first one has been handled (one socket, in order).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as normal:
            normal.settimeout(5)
            normal.sendto(b"ok", ("127.0.0.1", responder.udp_port))
            assert normal.recv(16) == b"ok"
        assert select.select([sock], [], [], 0)[0] == []
    echo = responder.echo
    wait_until(lambda: echo.echoed == 1, what="the responder to count its echo")
    assert echo.dropped == 1


# --- The management command, as a user runs it -------------------------------------


@pytest.fixture
def responder_process() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "responder",
            "--udp",
            "0",
            "--tcp",
            "0",
            "--bind",
            "127.0.0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(ports) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.match(r"responder: (UDP|TCP) \S+ on 127\.0\.0\.1:(\d+)", line)
        if match:
            ports[match.group(1)] = int(match.group(2))
    if len(ports) < 2:
        proc.kill()
        pytest.fail(f"responder did not start: {proc.stderr.read() if proc.stderr else ''}")
    yield proc, ports["UDP"], ports["TCP"]
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_the_command_serves_udp_and_tcp_probes_and_stops_cleanly(
    allow_loopback: str, responder_process: tuple[subprocess.Popen[str], int, int]
) -> None:
    proc, udp_port, tcp_port = responder_process
    echo = run_probe_sync(
        f"udp://127.0.0.1:{udp_port}",
        ProbeConfig(count=3, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert echo.ok and echo.succeeded == 3
    download = run_probe_sync(
        f"tcp://127.0.0.1:{tcp_port}",
        ProbeConfig(count=1, timeout_s=10, throughput=True),
        allowed_networks=allow_loopback,
    )
    assert download.ok and download.throughput_bps is not None
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "responder: stopped" in out and "Traceback" not in err


def test_sigterm_right_after_the_ready_line_stops_cleanly_even_with_stdout_gone() -> None:
    # A supervisor may signal as soon as it has read the line saying the port
    # listens, and may have stopped reading by then.
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "responder", "--udp", "0", "--bind", "127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("responder: UDP echo on 127.0.0.1:")
    proc.stdout.close()
    proc.terminate()
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give --udp PORT, --tcp PORT or both"),
        (["--udp", "70000"], 2, "--udp must be a port between 0 and 65535"),
        (["--tcp", "-1"], 2, "--tcp must be a port"),
        (["--tcp", "x"], 2, "invalid int value"),
    ],
)
def test_the_command_rejects_bad_options(args: list[str], code: int, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", "responder", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_the_command_reports_a_port_in_use(responder: Responder) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "responder",
            "--tcp",
            str(responder.tcp_port),
            "--bind",
            "127.0.0.1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
