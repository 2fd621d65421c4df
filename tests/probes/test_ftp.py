"""ftp:// against real pyftpdlib servers (plain and explicit FTPS) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from probes import ftp
from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.runner import run_probe_sync
from probes.tlsinfo import ENV_CA_FILE, CertificateVerifyError
from tests.probes.conftest import wait_until
from tests.probes.servers_ssh import (
    FTP_PASSWORD,
    FTP_USER,
    FTPServerInfo,
    closed_port,
    fd_count,
    ftp_server,
    greeting_listener,
    host_key,
    http_listener,
    make_target,
    silent_listener,
    ssh_server,
)

PUB_FILES = ("a.txt", "b.txt", "c.txt")


def probe_now(target: Target, config: ProbeConfig | None = None, timeout: float = 5.0) -> Sample:
    return asyncio.run(ftp.probe(target, config or ProbeConfig(), time.monotonic() + timeout))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ftp-root")
    (root / "pub").mkdir()
    for name in PUB_FILES:
        (root / "pub" / name).write_text(name)
    (root / "readme.txt").write_text("hello")
    many = root / "many"
    many.mkdir()
    for index in range(1500):  # an MLSD listing well over the 64 KiB read cap
        (many / f"file-with-a-longish-name-{index:05d}.dat").touch()
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[FTPServerInfo]:
    with ftp_server(root) as info:
        yield info


@dataclass
class TLSServer:
    info: FTPServerInfo
    ca_file: Path


@pytest.fixture(scope="module")
def ftps(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("ftps-certs")
    server_pem = folder / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with ftp_server(root, certfile=server_pem) as info:
        yield TLSServer(info, ca_file)


def test_anonymous_login_and_listing(server: FTPServerInfo) -> None:
    sample = probe_now(make_target("ftp", server.port))
    assert sample.ok
    details = sample.details
    assert details["banner"] == "switchboard test ftpd ready"
    assert details["system"] == "UNIX Type: L8"
    assert details["user"] == "anonymous"
    assert details["list_command"] == "MLSD"
    assert details["entries"] == 3  # pub, many, readme.txt
    assert details["tls_used"] is False and details["auth_tls_offered"] is False
    assert "pasv_address_ignored" not in details
    phases = sample.phases_ms
    assert phases["tls"] is None
    assert all(phases[name] is not None for name in ("connect", "ttfb", "transfer"))


def test_user_login_lists_the_path(server: FTPServerInfo) -> None:
    target = make_target("ftp", server.port, path="/pub", username=FTP_USER, password=FTP_PASSWORD)
    sample = probe_now(target)
    assert sample.details["entries"] == len(PUB_FILES)
    assert sample.details["user"] == "(from URL)"
    assert sample.details["login_ms"] > 0 and sample.details["list_ms"] > 0


def test_a_listing_is_cut_at_the_read_cap(server: FTPServerInfo) -> None:
    sample = probe_now(make_target("ftp", server.port, path="/many"))
    assert sample.details["truncated"] is True
    assert 0 < sample.details["entries"] < 1500


def test_pasv_address_in_the_reply_is_ignored(root: Path) -> None:
    # No EPSV, and PASV advertises 127.0.0.2 where nothing listens: only a
    # client that connects to the checked address (127.0.0.1) can list.
    with ftp_server(root, epsv=False, masquerade_address="127.0.0.2") as info:
        sample = probe_now(make_target("ftp", info.port, path="/pub"))
    assert sample.details["entries"] == len(PUB_FILES)
    assert sample.details["pasv_address_ignored"] == "127.0.0.2"


def test_a_wrong_password_is_authentication_failed(server: FTPServerInfo) -> None:
    target = make_target("ftp", server.port, username=FTP_USER, password="bad-pw-123")
    with pytest.raises(ProbeError, match=r"^authentication failed$"):
        probe_now(target)


def test_a_missing_directory_fails_with_the_server_reply(server: FTPServerInfo) -> None:
    with pytest.raises(ProbeError, match="MLSD refused: 5"):
        probe_now(make_target("ftp", server.port, path="/nope"))


def test_a_line_break_in_the_path_is_refused_before_connecting() -> None:
    # A closed port: if the probe connected, the error would be "refused".
    with closed_port() as port, pytest.raises(ProbeError, match="line break"):
        probe_now(make_target("ftp", port, path="/pub%0D%0ADELE%20readme.txt"))


def test_ftps_verifies_the_certificate(ftps: TLSServer, monkeypatch: pytest.MonkeyPatch) -> None:
    target = make_target("ftp", ftps.info.port, path="/pub", query="tls=1")
    with pytest.raises(CertificateVerifyError, match="certificate verify failed"):
        probe_now(target)

    monkeypatch.setenv(ENV_CA_FILE, str(ftps.ca_file))
    sample = probe_now(target)
    details = sample.details
    assert details["tls_used"] is True and details["tls_verified"] is True
    assert details["tls"]["version"] in {"TLSv1.2", "TLSv1.3"}
    assert "127.0.0.1" in details["tls"]["sans"]
    assert details["entries"] == len(PUB_FILES)  # the listing came over PROT P
    assert sample.phases_ms["tls"] is not None


def test_ftps_insecure_reports_the_failed_check(ftps: TLSServer) -> None:
    target = make_target("ftp", ftps.info.port, path="/pub", query="tls=1")
    sample = probe_now(target, ProbeConfig(insecure=True))
    assert sample.ok and sample.details["tls_verified"] is False
    assert "issuer" in sample.details["tls_verify_error"]
    assert sample.details["entries"] == len(PUB_FILES)


def test_plain_ftp_reports_that_tls_is_offered(ftps: TLSServer) -> None:
    sample = probe_now(make_target("ftp", ftps.info.port))
    assert sample.details["tls_used"] is False and sample.details["auth_tls_offered"] is True


def test_tls_required_but_not_offered_and_a_bad_tls_value(server: FTPServerInfo) -> None:
    with pytest.raises(ProbeError, match="refused AUTH TLS"):
        probe_now(make_target("ftp", server.port, query="tls=1"))
    with pytest.raises(ProbeError, match="use tls=1"):
        probe_now(make_target("ftp", server.port, query="tls=maybe"))


def test_wrong_protocols_are_named(tmp_path: Path) -> None:
    with (
        ssh_server(host_key(), tmp_path) as ssh,
        pytest.raises(ProbeError, match=r"not an FTP server; it said 'SSH-2\.0-AsyncSSH"),
    ):
        probe_now(make_target("ftp", ssh.port))
    with (
        http_listener() as port,
        pytest.raises(ProbeError, match=r"not an FTP server; it said 'HTTP/1\.1 400 Bad Request'"),
    ):
        probe_now(make_target("ftp", port))


def test_an_endless_reply_line_is_cut_off() -> None:
    with greeting_listener(b"220-" + b"x" * 200_000) as port:
        started = time.monotonic()
        with pytest.raises(ProbeError, match="overlong line"):
            probe_now(make_target("ftp", port), timeout=2.0)
        assert time.monotonic() - started < 2.0  # refused on size, not by the timeout


def test_closed_port_and_silent_server(allow_loopback: str) -> None:
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        probe_now(make_target("ftp", port))
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    with silent_listener() as port:
        started = time.monotonic()
        result = run_probe_sync(
            f"ftp://127.0.0.1:{port}/",
            ProbeConfig(count=1, timeout_s=timeout),
            allowed_networks=allow_loopback,
        )
        elapsed = time.monotonic() - started
    assert not result.ok and result.error is not None and "timed out" in result.error
    assert elapsed <= timeout * 1.1


def test_through_the_runner_no_password_in_output(
    allow_loopback: str, server: FTPServerInfo
) -> None:
    url = f"ftp://{FTP_USER}:{FTP_PASSWORD}@127.0.0.1:{server.port}/pub"
    result = run_probe_sync(
        url, ProbeConfig(count=3, interval_ms=10), allowed_networks=allow_loopback
    )
    assert result.ok and result.succeeded == 3 and result.kind == "ftp"
    assert result.details["entries"] == len(PUB_FILES)
    assert FTP_PASSWORD not in result.model_dump_json()
    failed = run_probe_sync(
        url.replace(FTP_PASSWORD, "Wr0ng-Pa55"),
        ProbeConfig(count=1),
        allowed_networks=allow_loopback,
    )
    assert failed.error == "authentication failed"
    assert "Wr0ng-Pa55" not in failed.model_dump_json()


def test_no_descriptors_leak_over_many_samples(
    allow_loopback: str, ftps: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_CA_FILE, str(ftps.ca_file))
    url = f"ftp://127.0.0.1:{ftps.info.port}/pub?tls=1"
    run_probe_sync(url, ProbeConfig(count=2, interval_ms=10), allowed_networks=allow_loopback)
    baseline = fd_count()
    result = run_probe_sync(
        url, ProbeConfig(count=40, interval_ms=10), allowed_networks=allow_loopback
    )
    assert result.succeeded == 40
    wait_until(lambda: fd_count() <= baseline, what="descriptors back to the baseline")
