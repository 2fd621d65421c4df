"""The instrument's public API for its callers (the ``probe`` command, the runs layer).

- the policy comes from the caller (``allowed_networks=``), never from settings
  or the environment;
- ``on_sample(index, sample)`` runs in the event loop, after each sample;
- every failed result carries a machine-readable ``failure`` in the words of
  ``advisor.evidence.Failure``;
- the instrument imports no Django, Celery or advisor (checked in a fresh
  interpreter, beside import-linter's static contract).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import get_args
from urllib.parse import quote

import pytest
from django.core.management import call_command

from advisor import evidence
from probes import base
from probes.base import FAILURES, ProbeConfig, Sample
from probes.guard import NotAllowedError
from probes.registry import REGISTRY
from probes.runner import run_many_sync, run_probe, run_probe_sync
from tests.probes.conftest import TCPListener
from tests.probes.servers_http import Certificates, Server, running, start_http, start_raw
from tests.probes.servers_misc import BannerServer

ROOT = Path(__file__).resolve().parents[2]
QUICK = ProbeConfig(count=2, interval_ms=10, timeout_s=2)


def test_the_failure_words_are_the_evidence_words() -> None:
    assert get_args(base.Failure) == get_args(evidence.Failure) == FAILURES


def test_an_answered_probe_has_no_failure(allow_loopback: str, tcp_listener: TCPListener) -> None:
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    result = run_probe_sync(url, QUICK, allowed_networks=allow_loopback)
    assert result.ok and result.failure is None
    assert result.model_dump(mode="json")["failure"] is None


def test_refused_timeout_dns_and_not_allowed(
    allow_loopback: str, closed_tcp_port: int, silent_udp: int
) -> None:
    config = ProbeConfig(count=1, timeout_s=0.3)
    results = run_many_sync(
        [
            f"tcp://127.0.0.1:{closed_tcp_port}",
            f"udp://127.0.0.1:{silent_udp}",
            "tcp://no-such-host.invalid:80",
            "http://169.254.169.254/",  # metadata: refused whatever the policy
            "tcp://10.1.2.3:80",  # private, outside the policy
            "nosuch://127.0.0.1/",  # invalid input is not a refusal of the address
        ],
        config,
        allowed_networks=allow_loopback,
    )
    assert [r.failure for r in results] == [
        "refused", "timeout", "dns", "not_allowed", "not_allowed", "other",
    ]  # fmt: skip
    assert all(not r.ok and r.error for r in results)


def test_wrong_protocol_when_something_else_answers(allow_loopback: str) -> None:
    with BannerServer(b"SSH-2.0-OpenSSH_9.6 test\r\n") as banner:
        redis = run_probe_sync(
            f"redis://127.0.0.1:{banner.port}", QUICK, allowed_networks=allow_loopback
        )
    with running(start_raw("close")) as closing:
        http = run_probe_sync(
            f"http://127.0.0.1:{closing.port}/", QUICK, allowed_networks=allow_loopback
        )
    assert (redis.failure, http.failure) == ("wrong_protocol", "wrong_protocol"), (
        redis.error,
        http.error,
    )


def test_tls_when_the_certificate_does_not_verify(allow_loopback: str, certs: Certificates) -> None:
    # No trust_ca fixture: the test CA is unknown, so the chain does not verify.
    with running(start_http(certs.trusted())) as server:
        for scheme in ("tls", "https"):
            result = run_probe_sync(
                f"{scheme}://localhost:{server.port}/", QUICK, allowed_networks=allow_loopback
            )
            assert result.failure == "tls", (scheme, result.error)
            assert result.error is not None and "certificate verify failed" in result.error


def test_a_redirect_the_guard_refuses_is_not_allowed(web: Server, allow_loopback: str) -> None:
    config = ProbeConfig(count=1, timeout_s=2, follow_redirects=True)
    to = quote("http://10.0.0.1/", safe="")
    refused = run_probe_sync(
        f"http://127.0.0.1:{web.port}/redirect-to?to={to}", config, allowed_networks=allow_loopback
    )
    looping = run_probe_sync(
        f"http://127.0.0.1:{web.port}/loop", config, allowed_networks=allow_loopback
    )
    assert (refused.failure, looping.failure) == ("not_allowed", "other")


def test_on_sample_runs_in_the_event_loop_after_each_sample(
    allow_loopback: str, tcp_listener: TCPListener
) -> None:
    calls: list[tuple[int, bool, bool, int]] = []
    loops: list[asyncio.AbstractEventLoop] = []

    def on_sample(index: int, sample: Sample) -> None:
        loop = asyncio.get_running_loop()  # raises outside a running loop
        calls.append((index, sample.ok, loop is loops[0], threading.get_ident()))

    async def go() -> None:
        loops.append(asyncio.get_running_loop())
        await run_probe(
            f"tcp://127.0.0.1:{tcp_listener.port}",
            ProbeConfig(count=3, interval_ms=10),
            allowed_networks=allow_loopback,
            on_sample=on_sample,
        )

    asyncio.run(go())
    me = threading.get_ident()
    assert calls == [(0, True, True, me), (1, True, True, me), (2, True, True, me)]


def test_run_many_reports_samples_with_their_target(
    allow_loopback: str, tcp_listener: TCPListener, closed_tcp_port: int
) -> None:
    seen: list[tuple[int, int, bool]] = []
    urls = [f"tcp://127.0.0.1:{tcp_listener.port}", f"tcp://127.0.0.1:{closed_tcp_port}"]
    run_many_sync(
        urls,
        ProbeConfig(count=2, interval_ms=10),
        allowed_networks=allow_loopback,
        on_sample=lambda target, index, sample: seen.append((target, index, sample.ok)),
    )
    assert sorted(seen) == [(0, 0, True), (0, 1, True), (1, 0, False), (1, 1, False)]


def test_the_policy_is_required_and_only_the_callers(
    monkeypatch: pytest.MonkeyPatch, settings: object, tcp_listener: TCPListener
) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    settings.PROBE_ALLOWED_NETWORKS = "127.0.0.0/8"  # type: ignore[attr-defined]
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    with pytest.raises(TypeError, match="allowed_networks"):
        run_probe_sync(url, QUICK)  # type: ignore[call-arg]
    with pytest.raises(NotAllowedError, match="loopback"):
        run_probe_sync(url, QUICK, allowed_networks=())


# --- The probe command reads the operator's policy and passes it ----------------------


def test_the_command_reads_the_setting_when_the_environment_has_none(
    monkeypatch: pytest.MonkeyPatch, settings: object, tcp_listener: TCPListener
) -> None:
    monkeypatch.delenv("PROBE_ALLOWED_NETWORKS", raising=False)
    url = f"tcp://127.0.0.1:{tcp_listener.port}"
    settings.PROBE_ALLOWED_NETWORKS = "127.0.0.0/8"  # type: ignore[attr-defined]
    call_command("probe", url, "--count", "1", "--format", "json")  # exits 0: no SystemExit
    settings.PROBE_ALLOWED_NETWORKS = ""  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as refused:
        call_command("probe", url, "--count", "1")
    assert refused.value.code == 2


def test_the_environment_wins_over_the_setting_even_empty(
    monkeypatch: pytest.MonkeyPatch, settings: object, tcp_listener: TCPListener
) -> None:
    settings.PROBE_ALLOWED_NETWORKS = "127.0.0.0/8"  # type: ignore[attr-defined]
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "")
    with pytest.raises(SystemExit) as refused:
        call_command("probe", f"tcp://127.0.0.1:{tcp_listener.port}", "--count", "1")
    assert refused.value.code == 2


def test_a_malformed_policy_is_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8,not-a-net")
    with pytest.raises(SystemExit) as invalid:
        call_command("probe", "tcp://127.0.0.1:9", "--count", "1")
    assert invalid.value.code == 2


# --- Layers ---------------------------------------------------------------------------

INSTRUMENT_BASE = [
    "probes.base",
    "probes.registry",
    "probes.runner",
    "probes.guard",
    "probes.stats",
    "probes.tlsinfo",
]


def instrument_modules() -> list[str]:
    return sorted({*INSTRUMENT_BASE, *(entry.module for entry in REGISTRY.values())})


def contracts() -> dict[str, dict[str, list[str]]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_import_contract_covers_every_instrument_module() -> None:
    # A protocol added to the registry and forgotten in the contract fails here.
    (instrument,) = [c for name, c in contracts().items() if name.startswith("The instrument")]
    assert set(instrument_modules()) <= set(instrument["source_modules"])
    forbidden = set(instrument["forbidden_modules"])
    assert {"django", "celery", "kombu", "advisor", "probes.responder"} <= forbidden


def test_the_instrument_loads_no_django_celery_or_advisor() -> None:
    # Imported in a fresh interpreter, every instrument module and the probe
    # libraries they use: none of them may pull in a web or task framework.
    code = (
        "import importlib, sys\n"
        f"for name in {instrument_modules()!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'celery', 'kombu', 'advisor'} or m == 'probes.responder')\n"
        "print(bad)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_responder_imports_none_of_the_probes() -> None:
    code = (
        "import sys, probes.responder\n"
        "print(sorted(m for m in sys.modules if m.startswith('probes.') "
        "and m != 'probes.responder'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
