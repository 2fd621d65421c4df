"""The nats probe against this machine's real NATS and nats-servers the tests start."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import nats as nats_py
import pytest
import trustme
from nats.aio.msg import Msg

from probes import nats
from probes.base import ProbeConfig, ProbeError
from probes.guard import resolve_target
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener
from tests.probes.servers_misc import (
    BannerServer,
    Front,
    NatsServer,
    elapsed_error,
    manage_probe,
    take,
    take_many,
    trusted_ca,
)

pytestmark = pytest.mark.usefixtures("allow_loopback")


def server_info(port: int) -> dict[str, object]:
    """The INFO line a NATS server greets with, read with a plain socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            assert chunk, "the server closed before its INFO"
            data += chunk
    assert data.startswith(b"INFO ")
    info: dict[str, object] = json.loads(data[5:])
    return info


def test_request_reply_round_trip_and_server_facts(nats_port: int) -> None:
    sample = take(nats.probe, f"nats://127.0.0.1:{nats_port}")
    assert sample.ok
    assert sample.latency_ms is not None and 0 < sample.latency_ms < 5000
    info = server_info(nats_port)
    details = sample.details
    assert details["server_id"] == info["server_id"]
    assert details["version"] == info["version"]
    assert details["jetstream"] is bool(info.get("jetstream", False))
    assert details["max_payload"] == info["max_payload"]
    connect = sample.phases_ms["connect"]
    assert connect == pytest.approx(details["tcp_connect_ms"] + details["handshake_ms"])
    assert sample.phases_ms["tls"] is None


def test_every_sample_uses_its_own_subject(nats_port: int) -> None:
    async def watch() -> list[str]:
        seen: list[str] = []
        watcher = await nats_py.connect(f"nats://127.0.0.1:{nats_port}")
        try:

            async def record(message: Msg) -> None:
                seen.append(message.subject)

            await watcher.subscribe(nats.SUBJECT_PREFIX + ">", cb=record)
            await watcher.flush()
            target = await resolve_target(
                f"nats://127.0.0.1:{nats_port}", allowed_networks=LOOPBACK_NETWORKS
            )
            for _ in range(3):
                assert (await nats.probe(target, ProbeConfig(), time.monotonic() + 5)).ok
            end = time.monotonic() + 5
            while len(set(seen)) < 3 and time.monotonic() < end:
                await watcher.flush()
            return seen
        finally:
            await watcher.close()

    seen = asyncio.run(watch())
    # Other tests may probe in parallel: at least our three, all distinct.
    assert len(set(seen)) >= 3 and len(set(seen)) == len(seen)


def test_user_and_password(tmp_path: Path) -> None:
    with NatsServer(tmp_path, "--user", "probe", "--pass", "right-one") as server:
        sample = take(nats.probe, f"nats://probe:right-one@127.0.0.1:{server.port}")
        assert sample.ok
        assert sample.details["jetstream"] is False  # started without -js
        secret = "wrong-one-not-echoed"
        with pytest.raises(ProbeError, match="authentication failed: Authorization Violation") as e:
            take(nats.probe, f"nats://probe:{secret}@127.0.0.1:{server.port}")
        assert secret not in str(e.value)
        with pytest.raises(ProbeError, match="authentication failed"):
            take(nats.probe, f"nats://127.0.0.1:{server.port}")


def test_a_token_is_the_user_name_alone(tmp_path: Path) -> None:
    with NatsServer(tmp_path, "--auth", "t0ken") as server:
        assert take(nats.probe, f"nats://t0ken@127.0.0.1:{server.port}").ok
        with pytest.raises(ProbeError, match="authentication failed"):
            take(nats.probe, f"nats://other@127.0.0.1:{server.port}")


def test_a_server_that_requires_tls_gets_a_verified_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca:
        cert = tmp_path / "cert.pem"
        key = tmp_path / "key.pem"
        issued: trustme.LeafCert = ca.issue_cert("localhost")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        with NatsServer(tmp_path, "--tls", "--tlscert", str(cert), "--tlskey", str(key)) as server:
            sample = take(nats.probe, f"nats://localhost:{server.port}")
            assert sample.ok and sample.details["tls_required"] is True
            tls_ms = sample.phases_ms["tls"]
            assert tls_ms is not None and tls_ms > 0
            assert sample.details["tls"]["verified"] is True
            # By address the certificate (for "localhost" only) does not match.
            with pytest.raises(ProbeError, match="verify failed: IP address mismatch"):
                take(nats.probe, f"nats://127.0.0.1:{server.port}")


def test_an_untrusted_certificate_needs_insecure_and_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca:
        cert = tmp_path / "cert.pem"
        key = tmp_path / "key.pem"
        issued = ca.issue_cert("localhost")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
    # The CA is not trusted outside the block.
    with NatsServer(tmp_path, "--tls", "--tlscert", str(cert), "--tlskey", str(key)) as server:
        with pytest.raises(ProbeError, match="certificate verify failed"):
            take(nats.probe, f"nats://localhost:{server.port}")
        sample = take(nats.probe, f"nats://localhost:{server.port}", insecure=True)
        assert sample.ok
        tls = sample.details["tls"]
        assert tls["verified"] is False and "issuer" in tls["verify_error"]
        assert sample.phases_ms["tls"] is not None


def test_a_server_of_another_protocol_that_speaks_first(tmp_path: Path) -> None:
    with (
        BannerServer(b"SSH-2.0-OpenSSH_9.6\r\n") as banner,
        pytest.raises(ProbeError, match=r"not a NATS server: it answered 'SSH-2\.0-OpenSSH_9\.6'"),
    ):
        take(nats.probe, f"nats://127.0.0.1:{banner.port}")


def test_the_amqp_port_ends_as_a_timeout(rabbitmq_port: int) -> None:
    # NATS servers speak first; RabbitMQ waits for the client: a silent peer.
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(nats.probe, f"nats://127.0.0.1:{rabbitmq_port}", timeout)
    assert isinstance(error, TimeoutError)
    assert elapsed <= timeout * 1.1


def test_a_closed_port_is_refused(closed_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        take(nats.probe, f"nats://127.0.0.1:{closed_tcp_port}")


def test_a_silent_listener_times_out_within_the_timeout(silent_tcp: TCPListener) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(nats.probe, f"nats://127.0.0.1:{silent_tcp.port}", timeout)
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1


def test_no_file_descriptors_leak_over_100_samples(nats_port: int) -> None:
    samples, leaked = take_many(nats.probe, f"nats://127.0.0.1:{nats_port}", 100)
    assert all(s.ok for s in samples)
    assert leaked == set()


def test_through_the_runner(nats_port: int) -> None:
    result = run_probe_sync(
        f"nats://127.0.0.1:{nats_port}",
        ProbeConfig(count=5, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert result.ok and (result.kind, result.samples, result.succeeded) == ("nats", 5, 5)
    assert result.latency_ms is not None and result.latency_ms.min > 0
    assert result.phases_ms["connect"] is not None and result.phases_ms["tls"] is None
    assert result.details["server_id"] == server_info(nats_port)["server_id"]


def test_cli_json_answered_is_exit_0(nats_port: int) -> None:
    proc = manage_probe(f"nats://127.0.0.1:{nats_port}", "--count", "3", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["kind"], result["ok"], result["succeeded"]) == ("nats", True, 3)
    assert result["details"]["server_id"] == server_info(nats_port)["server_id"]
    assert isinstance(result["details"]["jetstream"], bool)


def test_cli_silent_target_is_exit_1_as_a_timeout(silent_tcp: TCPListener) -> None:
    proc = manage_probe(f"nats://127.0.0.1:{silent_tcp.port}", "--count", "1", "--timeout", "0.5")
    assert proc.returncode == 1
    assert "timed out" in proc.stderr


def test_an_endless_first_line_is_not_read_forever() -> None:
    with (
        BannerServer(b"x" * (256 * 1024)) as flood,
        pytest.raises(ProbeError, match="not a NATS server: a protocol line without an end"),
    ):
        take(nats.probe, f"nats://127.0.0.1:{flood.port}")


def test_a_server_that_goes_silent_after_the_request_times_out(nats_port: int) -> None:
    timeout = 1.0
    with Front(upstream_port=nats_port, freeze_on=b"PUB " + nats.SUBJECT_PREFIX.encode()) as front:
        error, elapsed = elapsed_error(nats.probe, f"nats://127.0.0.1:{front.port}", timeout)
        assert front.frozen
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1
