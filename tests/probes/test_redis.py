"""The redis/rediss probe against this machine's real Redis (behind real TLS for rediss)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes import redis
from probes.base import ProbeConfig, ProbeError
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener, open_fds, wait_until
from tests.probes.servers_misc import (
    BannerServer,
    Front,
    elapsed_error,
    manage_probe,
    redis_with_password,
    take,
    take_many,
    tls_front,
    trusted_ca,
)

pytestmark = pytest.mark.usefixtures("allow_loopback")


def redis_info(port: int, section: str) -> dict[str, str]:
    """INFO read independently of the probe, with redis-py's sync client."""
    import redis as redis_py

    client = redis_py.Redis(host="127.0.0.1", port=port)
    try:
        return {k: str(v) for k, v in client.info(section).items()}
    finally:
        client.close()


def test_ping_round_trip_and_server_facts(redis_port: int) -> None:
    sample = take(redis.probe, f"redis://127.0.0.1:{redis_port}")
    assert sample.ok
    assert sample.latency_ms is not None and 0 < sample.latency_ms < 5000
    connect = sample.phases_ms["connect"]
    assert connect is not None and connect > 0
    assert sample.phases_ms["tls"] is None
    server = redis_info(redis_port, "server")
    assert sample.details["redis_version"] == server["redis_version"]
    assert sample.details["redis_mode"] == server["redis_mode"]
    assert sample.details["role"] == redis_info(redis_port, "replication")["role"]
    assert "auth_ms" not in sample.details and "db" not in sample.details


def test_the_path_selects_a_database(redis_port: int) -> None:
    sample = take(redis.probe, f"redis://127.0.0.1:{redis_port}/3")
    assert sample.ok and sample.details["db"] == 3
    assert sample.details["select_ms"] > 0


def test_a_database_the_server_does_not_have_is_reported(redis_port: int) -> None:
    with pytest.raises(ProbeError, match=r"SELECT 9999 failed: .*out of range"):
        take(redis.probe, f"redis://127.0.0.1:{redis_port}/9999")


def test_a_path_that_is_not_a_database_number_is_refused_before_connecting() -> None:
    # Port 9 (discard) is never contacted: the path is checked first.
    with pytest.raises(ProbeError, match="'/abc' is not a Redis database number"):
        take(redis.probe, "redis://127.0.0.1:9/abc")


def test_a_password_for_a_server_without_one_is_an_auth_failure(redis_port: int) -> None:
    # This Redis has no password; AUTH fails with the server's own reason.
    secret = "hunter2-not-echoed"
    with pytest.raises(ProbeError) as failure:
        take(redis.probe, f"redis://:{secret}@127.0.0.1:{redis_port}")
    message = str(failure.value)
    assert message.startswith("authentication failed: ")
    assert "without any password configured" in message or "no password is set" in message
    assert secret not in message


def test_an_acl_user_that_does_not_exist_is_refused(redis_port: int) -> None:
    secret = "s3cret-value"
    with pytest.raises(ProbeError, match="authentication failed: WRONGPASS") as failure:
        take(redis.probe, f"redis://nobody-{time.time_ns()}:{secret}@127.0.0.1:{redis_port}")
    assert secret not in str(failure.value)


def test_a_server_with_a_password() -> None:
    with redis_with_password("right-password") as server:
        sample = take(redis.probe, f"redis://:right-password@127.0.0.1:{server.port}/1")
        assert sample.ok and sample.details["auth_ms"] > 0 and sample.details["db"] == 1
        with pytest.raises(ProbeError, match=r"authentication required: .*NOAUTH"):
            take(redis.probe, f"redis://127.0.0.1:{server.port}")
        # SELECT before AUTH is refused the same way.
        with pytest.raises(ProbeError, match=r"authentication required: .*NOAUTH"):
            take(redis.probe, f"redis://127.0.0.1:{server.port}/2")
        secret = "wrong-password-not-echoed"
        with pytest.raises(ProbeError, match="authentication failed: WRONGPASS") as failure:
            take(redis.probe, f"redis://:{secret}@127.0.0.1:{server.port}")
        assert secret not in str(failure.value)


@pytest.fixture
def acl_user(redis_port: int) -> Iterator[tuple[str, str]]:
    """A throwaway ACL user on the real Redis (unique name), removed afterwards."""
    import redis as redis_py

    name, password = f"switchboard-test-{uuid.uuid4().hex}", uuid.uuid4().hex
    client = redis_py.Redis(host="127.0.0.1", port=redis_port)
    try:
        client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], commands=["+ping"])
        yield name, password
    finally:
        client.acl_deluser(name)
        client.close()


def test_an_acl_user_logs_in_and_a_wrong_password_is_refused(
    redis_port: int, acl_user: tuple[str, str]
) -> None:
    name, password = acl_user
    sample = take(redis.probe, f"redis://{name}:{password}@127.0.0.1:{redis_port}")
    assert sample.ok and sample.details["auth_ms"] > 0
    # This user may only PING: INFO is refused, and the probe still answers.
    assert "NOPERM" in str(sample.details["info_error"])
    assert "redis_version" not in sample.details
    wrong = "wrong-" + password
    with pytest.raises(ProbeError, match="authentication failed: WRONGPASS") as failure:
        take(redis.probe, f"redis://{name}:{wrong}@127.0.0.1:{redis_port}")
    assert wrong not in str(failure.value) and password not in str(failure.value)


def test_the_amqp_port_is_not_redis(rabbitmq_port: int) -> None:
    with pytest.raises(ProbeError, match="not a Redis server"):
        take(redis.probe, f"redis://127.0.0.1:{rabbitmq_port}")


def test_the_nats_port_is_not_redis_and_its_greeting_is_shown(nats_port: int) -> None:
    with pytest.raises(ProbeError, match=r"not a Redis server: it answered 'INFO \{"):
        take(redis.probe, f"redis://127.0.0.1:{nats_port}")


def test_a_closed_port_is_refused(closed_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        take(redis.probe, f"redis://127.0.0.1:{closed_tcp_port}")


def test_a_silent_listener_times_out_within_the_timeout(silent_tcp: TCPListener) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(redis.probe, f"redis://127.0.0.1:{silent_tcp.port}", timeout)
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1


def test_no_file_descriptors_leak_over_100_samples(redis_port: int) -> None:
    samples, leaked = take_many(redis.probe, f"redis://127.0.0.1:{redis_port}", 100)
    assert all(s.ok for s in samples)
    assert leaked == set()


def test_rediss_verifies_the_certificate_against_the_url_host(
    redis_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca, tls_front(ca, redis_port) as front:
        sample = take(redis.probe, f"rediss://localhost:{front.port}")
        assert sample.ok
        assert sample.details["redis_version"] == redis_info(redis_port, "server")["redis_version"]
        tls_ms = sample.phases_ms["tls"]
        assert tls_ms is not None and tls_ms > 0
        assert str(sample.details["tls"]["version"]).startswith("TLSv1.")
        assert sample.details["tls"]["verified"] is True
        # The probe connected to the resolved address but named the host.
        assert front.sni == ["localhost"]


def test_rediss_refuses_a_certificate_for_another_name(
    redis_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        trusted_ca(tmp_path, monkeypatch) as ca,
        tls_front(ca, redis_port, names=("other.example",)) as front,
        pytest.raises(ProbeError, match="certificate verify failed: Hostname mismatch"),
    ):
        take(redis.probe, f"rediss://localhost:{front.port}")


def test_rediss_refuses_an_untrusted_certificate_unless_insecure(
    redis_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca:
        front = tls_front(ca, redis_port)
    # Outside the block the throwaway CA is no longer trusted.
    with front:
        with pytest.raises(ProbeError, match="certificate verify failed"):
            take(redis.probe, f"rediss://localhost:{front.port}")
        sample = take(redis.probe, f"rediss://localhost:{front.port}", insecure=True)
        assert sample.ok and sample.details["tls"]["verified"] is False
        assert "issuer" in sample.details["tls"]["verify_error"]
        assert sample.details["tls"]["sans"] == ["localhost"]


def test_through_the_runner_the_result_has_the_contract_shape(redis_port: int) -> None:
    result = run_probe_sync(
        f"redis://127.0.0.1:{redis_port}/2",
        ProbeConfig(count=5, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert result.ok and (result.kind, result.samples, result.succeeded) == ("redis", 5, 5)
    assert result.loss == 0.0 and result.address == "127.0.0.1"
    assert result.latency_ms is not None and 0 < result.latency_ms.p50 <= result.latency_ms.max
    assert result.phases_ms["connect"] is not None and result.phases_ms["tls"] is None
    assert result.details["db"] == 2 and "redis_version" in result.details


def test_through_the_runner_a_password_is_never_in_the_result(redis_port: int) -> None:
    secret = "do-not-print-me"
    result = run_probe_sync(
        f"redis://:{secret}@127.0.0.1:{redis_port}",
        ProbeConfig(count=2, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert not result.ok and result.loss == 1.0
    assert result.error is not None and result.error.startswith("authentication failed")
    assert secret not in json.dumps(result.model_dump())


def test_an_ipv6_loopback_target_works_when_redis_listens_there(redis_port: int) -> None:
    try:
        with socket.create_connection(("::1", redis_port), timeout=1):
            pass
    except OSError:
        pytest.skip("Redis does not listen on ::1 here")
    assert take(redis.probe, f"redis://[::1]:{redis_port}").ok


def test_cli_json_answered_is_exit_0(redis_port: int) -> None:
    proc = manage_probe(
        f"redis://127.0.0.1:{redis_port}/1", "--count", "3", "--interval", "10", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["kind"], result["ok"], result["samples"], result["succeeded"]) == (
        "redis",
        True,
        3,
        3,
    )
    assert set(result["latency_ms"]) == {"min", "p50", "p95", "p99", "max", "mean", "stdev"}
    assert list(result["phases_ms"]) == ["dns", "connect", "tls", "ttfb", "transfer"]
    assert result["phases_ms"]["connect"] > 0 and result["phases_ms"]["tls"] is None
    assert result["details"]["db"] == 1
    assert result["details"]["redis_version"] == redis_info(redis_port, "server")["redis_version"]


def test_cli_auth_failure_is_exit_1_and_hides_the_password(redis_port: int) -> None:
    secret = "cli-secret-123"
    proc = manage_probe(f"redis://:{secret}@127.0.0.1:{redis_port}", "--count", "1")
    assert proc.returncode == 1
    assert "authentication failed" in proc.stderr
    assert secret not in proc.stdout + proc.stderr


def test_cli_loopback_without_permission_is_exit_2(redis_port: int) -> None:
    proc = manage_probe(f"redis://127.0.0.1:{redis_port}", "--count", "1", allowed="")
    assert proc.returncode == 2
    assert proc.stdout == ""


def test_an_endless_reply_line_is_not_read_forever() -> None:
    # More than the stream's 1 MiB line limit, and no CR LF anywhere.
    with (
        BannerServer(b"+" + b"x" * (2 * 1024 * 1024)) as flood,
        pytest.raises(ProbeError, match="not a Redis server: a reply line without an end"),
    ):
        take(redis.probe, f"redis://127.0.0.1:{flood.port}")


def test_a_server_that_goes_silent_before_pong_times_out_and_leaks_nothing(
    redis_port: int,
) -> None:
    timeout = 1.0
    with Front(upstream_port=redis_port, freeze_on=b"PING") as front:
        before = set(open_fds())
        error, elapsed = elapsed_error(redis.probe, f"redis://127.0.0.1:{front.port}", timeout)
        assert front.frozen
        # The front (in this process) closes its side once it sees the probe's abort.
        wait_until(lambda: set(open_fds()) <= before, what="the sample's sockets to close")
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1
