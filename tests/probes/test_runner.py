"""The runner against real local peers: schedule, deadlines, errors, leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from pydantic import SecretStr, ValidationError

from probes.base import ProbeConfig, ProbeError, ProbeResult, Sample, Target
from probes.guard import GuardError, resolve_target
from probes.registry import REGISTRY, probe_function
from probes.runner import (
    probe_budget_s,
    run_many,
    run_many_sync,
    run_probe,
    run_probe_sync,
    scrub,
    summarize,
    take_sample,
)
from tests.probes.conftest import TCPListener, UDPEchoServer, open_fds, wait_until


def test_a_closed_port_fails_fast_as_refused(allow_loopback: str, closed_tcp_port: int) -> None:
    started = time.monotonic()
    result = run_probe_sync(
        f"tcp://127.0.0.1:{closed_tcp_port}",
        ProbeConfig(count=3, interval_ms=10, timeout_s=5),
        allowed_networks=allow_loopback,
    )
    assert not result.ok
    assert (result.samples, result.succeeded, result.loss) == (3, 0, 1.0)
    assert result.error == "connection refused"
    assert result.latency_ms is None and result.jitter_ms is None
    # Refusal is immediate; it must not wait for the 5 s timeout.
    assert time.monotonic() - started < 5


def test_a_silent_udp_target_times_out_within_timeout_plus_ten_percent(
    allow_loopback: str, silent_udp: int
) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    started = time.monotonic()
    result = run_probe_sync(
        f"udp://127.0.0.1:{silent_udp}",
        ProbeConfig(count=1, timeout_s=timeout),
        allowed_networks=allow_loopback,
    )
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.error is not None and "timed out" in result.error
    assert timeout * 0.95 <= elapsed <= timeout * 1.1


def test_samples_follow_the_interval_and_stats_are_filled(
    allow_loopback: str, tcp_listener: TCPListener
) -> None:
    config = ProbeConfig(count=5, interval_ms=50, timeout_s=2)
    seen: list[tuple[int, float]] = []
    result = run_probe_sync(
        f"tcp://127.0.0.1:{tcp_listener.port}",
        config,
        on_sample=lambda i, s: seen.append((i, time.monotonic())),
        allowed_networks=allow_loopback,
    )
    assert result.ok and (result.samples, result.succeeded, result.loss) == (5, 5, 0.0)
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    # Four gaps of one interval each: the schedule runs on slots, so the spread
    # is at least 4 intervals (generous upper bound for a loaded machine).
    assert 0.2 <= seen[-1][1] - seen[0][1] < 2.0
    stats = result.latency_ms
    assert stats is not None
    assert 0 < stats.min <= stats.p50 <= stats.p95 <= stats.p99 <= stats.max
    assert result.phases_ms["connect"] == stats.p50  # connect is the latency for tcp
    assert result.phases_ms["dns"] is None  # a literal address needs no lookup
    assert result.jitter_ms is not None and result.jitter_ms >= 0
    assert result.kind == "tcp" and result.address == "127.0.0.1"
    # A new connection for every sample (the listener thread may lag a little).
    wait_until(lambda: tcp_listener.accepted == 5, what="five accepted connections")


def test_a_name_reports_its_single_dns_lookup(
    allow_loopback: str, tcp_listener: TCPListener
) -> None:
    result = run_probe_sync(
        f"tcp://localhost:{tcp_listener.port}",
        ProbeConfig(count=2, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert result.ok
    assert result.phases_ms["dns"] is not None and result.phases_ms["dns"] >= 0


def test_no_file_descriptors_leak_over_1000_samples(
    allow_loopback: str, tcp_listener: TCPListener, closed_tcp_port: int
) -> None:
    config = ProbeConfig(count=1000, interval_ms=10, timeout_s=2)
    before = open_fds()
    result = run_probe_sync(
        f"tcp://127.0.0.1:{tcp_listener.port}", config, allowed_networks=allow_loopback
    )
    assert result.succeeded == 1000
    failed = run_probe_sync(
        f"tcp://127.0.0.1:{closed_tcp_port}",
        ProbeConfig(count=100, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert failed.succeeded == 0
    # The listener thread may still be closing the last accepted connection.
    wait_until(lambda: open_fds().keys() <= before.keys(), what="fds back to the start")


def test_no_file_descriptors_leak_when_samples_time_out(
    allow_loopback: str, silent_udp: int
) -> None:
    before = open_fds()
    result = run_probe_sync(
        f"udp://127.0.0.1:{silent_udp}",
        ProbeConfig(count=20, interval_ms=10, timeout_s=0.05),
        allowed_networks=allow_loopback,
    )
    assert result.loss == 1.0
    assert set(open_fds().items()) <= set(before.items())


@pytest.mark.parametrize(
    ("field", "value"),
    [("count", 0), ("count", 1001), ("interval_ms", 9.9), ("timeout_s", 0), ("timeout_s", 30.5)],
)
def test_config_bounds(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        ProbeConfig(**{field: value})


def test_config_accepts_the_bounds_themselves() -> None:
    config = ProbeConfig(count=1000, interval_ms=10, timeout_s=30)
    assert probe_budget_s(config) == pytest.approx(1000 * (0.01 + 30))


def test_a_refused_target_raises_before_sampling(default_policy: str) -> None:
    with pytest.raises(GuardError):
        run_probe_sync("tcp://127.0.0.1:9", ProbeConfig(count=1), allowed_networks=default_policy)


def test_an_unresolvable_name_is_a_failed_result(default_policy: str) -> None:
    result = run_probe_sync(
        "tcp://nothing-here.invalid:80",
        ProbeConfig(count=2, timeout_s=2),
        allowed_networks=default_policy,
    )
    assert not result.ok and result.samples == 0 and result.loss == 1.0
    assert result.error is not None and "resolve" in result.error


# --- take_sample and summarize with probe functions of our own ----------------------

TARGET = Target(
    url="tcp://u:****@h:1",
    scheme="tcp",
    host="h",
    port=1,
    address="192.0.2.1",
    username="u",
    password=SecretStr("hunter2"),
)


def test_errors_never_carry_the_password() -> None:
    async def leaky(target: Target, config: ProbeConfig, deadline: float) -> Sample:
        raise ProbeError("login failed for u:hunter2")

    sample = asyncio.run(take_sample(leaky, TARGET, ProbeConfig(), time.monotonic() + 1))
    assert not sample.ok and sample.error == "login failed for u:****"


def test_details_never_carry_the_password() -> None:
    async def echoes(target: Target, config: ProbeConfig, deadline: float) -> Sample:
        # A server text quoting what it was sent, nested as protocols report it.
        return Sample(details={"banner": "hi u:hunter2", "hops": [{"said": "hunter2!"}], "n": 2})

    sample = asyncio.run(take_sample(echoes, TARGET, ProbeConfig(), time.monotonic() + 1))
    assert sample.details == {"banner": "hi u:****", "hops": [{"said": "****!"}], "n": 2}


def test_a_short_password_withholds_the_message_instead_of_mangling_it() -> None:
    # Replacing "p" everywhere would turn "path" into "****ath" and show the password.
    target = TARGET.model_copy(update={"password": SecretStr("p")})

    async def fails(target: Target, config: ProbeConfig, deadline: float) -> Sample:
        raise ProbeError("the URL path '/x' is not a database number")

    sample = asyncio.run(take_sample(fails, target, ProbeConfig(), time.monotonic() + 1))
    assert sample.error is not None and "****" not in sample.error
    assert "withheld" in sample.error and "'/x'" not in sample.error
    assert scrub("connection refused", target) == "connection refused"


def test_a_nats_token_in_the_user_slot_is_a_secret_too() -> None:
    update = {"scheme": "nats", "username": "s3cr3tt0ken", "password": None}
    token = TARGET.model_copy(update=update)
    assert token.secrets() == ["s3cr3tt0ken"]
    assert scrub("auth with s3cr3tt0ken failed", token) == "auth with **** failed"
    user_only = token.model_copy(update={"scheme": "redis"})  # a plain user name elsewhere
    assert user_only.secrets() == []


def test_a_probe_bug_becomes_a_failed_sample_logged_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def buggy(target: Target, config: ProbeConfig, deadline: float) -> Sample:
        raise KeyError(f"no session for {target.password.get_secret_value()}")  # type: ignore[union-attr]

    with caplog.at_level(logging.ERROR, logger="probes.runner"):
        sample = asyncio.run(take_sample(buggy, TARGET, ProbeConfig(), time.monotonic() + 1))
    assert not sample.ok and sample.error == "KeyError: 'no session for ****'"
    assert "raised unexpectedly" in caplog.text and "Traceback" in caplog.text
    assert "hunter2" not in caplog.text


def test_a_timeout_shorter_than_the_loop_can_act_is_a_timeout_not_a_used_up_budget(
    allow_loopback: str, tcp_listener: TCPListener
) -> None:
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    result = run_probe_sync(
        url, ProbeConfig(count=2, interval_ms=10, timeout_s=1e-9), allowed_networks=allow_loopback
    )
    assert not result.ok and result.error == "timed out after 1e-09 s"


def test_a_hanging_probe_is_cut_at_its_deadline() -> None:
    async def hangs(target: Target, config: ProbeConfig, deadline: float) -> Sample:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def go() -> tuple[Sample, float]:
        # The deadline is set inside the loop: starting a loop on a loaded
        # machine can take long enough to shorten a deadline set before it.
        started = time.monotonic()
        sample = await take_sample(hangs, TARGET, ProbeConfig(timeout_s=1.0), started + 1.0)
        return sample, time.monotonic() - started

    sample, elapsed = asyncio.run(go())
    assert not sample.ok and sample.error == "timed out after 1 s"
    assert elapsed <= 1.1


def test_summarize_by_hand() -> None:
    samples = [
        Sample(latency_ms=1.0, phases_ms={"connect": 1.0}, details={"v": 1}),
        Sample(ok=False, error="connection reset by peer"),
        Sample(latency_ms=3.0, phases_ms={"connect": 3.0, "tls": 2.0}, details={"v": 2}),
        Sample(
            latency_ms=2.0,
            phases_ms={"connect": 2.0, "tls": 1.0},
            transfer_bytes=1000,
            transfer_s=0.5,
        ),
    ]
    target = TARGET.model_copy(update={"dns_ms": 4.25})
    result = summarize(target, ProbeConfig(throughput=True), samples)
    assert (result.samples, result.succeeded, result.loss, result.ok) == (4, 3, 0.25, True)
    assert result.latency_ms is not None
    assert (result.latency_ms.min, result.latency_ms.p50, result.latency_ms.max) == (1, 2, 3)
    assert result.jitter_ms == 1.5  # |3-1| and |2-3|, mean 1.5
    assert result.phases_ms == {
        "dns": 4.25,
        "connect": 2.0,
        "tls": 1.5,
        "ttfb": None,
        "transfer": None,
    }
    assert result.throughput_bps == 16000.0
    assert result.details == {"v": 2, "sample_errors": {"connection reset by peer": 1}}
    assert result.error is None
    assert summarize(target, ProbeConfig(), samples).throughput_bps is None


def test_times_in_details_are_rounded_to_the_microsecond_like_the_rest() -> None:
    sample = Sample(
        latency_ms=1.0,
        details={"kex_ms": 0.6467491, "tls": {"handshake_ms": 2.0004999}, "count": 0.1234567},
    )
    result = summarize(TARGET, ProbeConfig(), [sample])
    assert result.details == {"kex_ms": 0.647, "tls": {"handshake_ms": 2.0}, "count": 0.1234567}


def test_phases_ms_has_exactly_the_contract_keys_and_extra_phases_go_to_details() -> None:
    samples = [
        Sample(latency_ms=1.0, phases_ms={"connect": 1.0, "upgrade": 2.0, "echo": 0.5}),
        Sample(latency_ms=1.0, phases_ms={"connect": 3.0, "upgrade": 4.0, "echo": None}),
    ]
    result = summarize(TARGET, ProbeConfig(), samples)
    assert list(result.phases_ms) == ["dns", "connect", "tls", "ttfb", "transfer"]
    assert result.phases_ms["connect"] == 2.0
    assert result.details == {"upgrade_ms": 3.0, "echo_ms": 0.5}


def test_summarize_reports_the_most_common_error_when_nothing_answered() -> None:
    samples = [
        Sample(ok=False, error="a"),
        Sample(ok=False, error="b"),
        Sample(ok=False, error="b"),
        Sample(ok=False, error="a"),
    ]
    result = summarize(TARGET, ProbeConfig(), samples)
    assert not result.ok and result.loss == 1.0
    assert result.error == "a"  # tie: the last one seen


def test_run_many_probes_concurrently_and_keeps_order(allow_loopback: str) -> None:
    listeners = [TCPListener().start() for _ in range(20)]
    try:
        urls = [f"tcp://127.0.0.1:{lst.port}" for lst in listeners]
        urls.insert(3, "tcp://169.254.169.254:80")
        results = asyncio.run(
            run_many(urls, ProbeConfig(count=3, interval_ms=10), allowed_networks=allow_loopback)
        )
    finally:
        for lst in listeners:
            lst.close()
    assert len(results) == 21
    assert results[3].details == {"refused": True} and "metadata" in (results[3].error or "")
    others = results[:3] + results[4:]
    assert all(r.ok and r.succeeded == 3 for r in others)
    assert [r.target for r in others] == [f"tcp://127.0.0.1:{lst.port}" for lst in listeners]


class DelayedEcho(UDPEchoServer):
    """An echo that takes 60 ms to answer each datagram."""

    def on_readable(self) -> None:
        data, peer = self.sock.recvfrom(65535)
        time.sleep(0.06)  # the server's own pace; the test waits on nothing fixed
        self.sock.sendto(data, peer)


def test_the_schedule_is_kept_on_the_clock_not_slept_after_each_sample(
    allow_loopback: str,
) -> None:
    # Samples of 60 ms, one every 100 ms: on the clock, 5 samples end within
    # 4 x 100 ms of each other; sleeping 100 ms after each would take 4 x 160.
    ended: list[float] = []
    with DelayedEcho().start() as server:
        result = run_probe_sync(
            f"udp://127.0.0.1:{server.port}",
            ProbeConfig(count=5, interval_ms=100, timeout_s=2),
            on_sample=lambda i, s: ended.append(time.monotonic()),
            allowed_networks=allow_loopback,
        )
    assert result.succeeded == 5
    assert result.latency_ms is not None and result.latency_ms.min >= 60
    assert ended[-1] - ended[0] < 0.56


def test_the_whole_probe_is_bounded_by_count_times_interval_plus_timeout(
    allow_loopback: str, silent_udp: int
) -> None:
    config = ProbeConfig(count=4, interval_ms=10, timeout_s=0.5)

    async def timed() -> tuple[float, ProbeResult]:
        started = time.monotonic()
        result = await run_probe(
            f"udp://127.0.0.1:{silent_udp}", config, allowed_networks=allow_loopback
        )
        return time.monotonic() - started, result

    elapsed, result = asyncio.run(timed())
    assert result.samples == 4 and result.loss == 1.0
    assert elapsed <= probe_budget_s(config) * 1.1


def test_every_scheme_ends_a_silent_target_as_a_timeout_within_timeout_plus_ten_percent(
    allow_loopback: str,
) -> None:
    # A listener that accepts and then says nothing, for every scheme at once
    # (one event loop, so the run takes one timeout, not one per scheme).
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    schemes = [scheme for scheme in REGISTRY if scheme != "udp"]  # udp: see above
    for scheme in schemes:
        probe_function(scheme)  # imported here: an import is no part of a sample

    async def go() -> dict[str, tuple[Sample, float]]:
        held: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def one(scheme: str) -> tuple[Sample, float]:
            # A plain tcp probe only connects; with --throughput it waits for data.
            config = ProbeConfig(timeout_s=timeout, throughput=scheme == "tcp")
            target = await resolve_target(
                f"{scheme}://user:pw@127.0.0.1:{port}/", allowed_networks=allow_loopback
            )
            started = time.monotonic()
            sample = await take_sample(probe_function(scheme), target, config, started + timeout)
            return sample, time.monotonic() - started

        try:
            results = await asyncio.gather(*(one(scheme) for scheme in schemes))
        finally:
            for writer in held:
                writer.close()
            server.close()
        return dict(zip(schemes, results, strict=True))

    for scheme, (sample, elapsed) in asyncio.run(go()).items():
        assert not sample.ok, scheme
        assert sample.error is not None and "timed out" in sample.error, (scheme, sample.error)
        assert sample.failure == "timeout", (scheme, sample.failure)
        assert elapsed <= timeout * 1.1, (scheme, elapsed)


def test_every_scheme_reports_a_closed_port_in_the_contract_shape(
    allow_loopback: str, closed_tcp_port: int
) -> None:
    urls = [f"{scheme}://user:pw@127.0.0.1:{closed_tcp_port}/" for scheme in REGISTRY]
    results = run_many_sync(
        urls, ProbeConfig(count=2, interval_ms=10, timeout_s=5), allowed_networks=allow_loopback
    )
    for scheme, result in zip(REGISTRY, results, strict=True):
        shape = result.model_dump(mode="json")
        assert list(shape) == [
            "kind", "target", "address", "ok", "samples", "succeeded", "loss", "latency_ms",
            "jitter_ms", "phases_ms", "throughput_bps", "details", "error", "failure",
        ]  # fmt: skip
        assert list(shape["phases_ms"]) == ["dns", "connect", "tls", "ttfb", "transfer"]
        assert shape["kind"] == scheme and shape["address"] == "127.0.0.1"
        assert (shape["ok"], shape["samples"], shape["succeeded"], shape["loss"]) == (
            False, 2, 0, 1.0,
        )  # fmt: skip
        assert shape["latency_ms"] is None and shape["jitter_ms"] is None
        expected = "port unreachable" if scheme == "udp" else "connection refused"
        assert shape["error"] is not None and expected in shape["error"], (scheme, shape)
        assert shape["failure"] == "refused", (scheme, shape)
        assert "pw" not in json.dumps(shape), scheme
