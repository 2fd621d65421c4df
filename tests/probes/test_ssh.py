"""ssh:// against a real asyncssh server on 127.0.0.1 (tests/probes/servers_ssh.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from probes import ssh
from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.runner import run_probe_sync
from tests.probes.conftest import wait_until
from tests.probes.servers_ssh import (
    SSHServerInfo,
    closed_port,
    fd_count,
    ftp_server,
    host_key,
    http_listener,
    make_target,
    silent_listener,
    ssh_server,
)

ROOT = Path(__file__).resolve().parents[2]


def probe_now(target: Target, config: ProbeConfig | None = None, timeout: float = 5.0) -> Sample:
    return asyncio.run(ssh.probe(target, config or ProbeConfig(), time.monotonic() + timeout))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServerInfo]:
    with ssh_server(host_key(), tmp_path_factory.mktemp("ssh-root")) as info:
        yield info


def test_reports_banner_algorithms_and_fingerprint_without_logging_in(
    server: SSHServerInfo,
) -> None:
    before = (server.counters.connections, server.counters.auth_requests)
    sample = probe_now(make_target("ssh", server.port))

    assert sample.ok
    details = sample.details
    assert details["banner"] == f"SSH-2.0-AsyncSSH_{asyncssh.__version__}"
    assert details["host_key_type"] == "ssh-ed25519"
    assert details["host_key_fingerprint"] == server.host_key.get_fingerprint("sha256")
    assert details["kex_algorithm"] in details["server_kex_algorithms"]
    assert details["host_key_algorithm"] == "ssh-ed25519"
    # The server saw a connection, but not a single authentication request.
    wait_until(lambda: server.counters.connections == before[0] + 1, what="the connection")
    assert server.counters.auth_requests == before[1]
    phases = sample.phases_ms
    assert phases["tls"] is None and phases["transfer"] is None
    assert phases["connect"] is not None and phases["ttfb"] is not None
    assert details["kex_ms"] is not None and sample.latency_ms is not None
    parts = phases["connect"] + phases["ttfb"] + details["kex_ms"]
    assert parts == pytest.approx(sample.latency_ms, abs=0.01)


@pytest.mark.skipif(shutil.which("ssh-keyscan") is None, reason="OpenSSH client tools missing")
def test_fingerprint_matches_openssh_tools(server: SSHServerInfo, tmp_path: Path) -> None:
    """ssh-keyscan fetches the key with OpenSSH's own client; ssh-keygen fingerprints it."""
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(server.port), "-t", "ed25519", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    keys = tmp_path / "keys"
    keys.write_text(scanned)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(keys)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    openssh_fingerprint = listed.split()[1]
    sample = probe_now(make_target("ssh", server.port))
    assert sample.details["host_key_fingerprint"] == openssh_fingerprint


def test_negotiated_algorithms_are_what_the_server_allowed(tmp_path: Path) -> None:
    key = host_key("ecdsa-sha2-nistp256")
    with ssh_server(key, tmp_path, kex_algs=("ecdh-sha2-nistp256",)) as info:
        sample = probe_now(make_target("ssh", info.port))
    assert sample.details["kex_algorithm"] == "ecdh-sha2-nistp256"
    assert sample.details["server_kex_algorithms"] == ["ecdh-sha2-nistp256"]
    assert sample.details["host_key_algorithm"] == "ecdsa-sha2-nistp256"
    assert sample.details["host_key_fingerprint"] == key.get_fingerprint("sha256")


def _kexinit(*lists: str) -> bytes:
    payload = bytes([ssh.SSH_MSG_KEXINIT]) + bytes(16)
    for names in lists:
        payload += struct.pack(">I", len(names)) + names.encode()
    return payload + b"\x00" + bytes(4)


def test_kexinit_parsing_and_the_rfc_negotiation_rule() -> None:
    lists = ["a,b", "k1,k2", "c1", "c2", "m1", "m2", "none", "none", "", ""]
    parsed = ssh.parse_kexinit(_kexinit(*lists))
    assert parsed.kex == ["a", "b"] and parsed.host_key == ["k1", "k2"]
    assert parsed.encryption_sc == ["c2"] and parsed.compression_cs == ["none"]
    # The client's order decides; the extension pseudo-algorithms never count.
    assert ssh.negotiate(["ext-info-c", "b", "a"], ["a", "b", "ext-info-c"]) == "b"
    assert ssh.negotiate(["x"], ["y"]) is None
    with pytest.raises(ValueError):
        ssh.parse_kexinit(_kexinit("a,b", "k1"))  # eight lists missing
    with pytest.raises(ValueError):
        ssh.parse_kexinit(b"\x15" + bytes(40))  # not message 20


def test_the_tap_reads_a_session_start_split_into_single_bytes() -> None:
    payload = _kexinit("curve25519-sha256,ext-info-s", "ssh-ed25519", *["x"] * 8)
    padding = 4
    packet = struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(padding)
    wire = b"a pre-banner line\r\nSSH-2.0-Test_1.0\r\n" + packet + b"encrypted stuff"
    side = ssh._Direction()
    for index in range(len(wire)):
        side.feed(wire[index : index + 1])
    assert side.first_line == "a pre-banner line"
    assert side.ident == "SSH-2.0-Test_1.0"
    assert side.kexinit is not None and side.kexinit.kex == ["curve25519-sha256", "ext-info-s"]
    assert side.done and not side.buffer


def test_an_http_server_is_not_mistaken_for_ssh() -> None:
    with (
        http_listener() as port,
        pytest.raises(ProbeError, match=r"no SSH identification.*'HTTP/1\.1 400 Bad Request'"),
    ):
        probe_now(make_target("ssh", port))


def test_an_ftp_server_is_not_mistaken_for_ssh(tmp_path: Path) -> None:
    with ftp_server(tmp_path) as ftp:
        started = time.monotonic()
        with pytest.raises(ProbeError, match=r"no SSH identification.*'220 switchboard test ftpd"):
            probe_now(make_target("ssh", ftp.port), timeout=1.0)
        assert time.monotonic() - started <= 1.1


def test_a_closed_port_is_refused() -> None:
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        probe_now(make_target("ssh", port))


def test_a_silent_server_times_out_within_timeout_plus_ten_percent(allow_loopback: str) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    with silent_listener() as port:
        started = time.monotonic()
        result = run_probe_sync(
            f"ssh://127.0.0.1:{port}",
            ProbeConfig(count=1, timeout_s=timeout),
            allowed_networks=allow_loopback,
        )
        elapsed = time.monotonic() - started
    assert not result.ok
    assert result.error is not None and "timed out" in result.error
    assert elapsed <= timeout * 1.1


def test_through_the_runner_every_sample_is_a_new_connection(
    allow_loopback: str, server: SSHServerInfo
) -> None:
    before = server.counters.connections
    result = run_probe_sync(
        f"ssh://127.0.0.1:{server.port}",
        ProbeConfig(count=3, interval_ms=10, timeout_s=5),
        allowed_networks=allow_loopback,
    )
    assert result.ok and result.succeeded == 3 and result.kind == "ssh"
    assert result.details["host_key_fingerprint"] == server.host_key.get_fingerprint("sha256")
    assert result.phases_ms["connect"] is not None and result.phases_ms["tls"] is None
    wait_until(lambda: server.counters.connections == before + 3, what="three connections")


def test_the_probe_command_prints_the_json_object(server: SSHServerInfo) -> None:
    env = dict(os.environ, PROBE_ALLOWED_NETWORKS="127.0.0.0/8")
    url = f"ssh://127.0.0.1:{server.port}"
    completed = subprocess.run(
        [sys.executable, "manage.py", "probe", url, "--count", "2", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert (result["kind"], result["succeeded"]) == ("ssh", 2)
    assert result["details"]["host_key_fingerprint"] == server.host_key.get_fingerprint()
    assert result["phases_ms"]["tls"] is None and result["phases_ms"]["connect"] is not None
    # asyncssh's per-connection INFO lines are kept out of the command's output.
    assert "Connected to SSH server" not in completed.stderr


def test_no_descriptors_leak_over_many_samples(allow_loopback: str, server: SSHServerInfo) -> None:
    url = f"ssh://127.0.0.1:{server.port}"
    run_probe_sync(
        url, ProbeConfig(count=2, interval_ms=10), allowed_networks=allow_loopback
    )  # warm imports and executors
    baseline = fd_count()
    result = run_probe_sync(
        url, ProbeConfig(count=60, interval_ms=10), allowed_networks=allow_loopback
    )
    assert result.succeeded == 60
    wait_until(lambda: fd_count() <= baseline, what="descriptors back to the baseline")
