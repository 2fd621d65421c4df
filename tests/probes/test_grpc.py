"""grpc:// and grpcs:// against real gRPC servers with the standard health service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from grpc_health.v1 import health_pb2

from probes import grpc as grpc_probe
from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.runner import run_probe_sync
from probes.tlsinfo import ENV_CA_FILE
from tests.probes.conftest import wait_until
from tests.probes.servers_ssh import (
    GRPCServerInfo,
    closed_port,
    fd_count,
    ftp_server,
    grpc_server,
    make_target,
    silent_listener,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def probe_now(target: Target, config: ProbeConfig | None = None, timeout: float = 5.0) -> Sample:
    return asyncio.run(
        grpc_probe.probe(target, config or ProbeConfig(), time.monotonic() + timeout)
    )


@pytest.fixture(scope="module")
def server() -> Iterator[GRPCServerInfo]:
    with grpc_server() as info:
        yield info


@dataclass
class TLSServer:
    info: GRPCServerInfo
    ca_file: Path


@pytest.fixture(scope="module")
def grpcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    ca = trustme.CA()
    cert = ca.issue_cert("grpc.test.internal")
    chain = b"".join(pem.bytes() for pem in cert.cert_chain_pems)
    ca_file = tmp_path_factory.mktemp("grpcs") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with grpc_server(tls=(cert.private_key_pem.bytes(), chain)) as info:
        yield TLSServer(info, ca_file)


def test_the_whole_server_and_a_named_service_are_serving(server: GRPCServerInfo) -> None:
    overall = probe_now(make_target("grpc", server.port))
    assert overall.ok and overall.details["status"] == "SERVING"
    assert overall.details["service"] == ""
    named = probe_now(make_target("grpc", server.port, path="/switchboard.Up"))
    assert named.ok and named.details["service"] == "switchboard.Up"
    phases = named.phases_ms
    assert phases["connect"] is not None and phases["ttfb"] is not None
    assert phases["tls"] is None and phases["transfer"] is None
    assert named.latency_ms == pytest.approx(phases["connect"] + phases["ttfb"])


def test_not_serving_fails_the_sample_with_the_status(server: GRPCServerInfo) -> None:
    sample = probe_now(make_target("grpc", server.port, path="/switchboard.Down"))
    assert not sample.ok
    assert sample.error == "health status NOT_SERVING for service 'switchboard.Down'"
    assert sample.details["status"] == "NOT_SERVING"


def test_the_status_is_read_live(server: GRPCServerInfo) -> None:
    assert server.servicer is not None
    target = make_target("grpc", server.port, path="/switchboard.Flip")
    server.servicer.set("switchboard.Flip", SERVING)
    assert probe_now(target).ok
    server.servicer.set("switchboard.Flip", NOT_SERVING)
    assert not probe_now(target).ok


def test_unknown_service_and_no_health_service(server: GRPCServerInfo) -> None:
    with pytest.raises(ProbeError, match=r"unknown service 'no\.such\.Service'"):
        probe_now(make_target("grpc", server.port, path="/no.such.Service"))
    with (
        grpc_server(with_health=False) as bare,
        pytest.raises(ProbeError, match="no health service"),
    ):
        probe_now(make_target("grpc", bare.port))


def test_closed_port_and_wrong_protocol(tmp_path: Path) -> None:
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        probe_now(make_target("grpc", port))
    with ftp_server(tmp_path) as ftp, pytest.raises(ProbeError, match="HTTP/2"):
        probe_now(make_target("grpc", ftp.port))


def test_a_silent_server_times_out_within_timeout_plus_ten_percent(allow_loopback: str) -> None:
    timeout = 2.0  # a margin of 10% must exceed scheduling noise on a busy machine
    with silent_listener() as port:
        started = time.monotonic()
        result = run_probe_sync(
            f"grpc://127.0.0.1:{port}",
            ProbeConfig(count=1, timeout_s=timeout),
            allowed_networks=allow_loopback,
        )
        elapsed = time.monotonic() - started
    assert not result.ok and result.error is not None and "timed out" in result.error
    assert elapsed <= timeout * 1.1


def test_grpcs_verifies_against_the_url_host(
    grpcs: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URL's host names the certificate; the connection goes to 127.0.0.1.
    target = make_target("grpcs", grpcs.info.port, host="grpc.test.internal")
    with pytest.raises(
        ProbeError, match=r"^certificate verify failed: unable to get local issuer certificate$"
    ):
        probe_now(target)
    monkeypatch.setenv(ENV_CA_FILE, str(grpcs.ca_file))
    sample = probe_now(target)
    assert sample.ok and sample.details["tls_verified"] is True
    assert sample.details["connect_includes_tls"] is True
    wrong_name = make_target("grpcs", grpcs.info.port, host="other.test.internal")
    with pytest.raises(ProbeError, match="certificate does not name the URL's host"):
        probe_now(wrong_name)


def test_grpcs_insecure_pins_the_presented_certificate(grpcs: TLSServer) -> None:
    target = make_target("grpcs", grpcs.info.port, host="grpc.test.internal")
    sample = probe_now(target, ProbeConfig(insecure=True))
    assert sample.ok and sample.details["tls_verified"] is False
    assert sample.details["tls_verify_error"] == "unable to get local issuer certificate"
    # Pinning cannot excuse a certificate for another name.
    wrong_name = make_target("grpcs", grpcs.info.port, host="other.test.internal")
    with pytest.raises(ProbeError, match="even with --insecure"):
        probe_now(wrong_name, ProbeConfig(insecure=True))


def test_through_the_runner(allow_loopback: str, server: GRPCServerInfo) -> None:
    url = f"grpc://127.0.0.1:{server.port}/switchboard.Up"
    result = run_probe_sync(
        url, ProbeConfig(count=3, interval_ms=10), allowed_networks=allow_loopback
    )
    assert result.ok and result.succeeded == 3 and result.kind == "grpc"
    assert result.details["status"] == "SERVING"
    down = run_probe_sync(
        url.replace("Up", "Down"),
        ProbeConfig(count=2, interval_ms=10),
        allowed_networks=allow_loopback,
    )
    assert not down.ok and down.loss == 1.0
    assert down.error == "health status NOT_SERVING for service 'switchboard.Down'"


def test_no_descriptors_leak_over_many_samples(allow_loopback: str, server: GRPCServerInfo) -> None:
    url = f"grpc://127.0.0.1:{server.port}"
    run_probe_sync(url, ProbeConfig(count=2, interval_ms=10), allowed_networks=allow_loopback)
    baseline = fd_count()
    result = run_probe_sync(
        url, ProbeConfig(count=60, interval_ms=10), allowed_networks=allow_loopback
    )
    assert result.succeeded == 60
    wait_until(lambda: fd_count() <= baseline, what="descriptors back to the baseline")
