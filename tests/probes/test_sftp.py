"""sftp:// against a real asyncssh server with SFTP chrooted to a temporary directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from probes import sftp
from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.runner import run_probe_sync
from tests.probes.conftest import wait_until
from tests.probes.servers_ssh import (
    SSH_PASSWORD,
    SSH_USER,
    SSHServerInfo,
    closed_port,
    fd_count,
    ftp_server,
    host_key,
    make_target,
    ssh_server,
)

SIZES = {"small.txt": 10, "medium.bin": 20_000, "large.bin": 300_000}


def probe_now(target: Target, config: ProbeConfig | None = None, timeout: float = 5.0) -> Sample:
    return asyncio.run(sftp.probe(target, config or ProbeConfig(), time.monotonic() + timeout))


def login_target(port: int, path: str = "/", password: str = SSH_PASSWORD) -> Target:
    return make_target("sftp", port, path=path, username=SSH_USER, password=password)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServerInfo]:
    root = tmp_path_factory.mktemp("sftp-root")
    pub = root / "pub"
    pub.mkdir()
    for name, size in SIZES.items():
        (pub / name).write_bytes(os.urandom(size))
    (pub / "subdir").mkdir()
    (root / "empty").mkdir()
    with ssh_server(host_key(), root) as info:
        yield info


def test_logs_in_and_counts_the_directory(server: SSHServerInfo) -> None:
    logins = server.counters.logins
    sample = probe_now(login_target(server.port, "/pub"))
    assert sample.ok
    assert sample.details["kind"] == "directory"
    assert sample.details["entries"] == len(SIZES) + 1  # files and subdir, not . and ..
    assert sample.details["truncated"] is False
    assert sample.details["host_key_fingerprint"] == server.host_key.get_fingerprint("sha256")
    assert sample.phases_ms["transfer"] is None and sample.transfer_bytes == 0
    for name in ("login_ms", "sftp_ms", "list_ms"):
        assert sample.details[name] > 0
    wait_until(lambda: server.counters.logins == logins + 1, what="the login")


def test_an_empty_directory_and_the_login_directory(server: SSHServerInfo) -> None:
    assert probe_now(login_target(server.port, "/empty")).details["entries"] == 0
    # /~ is the login directory (the chroot here), so /~/pub is /pub.
    home = probe_now(login_target(server.port, "/~/pub"))
    assert (home.details["path"], home.details["entries"]) == ("pub", len(SIZES) + 1)


def test_a_file_path_is_stat_ed(server: SSHServerInfo) -> None:
    sample = probe_now(login_target(server.port, "/pub/medium.bin"))
    assert sample.details["kind"] == "file"
    assert sample.details["size"] == SIZES["medium.bin"]


def test_throughput_downloads_the_largest_file(server: SSHServerInfo) -> None:
    sample = probe_now(login_target(server.port, "/pub"), ProbeConfig(throughput=True))
    assert sample.details["download"] == "/pub/large.bin"
    assert sample.transfer_bytes == SIZES["large.bin"]
    assert sample.transfer_s is not None and sample.transfer_s > 0
    assert sample.phases_ms["transfer"] == pytest.approx(sample.transfer_s * 1000)


def test_throughput_on_a_file_path_downloads_that_file(server: SSHServerInfo) -> None:
    sample = probe_now(login_target(server.port, "/pub/small.txt"), ProbeConfig(throughput=True))
    assert (sample.details["download"], sample.transfer_bytes) == ("/pub/small.txt", 10)


def test_a_download_stops_at_the_read_cap(server: SSHServerInfo) -> None:
    async def read_capped() -> tuple[int, int]:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                server.port,
                username=SSH_USER,
                password=SSH_PASSWORD,
                known_hosts=None,
                client_keys=None,
                config=None,
            ) as conn,
            conn.start_sftp_client() as client,
        ):
            return await sftp._download(client, "/pub/large.bin", cap=50_000)

    read, elapsed_ns = asyncio.run(read_capped())
    assert read == 50_000 and elapsed_ns > 0


def test_throughput_with_no_file_to_download_fails_clearly(server: SSHServerInfo) -> None:
    with pytest.raises(ProbeError, match="no regular file to download"):
        probe_now(login_target(server.port, "/empty"), ProbeConfig(throughput=True))


def test_a_wrong_password_is_authentication_failed(server: SSHServerInfo) -> None:
    with pytest.raises(ProbeError, match=r"^authentication failed$"):
        probe_now(login_target(server.port, "/pub", password="not-the-password"))


def test_a_missing_path_and_a_missing_user(server: SSHServerInfo) -> None:
    with pytest.raises(ProbeError, match="no such file or directory: '/nope'"):
        probe_now(login_target(server.port, "/nope"))
    with pytest.raises(ProbeError, match="needs a user name"):
        probe_now(make_target("sftp", server.port))


def test_wrong_protocol_and_closed_port(tmp_path: Path) -> None:
    with ftp_server(tmp_path) as ftp, pytest.raises(ProbeError, match="no SSH identification"):
        probe_now(login_target(ftp.port), timeout=1.0)
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        probe_now(login_target(port))


def test_through_the_runner_with_throughput_and_no_password_in_output(
    allow_loopback: str, server: SSHServerInfo
) -> None:
    url = f"sftp://{SSH_USER}:{SSH_PASSWORD}@127.0.0.1:{server.port}/pub"
    result = run_probe_sync(
        url, ProbeConfig(count=3, interval_ms=10, throughput=True), allowed_networks=allow_loopback
    )
    assert result.ok and result.succeeded == 3
    assert result.throughput_bps is not None and result.throughput_bps > 0
    assert result.details["entries"] == len(SIZES) + 1
    assert SSH_PASSWORD not in result.model_dump_json()

    wrong = url.replace(SSH_PASSWORD, "Wr0ng-Pa55")
    failed = run_probe_sync(wrong, ProbeConfig(count=1), allowed_networks=allow_loopback)
    assert not failed.ok and failed.error == "authentication failed"
    assert "Wr0ng-Pa55" not in failed.model_dump_json()


def test_the_probe_command_never_echoes_the_password(server: SSHServerInfo) -> None:
    env = dict(os.environ, PROBE_ALLOWED_NETWORKS="127.0.0.0/8")
    for password, exit_code in ((SSH_PASSWORD, 0), ("Wr0ng-Pa55", 1)):
        url = f"sftp://{SSH_USER}:{password}@127.0.0.1:{server.port}/pub"
        completed = subprocess.run(
            [sys.executable, "manage.py", "probe", url, "--count", "1", "--throughput"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == exit_code, completed.stderr
        assert password not in completed.stdout + completed.stderr
        assert "sftp://prober:****@" in completed.stdout
    assert "authentication failed" in completed.stderr


def test_no_descriptors_leak_over_many_samples(allow_loopback: str, server: SSHServerInfo) -> None:
    url = f"sftp://{SSH_USER}:{SSH_PASSWORD}@127.0.0.1:{server.port}/pub"
    run_probe_sync(url, ProbeConfig(count=2, interval_ms=10), allowed_networks=allow_loopback)
    baseline = fd_count()
    result = run_probe_sync(
        url, ProbeConfig(count=40, interval_ms=10, throughput=True), allowed_networks=allow_loopback
    )
    assert result.succeeded == 40
    wait_until(lambda: fd_count() <= baseline, what="descriptors back to the baseline")
