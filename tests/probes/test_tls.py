"""tls:// probe and the shared TLS helpers, against real TLS servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from probes import tls, tlsinfo
from probes.base import ProbeConfig, ProbeError
from probes.runner import run_probe
from tests.probes.servers_http import (
    Certificates,
    Server,
    probe_now,
    running,
    start_http,
    start_raw,
)


def tls_url(server: Server, host: str = "localhost") -> str:
    return f"tls://{host}:{server.port}"


def test_trusted_certificate_facts(certs: Certificates, trust_ca: Path) -> None:
    # Valid for 10 days and 6 hours from now: 10 whole days to expiry.
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=6)
    with running(start_http(certs.trusted(not_after=not_after))) as server:
        sample = probe_now(tls, tls_url(server))

    assert sample.ok, sample.error
    facts = sample.details
    assert facts["verified"] is True and facts["verify_error"] is None
    assert facts["version"] in ("TLSv1.2", "TLSv1.3")
    assert facts["cipher"]
    assert "CN=localhost" in facts["subject"]
    assert "trustme" in facts["issuer"]
    assert set(facts["sans"]) == {"localhost", "127.0.0.1"}
    assert facts["days_to_expiry"] == 10
    assert facts["not_after"].startswith(not_after.strftime("%Y-%m-%dT%H:%M"))
    connect, handshake = sample.phases_ms["connect"], sample.phases_ms["tls"]
    assert connect is not None and handshake is not None and handshake > 0
    assert sample.latency_ms == pytest.approx(connect + handshake, abs=0.01)
    # SNI carries the URL's host although the connection went to 127.0.0.1.
    assert server.sni == ["localhost"]


def test_without_the_ca_the_chain_does_not_verify(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tlsinfo.ENV_CA_FILE, raising=False)
    with running(start_http(certs.trusted())) as server:
        sample = probe_now(tls, tls_url(server))

    assert not sample.ok
    assert sample.details["verify_error"] == "unable to get local issuer certificate"
    assert "CN=localhost" in sample.details["subject"]


def test_expired_certificate_fails_with_its_facts_and_passes_insecure(
    certs: Certificates, trust_ca: Path
) -> None:
    with running(start_http(certs.expired())) as server:
        strict = probe_now(tls, tls_url(server))
        loose = probe_now(tls, tls_url(server), ProbeConfig(insecure=True))

    assert not strict.ok
    assert strict.error == "certificate verify failed: certificate has expired"
    # The facts are still reported: they are what this probe is for.
    assert strict.details["verified"] is False
    assert strict.details["days_to_expiry"] == -2
    assert strict.details["sans"] == ["localhost", "127.0.0.1"]

    assert loose.ok
    assert loose.details["verified"] is False
    assert loose.details["verify_error"] == "certificate has expired"
    assert loose.phases_ms["tls"] is not None


def test_self_signed_certificate(certs: Certificates, trust_ca: Path) -> None:
    with running(start_http(certs.self_signed())) as server:
        sample = probe_now(tls, tls_url(server))

    assert not sample.ok
    assert sample.details["verify_error"] == "self-signed certificate"
    assert sample.details["subject"] == sample.details["issuer"] == "CN=self-signed.localhost"


def test_host_name_is_checked_against_the_url_host_not_the_address(
    certs: Certificates, trust_ca: Path
) -> None:
    with running(start_http(certs.trusted())) as server:
        sample = probe_now(tls, tls_url(server, "wrong.localhost"))

    assert not sample.ok
    assert "Hostname mismatch" in sample.details["verify_error"]
    assert "wrong.localhost" in sample.details["verify_error"]
    assert server.sni[-1] == "wrong.localhost"


def test_plain_tcp_peer_is_a_clean_tls_error() -> None:
    with running(start_raw("banner")) as server, pytest.raises(ProbeError) as caught:
        probe_now(tls, tls_url(server))
    assert "TLS handshake failed: WRONG_VERSION_NUMBER" in str(caught.value)

    with running(start_raw("close")) as server, pytest.raises(ProbeError) as caught:
        probe_now(tls, tls_url(server))
    assert str(caught.value) == "TLS handshake failed: the peer closed the connection"


def test_run_probe_tls(certs: Certificates, trust_ca: Path, allow_loopback: str) -> None:
    with running(start_http(certs.trusted())) as server:
        result = asyncio.run(
            run_probe(
                tls_url(server),
                ProbeConfig(count=3, interval_ms=10, timeout_s=2),
                allowed_networks=allow_loopback,
            )
        )

    assert result.ok and result.kind == "tls" and result.succeeded == 3
    assert result.phases_ms["tls"] is not None and result.phases_ms["ttfb"] is None
    assert result.details["verified"] is True


# --- Helpers ------------------------------------------------------------------------


def _certificate(not_before: dt.datetime, not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "facts.example")])
    sans = x509.SubjectAlternativeName(
        [x509.DNSName("facts.example"), x509.DNSName("www.facts.example")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0xABC)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(sans, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (dt.datetime(2030, 1, 1, tzinfo=dt.UTC), 30),
        (dt.datetime(2030, 1, 30, 23, 0, tzinfo=dt.UTC), 0),  # last day
        (dt.datetime(2030, 1, 31, 6, 0, tzinfo=dt.UTC), -1),  # first day after expiry
        (dt.datetime(2030, 2, 1, 12, 0, tzinfo=dt.UTC), -2),  # a day and a half after
    ],
)
def test_certificate_facts_days_to_expiry(now: dt.datetime, days: int) -> None:
    der = _certificate(
        dt.datetime(2029, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 1, 31, tzinfo=dt.UTC)
    )
    facts = tlsinfo.certificate_facts(der, now=now)

    assert facts["days_to_expiry"] == days
    assert facts["sans"] == ["facts.example", "www.facts.example"]
    assert facts["serial"] == "abc"
    assert facts["not_after"] == "2030-01-31T00:00:00+00:00"


def test_contexts_are_built_once_and_keyed_on_the_ca_file(
    trust_ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tlsinfo.client_context(verify=True)
    assert tlsinfo.client_context(verify=True) is first
    assert tlsinfo.client_context(verify=False) is not first
    monkeypatch.delenv(tlsinfo.ENV_CA_FILE)
    assert tlsinfo.client_context(verify=True) is not first


def test_an_unreadable_ca_file_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tlsinfo.ENV_CA_FILE, str(tmp_path / "missing.pem"))
    with pytest.raises(ProbeError, match="PROBE_CA_FILE="):
        tlsinfo.client_context(verify=True)


def test_silent_server_times_out_within_timeout_plus_ten_percent(allow_loopback: str) -> None:
    timeout = 0.5
    with running(start_raw("silent")) as server:

        async def go() -> tuple[float, bool, str | None]:
            started = time.monotonic()
            result = await run_probe(
                tls_url(server),
                ProbeConfig(count=1, timeout_s=timeout),
                allowed_networks=allow_loopback,
            )
            return time.monotonic() - started, result.ok, result.error

        elapsed, ok, error = asyncio.run(go())
    assert not ok
    assert "timed out" in (error or "")
    assert elapsed <= timeout * 1.1
