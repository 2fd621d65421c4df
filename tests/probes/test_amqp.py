"""The amqp/amqps probe against this machine's real RabbitMQ (behind real TLS for amqps)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiormq
import aiormq.exceptions
import pytest

from probes import amqp
from probes.base import ProbeConfig, ProbeError
from probes.guard import resolve_target
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener
from tests.probes.servers_misc import (
    Front,
    elapsed_error,
    manage_probe,
    take,
    take_many,
    tls_front,
    trusted_ca,
)

pytestmark = pytest.mark.usefixtures("allow_loopback")


def queue_exists(port: int, name: str) -> bool:
    """Ask RabbitMQ on a connection of its own (a passive declare fails for a missing queue)."""

    async def check() -> bool:
        connection = await aiormq.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        try:
            channel = await connection.channel()
            try:
                await channel.queue_declare(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
            return True
        finally:
            await connection.close()

    return asyncio.run(check())


def test_publish_consume_round_trip_and_broker_facts(rabbitmq_port: int) -> None:
    sample = take(amqp.probe, f"amqp://127.0.0.1:{rabbitmq_port}")
    assert sample.ok
    assert sample.latency_ms is not None and 0 < sample.latency_ms < 5000
    details = sample.details
    assert details["product"] == "RabbitMQ"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", str(details["version"]))
    assert details["vhost"] == "/"
    assert details["channel_open_ms"] > 0 and details["confirm_ms"] > 0
    connect = sample.phases_ms["connect"]
    assert connect == pytest.approx(details["tcp_connect_ms"] + details["handshake_ms"])
    assert sample.phases_ms["tls"] is None
    # The temporary queue was server-named and went away with the connection.
    queue = str(details["queue"])
    assert queue.startswith("amq.gen-")
    assert not queue_exists(rabbitmq_port, queue)


def test_explicit_credentials_and_the_encoded_default_vhost(rabbitmq_port: int) -> None:
    sample = take(amqp.probe, f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/%2F")
    assert sample.ok and sample.details["vhost"] == "/"


def test_a_vhost_that_does_not_exist_is_named_in_the_error(rabbitmq_port: int) -> None:
    vhost = f"no-such-vhost-{time.time_ns()}"
    with pytest.raises(ProbeError, match=f"broker closed the connection: NOT_ALLOWED .*{vhost}"):
        take(amqp.probe, f"amqp://127.0.0.1:{rabbitmq_port}/{vhost}")


def test_a_wrong_password_is_an_authentication_failure(rabbitmq_port: int) -> None:
    secret = "not-the-guest-password"
    with pytest.raises(ProbeError, match="authentication failed: ACCESS_REFUSED") as failure:
        take(amqp.probe, f"amqp://guest:{secret}@127.0.0.1:{rabbitmq_port}/")
    assert secret not in str(failure.value)


def test_the_nats_port_is_not_amqp_and_its_greeting_is_shown(nats_port: int) -> None:
    with pytest.raises(ProbeError, match=r"not an AMQP broker: it answered 'INFO \{"):
        take(amqp.probe, f"amqp://127.0.0.1:{nats_port}")


def test_the_mqtt_port_is_not_amqp(mosquitto_port: int) -> None:
    # Mosquitto drops a client whose first packet is not CONNECT.
    with pytest.raises(ProbeError, match="without an AMQP answer: not an AMQP broker"):
        take(amqp.probe, f"amqp://127.0.0.1:{mosquitto_port}")


def test_the_redis_port_ends_as_a_timeout(redis_port: int) -> None:
    # Redis waits for the line end of what it takes for an inline command.
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(amqp.probe, f"amqp://127.0.0.1:{redis_port}", timeout)
    assert isinstance(error, TimeoutError)
    assert elapsed <= timeout * 1.1


def test_a_closed_port_is_refused(closed_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        take(amqp.probe, f"amqp://127.0.0.1:{closed_tcp_port}")


def test_a_silent_listener_times_out_within_the_timeout(silent_tcp: TCPListener) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(amqp.probe, f"amqp://127.0.0.1:{silent_tcp.port}", timeout)
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1


def test_no_file_descriptors_leak_over_100_samples(rabbitmq_port: int) -> None:
    samples, leaked = take_many(amqp.probe, f"amqp://127.0.0.1:{rabbitmq_port}", 100)
    assert all(s.ok for s in samples)
    assert leaked == set()


def test_no_tasks_outlive_a_sample_that_failed_or_succeeded(
    rabbitmq_port: int, silent_tcp: TCPListener
) -> None:
    config = ProbeConfig(timeout_s=0.3)

    async def leftovers() -> set[asyncio.Task[object]]:
        good = await resolve_target(
            f"amqp://127.0.0.1:{rabbitmq_port}", allowed_networks=LOOPBACK_NETWORKS
        )
        silent = await resolve_target(
            f"amqp://127.0.0.1:{silent_tcp.port}", allowed_networks=LOOPBACK_NETWORKS
        )
        wrong = await resolve_target(
            f"amqp://guest:nope@127.0.0.1:{rabbitmq_port}", allowed_networks=LOOPBACK_NETWORKS
        )
        assert (await amqp.probe(good, config, time.monotonic() + 5)).ok
        for target in (silent, wrong):
            with pytest.raises((TimeoutError, ProbeError)):
                await amqp.probe(target, config, time.monotonic() + 0.3)
        # aiormq ends its reader and writer tasks on close; give them the turns they need.
        current = asyncio.current_task()
        end = time.monotonic() + 2
        while time.monotonic() < end:
            others = {t for t in asyncio.all_tasks() if t is not current}
            if not others:
                break
            await asyncio.sleep(0.005)
        return {t for t in asyncio.all_tasks() if t is not current}

    assert asyncio.run(leftovers()) == set()


def test_amqps_through_tls_names_the_host_and_verifies(
    rabbitmq_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca, tls_front(ca, rabbitmq_port) as front:
        sample = take(amqp.probe, f"amqps://localhost:{front.port}")
        assert sample.ok and sample.details["product"] == "RabbitMQ"
        tls_ms = sample.phases_ms["tls"]
        assert tls_ms is not None and tls_ms > 0
        assert sample.details["tls"]["verified"] is True
        assert str(sample.details["tls"]["version"]).startswith("TLSv1.")
        assert front.sni == ["localhost"]


def test_amqps_refuses_a_certificate_for_another_name(
    rabbitmq_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        trusted_ca(tmp_path, monkeypatch) as ca,
        tls_front(ca, rabbitmq_port, names=("other.example",)) as front,
        pytest.raises(ProbeError, match="certificate verify failed: Hostname mismatch"),
    ):
        take(amqp.probe, f"amqps://localhost:{front.port}")


def test_through_the_runner_and_never_the_password(rabbitmq_port: int) -> None:
    result = run_probe_sync(
        f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/",
        ProbeConfig(count=3, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert result.ok and (result.kind, result.samples, result.succeeded) == ("amqp", 3, 3)
    assert result.latency_ms is not None and result.latency_ms.min > 0
    assert result.phases_ms["connect"] is not None
    assert result.details["product"] == "RabbitMQ"
    secret = "wrong-secret-value"
    failed = run_probe_sync(
        f"amqp://guest:{secret}@127.0.0.1:{rabbitmq_port}/",
        ProbeConfig(count=2, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert not failed.ok and failed.error is not None
    assert failed.error.startswith("authentication failed")
    assert secret not in json.dumps(failed.model_dump())


def test_cli_json_answered_is_exit_0(rabbitmq_port: int) -> None:
    proc = manage_probe(
        f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/", "--count", "2", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["kind"], result["ok"], result["succeeded"]) == ("amqp", True, 2)
    # The target is echoed with the password masked.
    assert result["target"] == f"amqp://guest:****@127.0.0.1:{rabbitmq_port}/"
    assert result["details"]["product"] == "RabbitMQ"
    assert result["phases_ms"]["connect"] > 0


def test_cli_wrong_password_is_exit_1_and_never_printed(rabbitmq_port: int) -> None:
    secret = "cli-wrong-secret"
    proc = manage_probe(f"amqp://guest:{secret}@127.0.0.1:{rabbitmq_port}/", "--count", "1")
    assert proc.returncode == 1
    assert "authentication failed: ACCESS_REFUSED" in proc.stderr
    assert secret not in proc.stdout + proc.stderr


def test_a_broker_that_goes_silent_after_the_publish_times_out_and_cleans_up(
    rabbitmq_port: int,
) -> None:
    timeout = 1.0
    # Basic.Publish is class 60, method 40 in the method frame's payload.
    with Front(upstream_port=rabbitmq_port, freeze_on=b"\x00\x3c\x00\x28") as front:

        async def stalled() -> tuple[BaseException, float, set[asyncio.Task[object]]]:
            target = await resolve_target(
                f"amqp://127.0.0.1:{front.port}", allowed_networks=LOOPBACK_NETWORKS
            )
            started = time.monotonic()
            with pytest.raises(TimeoutError) as failure:
                await amqp.probe(target, ProbeConfig(timeout_s=timeout), started + timeout)
            elapsed = time.monotonic() - started
            # aiormq's own tasks end once the aborted connection is seen closed.
            current = asyncio.current_task()
            end = time.monotonic() + 2
            while {t for t in asyncio.all_tasks() if t is not current} and time.monotonic() < end:
                await asyncio.sleep(0.005)
            return failure.value, elapsed, {t for t in asyncio.all_tasks() if t is not current}

        error, elapsed, leftovers = asyncio.run(stalled())
        assert front.frozen
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1
    assert leftovers == set()
