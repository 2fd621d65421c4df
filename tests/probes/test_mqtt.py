"""The mqtt/mqtts probe against this machine's real Mosquitto (behind real TLS for mqtts)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from probes import mqtt
from probes.base import ProbeConfig, ProbeError
from probes.runner import run_probe_sync
from tests.probes.conftest import LOOPBACK_NETWORKS, TCPListener, wait_until
from tests.probes.servers_misc import (
    Front,
    elapsed_error,
    manage_probe,
    mosquitto_with_passwords,
    take,
    take_many,
    tls_front,
    trusted_ca,
)

pytestmark = pytest.mark.usefixtures("allow_loopback")


class Watcher:
    """An independent paho-mqtt client that records what is published under the probe prefix."""

    def __init__(self, port: int) -> None:
        self.topics: list[str] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:16]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(mqtt.TOPIC_PREFIX + "#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.topics.append(message.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def watcher(mosquitto_port: int) -> Iterator[Watcher]:
    watching = Watcher(mosquitto_port)
    wait_until(watching.subscribed.is_set, what="the watcher's SUBACK")
    yield watching
    watching.close()


def test_publish_receive_round_trip(mosquitto_port: int) -> None:
    sample = take(mqtt.probe, f"mqtt://127.0.0.1:{mosquitto_port}")
    assert sample.ok
    assert sample.latency_ms is not None and 0 < sample.latency_ms < 5000
    details = sample.details
    assert details["protocol"] == "MQTT 3.1.1" and details["protocol_level"] == 4
    assert details["connack_code"] == 0 and details["session_present"] is False
    assert details["granted_qos"] == 1
    assert details["puback_ms"] > 0
    connect = sample.phases_ms["connect"]
    assert connect == pytest.approx(details["tcp_connect_ms"] + details["connack_ms"])
    assert sample.phases_ms["tls"] is None


def test_every_sample_publishes_on_its_own_topic(mosquitto_port: int, watcher: Watcher) -> None:
    for _ in range(3):
        assert take(mqtt.probe, f"mqtt://127.0.0.1:{mosquitto_port}").ok
    # Another test may publish under the prefix too; ours are at least three new topics.
    wait_until(lambda: len(set(watcher.topics)) >= 3, what="three probe messages")
    assert len(set(watcher.topics)) == len(watcher.topics)
    assert all(len(t) == len(mqtt.TOPIC_PREFIX) + 32 for t in watcher.topics)


def test_a_broker_with_passwords_accepts_the_right_ones_only() -> None:
    with mosquitto_with_passwords({"alice": "right-password"}) as broker:
        sample = take(mqtt.probe, f"mqtt://alice:right-password@127.0.0.1:{broker.port}")
        assert sample.ok and sample.details["connack_code"] == 0
        secret = "wrong-password-not-echoed"
        with pytest.raises(ProbeError, match="authentication failed") as failure:
            take(mqtt.probe, f"mqtt://alice:{secret}@127.0.0.1:{broker.port}")
        assert secret not in str(failure.value)
        with pytest.raises(ProbeError, match="authentication failed: not authorized"):
            take(mqtt.probe, f"mqtt://127.0.0.1:{broker.port}")


def test_the_nats_port_is_not_mqtt_and_its_greeting_is_shown(nats_port: int) -> None:
    with pytest.raises(ProbeError, match=r"not an MQTT broker: it answered 'INFO \{"):
        take(mqtt.probe, f"mqtt://127.0.0.1:{nats_port}")


def test_the_amqp_port_is_not_mqtt(rabbitmq_port: int) -> None:
    with pytest.raises(ProbeError, match=r"not an MQTT broker: it answered 'AMQP"):
        take(mqtt.probe, f"mqtt://127.0.0.1:{rabbitmq_port}")


def test_the_redis_port_ends_as_a_timeout(redis_port: int) -> None:
    # Redis reads a CONNECT as the start of an inline command and waits for its
    # line end (the CONNECT's zero bytes hide any CR LF), saying nothing: from
    # outside that is a silent server, and it must end at the timeout.
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(mqtt.probe, f"mqtt://127.0.0.1:{redis_port}", timeout)
    assert isinstance(error, TimeoutError)
    assert elapsed <= timeout * 1.1


def test_a_closed_port_is_refused(closed_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        take(mqtt.probe, f"mqtt://127.0.0.1:{closed_tcp_port}")


def test_a_silent_listener_times_out_within_the_timeout(silent_tcp: TCPListener) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    error, elapsed = elapsed_error(mqtt.probe, f"mqtt://127.0.0.1:{silent_tcp.port}", timeout)
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1


def test_no_file_descriptors_leak_over_100_samples(mosquitto_port: int) -> None:
    samples, leaked = take_many(mqtt.probe, f"mqtt://127.0.0.1:{mosquitto_port}", 100)
    assert all(s.ok for s in samples)
    assert leaked == set()


def test_mqtts_through_tls_names_the_host_and_verifies(
    mosquitto_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca, tls_front(ca, mosquitto_port) as front:
        sample = take(mqtt.probe, f"mqtts://localhost:{front.port}")
        assert sample.ok and sample.details["tls"]["verified"] is True
        tls_ms = sample.phases_ms["tls"]
        assert tls_ms is not None and tls_ms > 0
        assert front.sni == ["localhost"]
        # The same server by its address: the certificate names only "localhost".
        with pytest.raises(ProbeError, match="verify failed: IP address mismatch"):
            take(mqtt.probe, f"mqtts://127.0.0.1:{front.port}")


def test_mqtts_with_an_untrusted_certificate_needs_insecure(
    mosquitto_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trusted_ca(tmp_path, monkeypatch) as ca:
        front = tls_front(ca, mosquitto_port)
    with front:
        with pytest.raises(ProbeError, match="certificate verify failed"):
            take(mqtt.probe, f"mqtts://localhost:{front.port}")
        sample = take(mqtt.probe, f"mqtts://localhost:{front.port}", insecure=True)
        assert sample.ok and sample.details["tls"]["verified"] is False


def test_through_the_runner(mosquitto_port: int) -> None:
    result = run_probe_sync(
        f"mqtt://127.0.0.1:{mosquitto_port}",
        ProbeConfig(count=5, interval_ms=10),
        allowed_networks=LOOPBACK_NETWORKS,
    )
    assert result.ok and (result.kind, result.samples, result.succeeded) == ("mqtt", 5, 5)
    assert result.latency_ms is not None and result.latency_ms.min > 0
    assert result.phases_ms["connect"] is not None
    assert result.details["protocol"] == "MQTT 3.1.1"


def test_cli_text_report_is_exit_0(mosquitto_port: int) -> None:
    proc = manage_probe(f"mqtt://127.0.0.1:{mosquitto_port}", "--count", "3", "--interval", "10")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in lines if line.startswith("seq=")] == [
        ["seq=1", "ok"],
        ["seq=2", "ok"],
        ["seq=3", "ok"],
    ]
    assert "3 samples, 3 answered, 0.0% loss" in proc.stdout
    assert "protocol: MQTT 3.1.1" in proc.stdout


def test_cli_json_wrong_protocol_is_exit_1(nats_port: int) -> None:
    proc = manage_probe(f"mqtt://127.0.0.1:{nats_port}", "--count", "2", "--format", "json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert (result["kind"], result["ok"], result["succeeded"], result["loss"]) == (
        "mqtt",
        False,
        0,
        1.0,
    )
    assert result["error"].startswith("not an MQTT broker")
    assert "not an MQTT broker" in proc.stderr


def test_a_broker_that_goes_silent_after_the_publish_times_out(mosquitto_port: int) -> None:
    timeout = 1.0
    # The probe's PUBLISH (QoS 1) starts with 0x32; its topic field with the prefix.
    topic_length = len(mqtt.TOPIC_PREFIX) + 32
    marker = bytes([0x32, 2 + topic_length + 2 + 16, 0, topic_length]) + mqtt.TOPIC_PREFIX.encode()
    with Front(upstream_port=mosquitto_port, freeze_on=marker) as front:
        error, elapsed = elapsed_error(mqtt.probe, f"mqtt://127.0.0.1:{front.port}", timeout)
        assert front.frozen
    assert isinstance(error, TimeoutError)
    assert timeout * 0.95 <= elapsed <= timeout * 1.1
