"""``manage.py probe`` as a user runs it: exit codes, JSON shape, text, secrets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from probes.base import PHASES, ProbeResult
from probes.management.commands.probe import render_summary
from probes.responder import Responder
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_KEYS = {
    "kind", "target", "address", "ok", "samples", "succeeded", "loss", "latency_ms",
    "jitter_ms", "phases_ms", "throughput_bps", "details", "error", "failure",
}  # fmt: skip
LATENCY_KEYS = {"min", "p50", "p95", "p99", "max", "mean", "stdev"}


def probe(*args: str, allowed: str | None = LOOPBACK_NETWORKS) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PROBE_ALLOWED_NETWORKS"] = allowed or ""
    return subprocess.run(
        [sys.executable, "manage.py", "probe", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_answered_is_exit_0_with_the_contract_json(tcp_listener: TCPListener) -> None:
    proc = probe(
        f"tcp://127.0.0.1:{tcp_listener.port}", "--count", "3", "--interval", "10",
        "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == CONTRACT_KEYS
    assert set(result["latency_ms"]) == LATENCY_KEYS
    assert list(result["phases_ms"]) == list(PHASES)
    assert result["kind"] == "tcp" and result["address"] == "127.0.0.1"
    assert (result["ok"], result["samples"], result["succeeded"], result["loss"]) == (
        True, 3, 3, 0.0,
    )  # fmt: skip
    assert result["error"] is None and result["throughput_bps"] is None
    assert isinstance(result["jitter_ms"], float)
    assert result["phases_ms"]["connect"] == result["latency_ms"]["p50"]
    assert proc.stderr == ""


def test_text_output_reads_like_ping(tcp_listener: TCPListener) -> None:
    proc = probe(f"tcp://localhost:{tcp_listener.port}", "--count", "2", "--interval", "10")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"PROBE tcp://localhost:{tcp_listener.port} (127.0.0.1 port")
    assert "resolved in" in lines[0]
    assert lines[1].startswith("seq=1 ok time=") and lines[2].startswith("seq=2 ok time=")
    assert "2 samples, 2 answered, 0.0% loss" in proc.stdout
    assert "latency min/p50/p95/p99/max/mean/stdev = " in proc.stdout
    assert "phases (median ms): dns " in proc.stdout
    assert "result: answered" in proc.stdout


def test_not_answered_is_exit_1_with_the_reason(closed_tcp_port: int) -> None:
    proc = probe(f"tcp://127.0.0.1:{closed_tcp_port}", "--count", "2", "--interval", "10")
    assert proc.returncode == 1
    assert "seq=1 failed: connection refused" in proc.stdout
    assert proc.stderr.strip() == f"probe: tcp://127.0.0.1:{closed_tcp_port}: connection refused"


def test_not_answered_json_still_prints_the_result(closed_tcp_port: int) -> None:
    proc = probe(f"tcp://127.0.0.1:{closed_tcp_port}", "--count", "1", "--format", "json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert set(result) == CONTRACT_KEYS
    assert (result["ok"], result["loss"], result["latency_ms"], result["error"]) == (
        False, 1.0, None, "connection refused",
    )  # fmt: skip


def test_a_silent_target_is_exit_1_timed_out(silent_udp: int) -> None:
    proc = probe(f"udp://127.0.0.1:{silent_udp}", "--count", "1", "--timeout", "0.3")
    assert proc.returncode == 1
    assert "timed out after 0.3 s" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count must be between 1 and 1000 (got 0)"),
        (["--count", "1001"], "--count must be between 1 and 1000 (got 1001)"),
        (["--count", "many"], "argument --count: invalid int value"),
        (["--interval", "9"], "--interval must be between 10 and 60000 ms (got 9)"),
        (["--interval", "nan"], "--interval must be between"),
        (["--timeout", "0"], "--timeout must be above 0 and at most 30 s (got 0)"),
        (["--timeout", "31"], "--timeout must be above 0 and at most 30 s (got 31)"),
        (["--timeout", "-1"], "--timeout must be above 0"),
        (["--format", "xml"], "argument --format: invalid choice"),
    ],
)
def test_bad_options_are_exit_2_naming_the_option(
    tcp_listener: TCPListener, args: list[str], message: str
) -> None:
    proc = probe(f"tcp://127.0.0.1:{tcp_listener.port}", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert tcp_listener.accepted == 0  # nothing was probed


@pytest.mark.parametrize(
    ("url", "allowed", "message"),
    [
        ("gopher://example.org/", LOOPBACK_NETWORKS, "unknown scheme 'gopher'"),
        ("tcp://example.org", LOOPBACK_NETWORKS, "needs an explicit port"),
        ("tcp://127.0.0.1:9", None, "127.0.0.1 is a loopback address"),
        ("http://0x7f.1/", None, "loopback"),
        ("http://169.254.169.254/", "0.0.0.0/0", "cloud metadata"),
        ("http://1.2.3.4.5/", None, "too many parts"),
        ("http:///x", LOOPBACK_NETWORKS, "the URL has no host"),
        ("tcp://127.0.0.1:0", LOOPBACK_NETWORKS, "port 0 cannot be probed"),
        ("tcp://127.0.0.1:65536", LOOPBACK_NETWORKS, "invalid URL (Port out of range"),
        ("tcp://::1:6379", LOOPBACK_NETWORKS, "an IPv6 address needs brackets"),
        ("http://a..b/", LOOPBACK_NETWORKS, "not a valid host name"),
        ("http://[::]:80/", "127.0.0.0/8", "an unspecified address"),
    ],
)
def test_invalid_or_refused_targets_are_exit_2(url: str, allowed: str | None, message: str) -> None:
    proc = probe(url, "--count", "1", allowed=allowed)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    # One line naming the URL once: "probe: URL: reason".
    assert proc.stderr.startswith(f"probe: {url}: ") and proc.stderr.count(url) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:{port}/x", "the URL path '/x' is not a Redis database number"),
        ("sftp://127.0.0.1:{port}/", "sftp needs a user name"),
        ("ftp://127.0.0.1:{port}/?tls=maybe", "use tls=1 (FTPS) or tls=0"),
        ("ftp://127.0.0.1:{port}/a%0D%0ADELE%20b", "the path contains a line break"),
        ("ftp://u:pw%0D%0A@127.0.0.1:{port}/", "the user name or password contains a line break"),
    ],
)
def test_a_url_the_protocol_can_never_probe_is_exit_2_and_sends_nothing(
    url: str, message: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        proc = probe(url.format(port=listener.getsockname()[1]), "--count", "2")
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""
        with pytest.raises(BlockingIOError):  # no connection was ever queued
            listener.accept()


def test_a_closed_pipe_stops_the_probe_without_a_traceback(tcp_listener: TCPListener) -> None:
    # `probe ... | head -1`: the reader leaves after the first line.
    env = dict(os.environ, PROBE_ALLOWED_NETWORKS=LOOPBACK_NETWORKS)
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    with subprocess.Popen(
        [sys.executable, "manage.py", "probe", url, "--count", "20", "--interval", "50"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("PROBE ")
        proc.stdout.close()
        stderr = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr == "probe: standard output was closed; stopped\n"


def test_ctrl_c_reports_the_samples_taken_so_far_like_ping(tcp_listener: TCPListener) -> None:
    env = dict(os.environ, PROBE_ALLOWED_NETWORKS=LOOPBACK_NETWORKS)
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    with subprocess.Popen(
        [sys.executable, "manage.py", "probe", url, "--count", "1000", "--interval", "20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child of a background job may start with SIGINT ignored; restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("seq=3 ") for line in lines):
            line = proc.stdout.readline()
            assert line, "the probe ended before its third sample"
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.startswith("probe: interrupted after ") and err.rstrip().endswith(" of 1000 samples")
    taken = int(err.split()[3])
    assert taken >= 3
    assert f"{taken} samples, {taken} answered, 0.0% loss" in out
    assert "result: answered" in out


def test_credentials_without_a_host_are_exit_2_and_masked() -> None:
    proc = probe("redis://user:hunter2@:6379", "--count", "1")
    assert proc.returncode == 2
    assert proc.stderr == "probe: redis://user:****@:6379: the URL has no host\n"
    assert proc.stdout == ""


def test_passwords_never_appear_in_any_output(closed_tcp_port: int) -> None:
    url = f"tcp://admin:hunter2@127.0.0.1:{closed_tcp_port}"
    for fmt in ("text", "json"):
        proc = probe(url, "--count", "1", "--format", fmt)
        assert proc.returncode == 1
        assert "hunter2" not in proc.stdout + proc.stderr
        assert "admin:****@" in proc.stdout and "admin:****@" in proc.stderr
    refused = probe(url, "--count", "1", allowed=None)
    assert refused.returncode == 2
    assert "hunter2" not in refused.stdout + refused.stderr
    assert "admin:****@" in refused.stderr


def test_a_nats_token_never_appears_in_any_output(nats_port: int) -> None:
    url = f"nats://s3cr3tt0ken@127.0.0.1:{nats_port}"
    for fmt in ("text", "json"):
        proc = probe(url, "--count", "1", "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert "s3cr3tt0ken" not in proc.stdout + proc.stderr
        assert f"nats://****@127.0.0.1:{nats_port}" in proc.stdout
    refused = probe(url, "--count", "1", allowed=None)
    assert refused.returncode == 2
    assert "s3cr3tt0ken" not in refused.stdout + refused.stderr


def test_throughput_against_the_responder(responder: Responder) -> None:
    proc = probe(
        f"tcp://127.0.0.1:{responder.tcp_port}", "--count", "1", "--throughput",
        "--timeout", "10", "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["throughput_bps"] > 0
    assert result["phases_ms"]["transfer"] is not None and result["phases_ms"]["ttfb"] is not None
    assert result["details"]["bytes_read"] == 256 * 1024 * 1024


def test_a_name_that_does_not_resolve_is_exit_1() -> None:
    proc = probe("tcp://nothing-here.invalid:80", "--count", "1", "--format", "json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert (result["samples"], result["address"], result["ok"]) == (0, None, False)
    assert "could not resolve 'nothing-here.invalid'" in proc.stderr


def test_text_details_show_records_one_per_line() -> None:
    result = ProbeResult(
        kind="http", target="http://h/", address="192.0.2.1", ok=True, samples=1,
        succeeded=1, loss=0.0,
        details={
            "status": 200,
            "sans": ["a.example", "b.example"],
            "redirects": [
                {"status": 302, "location": "/r1", "ms": 1.5},
                {"status": 301, "location": "https://h/", "ms": 0.5},
            ],
        },
    )  # fmt: skip
    text = render_summary(result)
    assert "  sans: a.example, b.example\n" in text
    assert "  redirects:\n    1. status=302 location=/r1 ms=1.5\n" in text
    assert "    2. status=301 location=https://h/ ms=0.5\n" in text
    assert "{" not in text  # no Python reprs
