"""The decision page's probe panel, the run page and its progress fragment, the share
page's evidence and the MADR section: with htmx and without JavaScript.

Django's test client; runs are ended by calling the services as a worker would.
"""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from advisor import services as advisor_services
from advisor.models import Decision
from advisor.usecase import parse_usecase
from probes import plots, services
from probes.models import ProbeJob, ProbeRun, VantagePoint

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    cache.clear()


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def decision(alice: User) -> Decision:
    usecase = parse_usecase(
        {"title": "Orders", "interaction": "fire_and_forget", "receiver_may_be_offline": True}
    )
    return advisor_services.decision_create(usecase=usecase, owner=alice)[0]


@pytest.fixture
def client(alice: User) -> Client:
    browser = Client()
    browser.login(username="alice", password=PASSWORD)
    return browser


def urls_in(html: str) -> list[str]:
    return re.findall(r'name="url" value="([^"]*)"', html)


def test_the_owner_finds_the_panel_and_others_do_not(client: Client, decision: Decision) -> None:
    page = client.get(f"/d/{decision.pk}").content.decode()
    assert "Test these options on your servers" in page
    assert f'action="/d/{decision.pk}/probe"' in page
    bob = User.objects.create_user("bob", password=PASSWORD)
    other = Client()
    other.force_login(bob)
    assert other.get(f"/d/{decision.pk}").status_code == 404
    assert other.get(f"/d/{decision.pk}/probe").status_code == 404
    assert Client().get(f"/d/{decision.pk}/probe").status_code == 302  # to the login page


def test_without_javascript_a_host_becomes_one_target_per_top_method(
    client: Client, decision: Decision
) -> None:
    response = client.post(
        f"/d/{decision.pk}/probe", {"hosts": "mq.example.com", "action": "propose"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    proposed = urls_in(html)
    top = [m["method"] for m in decision.ranking if not m["excluded"]][:4]
    assert len(proposed) == len(top) == 4
    assert proposed[0] == "amqp://mq.example.com:5672/"  # message_queue, amqp, its port
    assert "https://mq.example.com/" in proposed  # http
    assert "For Message queue / broker" in html
    methods = re.findall(r'name="method" value="([^"]*)"', html)
    assert methods == top


def test_rows_are_added_removed_and_edited_before_the_run(
    client: Client, decision: Decision
) -> None:
    url = f"/d/{decision.pk}/probe"
    data: dict[str, Any] = {
        "url": ["tcp://127.0.0.1:9", "udp://127.0.0.1:7007"],
        "method": ["tcp", "udp"],
        "sealed": ["", ""],
    }
    added = urls_in(client.post(url, {**data, "action": "add"}).content.decode())
    assert added == ["tcp://127.0.0.1:9", "udp://127.0.0.1:7007", ""]
    removed = urls_in(client.post(url, {**data, "remove": "0"}).content.decode())
    assert removed == ["udp://127.0.0.1:7007"]
    VantagePoint.objects.create(name="probes")
    ran = client.post(
        url, {**data, "vantage_points": "probes", "count": "4", "interval": "50", "action": "run"}
    )
    assert ran.status_code == 302
    run = ProbeRun.objects.get()
    assert ran["Location"] == f"/runs/{run.pk}"
    assert (run.count, run.interval_ms) == (4, 50.0)
    assert [j.url for j in run.jobs.order_by("position")] == data["url"]


def test_a_bad_target_is_marked_beside_its_row_and_nothing_is_queued(
    client: Client, decision: Decision
) -> None:
    response = client.post(
        f"/d/{decision.pk}/probe",
        {"url": ["tcp://127.0.0.1:9", "gopher://x/"], "method": ["", ""], "action": "run"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "unknown scheme &#x27;gopher&#x27;" in html
    assert 'id="probe-url-error-1"' in html
    assert ProbeRun.objects.count() == 0


def test_with_htmx_the_panel_swaps_in_place_and_run_redirects(
    client: Client, decision: Decision
) -> None:
    htmx = {"HX-Request": "true"}
    url = f"/d/{decision.pk}/probe"
    fragment = client.post(url, {"hosts": "10.0.0.7", "action": "propose"}, headers=htmx)
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section class="probe-panel" id="probe-panel"')
    ran = client.post(
        url, {"url": "tcp://127.0.0.1:9", "method": "tcp", "action": "run"}, headers=htmx
    )
    assert ran["HX-Redirect"] == f"/runs/{ProbeRun.objects.get().pk}"


def test_a_password_typed_in_a_target_never_comes_back_to_the_browser(
    client: Client, decision: Decision
) -> None:
    url = f"/d/{decision.pk}/probe"
    secret = "hunter2-very-secret"
    typed = f"amqp://app:{secret}@127.0.0.1:5672/"
    shown = client.post(url, {"url": typed, "method": "message_queue", "action": "add"})
    html = shown.content.decode()
    assert secret not in html
    assert urls_in(html)[0] == "amqp://app:****@127.0.0.1:5672/"
    sealed = re.findall(r'name="sealed" value="([^"]*)"', html)[0]
    assert sealed
    # The masked row and its sealed copy are enough to run with the real password.
    ran = client.post(
        url, {"url": urls_in(html)[0], "method": "message_queue", "sealed": sealed, "action": "run"}
    )
    assert ran.status_code == 302
    job = ProbeJob.objects.get()
    from probes import credentials

    assert credentials.unseal(job.secret_url) == typed
    run_page = client.get(ran["Location"]).content.decode()
    assert secret not in run_page and "amqp://app:****@127.0.0.1:5672/" in run_page
    # A masked URL without its sealed copy is refused, not run without its password.
    bad = client.post(url, {"url": "amqp://app:****@127.0.0.1:5672/", "action": "run"})
    assert "type the password again" in bad.content.decode()


def _finish(run: ProbeRun, *, ok: bool = True, error: str = "connection refused") -> None:
    for job in run.jobs.all():
        attempt = services.job_claim(job_id=job.pk, worker="w")
        assert attempt is not None
        result = {
            "kind": job.scheme,
            "target": job.url,
            "address": "127.0.0.1",
            "ok": ok,
            "samples": 3,
            "succeeded": 3 if ok else 0,
            "loss": 0.0 if ok else 1.0,
            "latency_ms": {
                "min": 1,
                "p50": 2.5,
                "p95": 4.5,
                "p99": 4.9,
                "max": 5,
                "mean": 3,
                "stdev": 1,
            }
            if ok
            else None,
            "jitter_ms": 1.0 if ok else None,
            "phases_ms": {"dns": None, "connect": 0.5, "tls": None, "ttfb": 2.0, "transfer": 0.1},
            "throughput_bps": None,
            "details": {"tls": {"verified": True, "days_to_expiry": 12, "version": "TLSv1.3"}},
            "error": None if ok else error,
        }
        series = [[0.0, 2.0], [0.1, 2.5], [0.2, 4.9]] if ok else [[0.0, None]]
        services.job_complete(job_id=job.pk, attempt=attempt, result=result, series=series)


def test_progress_polls_until_the_run_ends_then_answers_286_with_the_results(
    client: Client, decision: Decision, alice: User
) -> None:
    run = services.run_create(
        user=alice,
        decision=decision,
        targets=[services.TargetSpec("https://127.0.0.1:8443/")],
        count=3,
    )
    page = client.get(f"/runs/{run.pk}").content.decode()
    assert f'hx-get="/runs/{run.pk}/progress"' in page and 'hx-trigger="every 1s"' in page
    assert "0 of 1 targets, 0 of 3 samples" in page
    assert '<meta http-equiv="refresh"' in page  # without JavaScript it reloads itself
    polling = client.get(f"/runs/{run.pk}/progress", headers={"HX-Request": "true"})
    assert polling.status_code == 200 and "0 of 1 targets" in polling.content.decode()
    job = run.jobs.get()
    attempt = services.job_claim(job_id=job.pk, worker="w")
    assert attempt is not None
    services.job_progress(job_id=job.pk, attempt=attempt, samples_done=2)
    moving = client.get(f"/runs/{run.pk}/progress").content.decode()
    assert "0 of 1 targets, 2 of 3 samples" in moving  # the run
    assert "running</span> 2 of 3 samples" in moving  # and its target
    ProbeJob.objects.filter(pk=job.pk).update(status="queued")
    _finish(run)
    final = client.get(f"/runs/{run.pk}/progress", headers={"HX-Request": "true"})
    assert final.status_code == 286  # htmx stops polling, and swaps the final state in
    html = final.content.decode()
    assert "1 of 1 targets, 3 of 3 samples" in html
    assert "4.500" in html  # p95
    assert "certificate verified" in html and "expires in 12 days" in html
    assert 'data-figure="fig-run-' in html
    # htmx (without script tags, for the CSP) strips <script> from what it swaps in:
    # the figures travel in hidden elements instead.
    assert "<script" not in html and 'class="figure-data"' in html
    assert "What the measurements changed" in html
    assert "The advice before and after the evidence" in html
    # The certificate expires in 12 days: the engine's caveat, as a note.
    run.refresh_from_db()
    assert [n["rule"] for n in run.evidence] == ["certificate-expiring"]
    assert run.evidence[0]["text"] in html.replace("&#x27;", "'")
    reloaded = client.get(f"/runs/{run.pk}").content.decode()
    assert "hx-trigger" not in reloaded.split('id="run-status"')[1].split(">")[0]
    assert '<meta http-equiv="refresh"' not in reloaded


def test_charts_are_computed_once_at_the_end_with_the_bundles_trace_types(
    decision: Decision, alice: User
) -> None:
    run = services.run_create(
        user=alice,
        decision=decision,
        targets=[
            services.TargetSpec("https://127.0.0.1:8443/"),
            services.TargetSpec("tcp://127.0.0.1:9"),
        ],
        count=3,
    )
    _finish(run)
    run.refresh_from_db()
    assert [c["id"] for c in run.charts] == ["latency", "phases", "samples"]
    assert plots.trace_types(run.charts) <= plots.ALLOWED_TRACES
    assert plots.trace_types(run.charts) == {"box", "bar", "scatter"}
    for chart in run.charts:
        # Written as plain JSON for speed: plotly's own validators must accept them.
        go.Figure(chart["figure"])
    phases = next(c for c in run.charts if c["id"] == "phases")
    # Only the HTTP-like target has a waterfall; its phases in order.
    assert [t["name"] for t in phases["figure"]["data"]] == ["connect", "ttfb", "transfer"]
    assert phases["figure"]["data"][0]["y"] == ["https://127.0.0.1:8443/"]


def test_someone_elses_run_page_is_not_found(decision: Decision, alice: User) -> None:
    run = services.run_create(
        user=alice, decision=decision, targets=[services.TargetSpec("tcp://127.0.0.1:9")]
    )
    bob = Client()
    bob.force_login(User.objects.create_user("bob", password=PASSWORD))
    assert bob.get(f"/runs/{run.pk}").status_code == 404
    assert bob.get(f"/runs/{run.pk}/progress").status_code == 404


def test_the_share_page_and_the_madr_show_the_evidence(decision: Decision, alice: User) -> None:
    token = advisor_services.share_link_create(decision=decision)[1]
    anonymous = Client()
    assert "Evidence: measurements" not in anonymous.get(f"/s/{token}").content.decode()
    run = services.run_create(
        user=alice,
        decision=decision,
        targets=[services.TargetSpec("amqp://app:pw-secret@127.0.0.1:5672/")],
        count=3,
    )
    _finish(run, ok=False)
    page = anonymous.get(f"/s/{token}").content.decode()
    assert "Evidence: measurements of the servers" in page
    assert "amqp://app:****@127.0.0.1:5672/" in page and "pw-secret" not in page
    assert "connection refused" in page
    # The engine's evidence rule, in words, with the measurement as its source.
    assert "refused the connection from probes, so Message queue / broker does not get" in page
    assert "The advice before and after the evidence" in page
    record = anonymous.get(f"/s/{token}/decision.md").content.decode()
    assert "## Evidence from probe runs" in record
    assert "| `amqp://app:****@127.0.0.1:5672/` | `message_queue` |" in record
    assert "What the evidence changed:" in record and "pw-secret" not in record
    # The note names the target a person typed: literal Markdown, as the MADR's own text.
    assert "* Measured: amqp\\://app:\\*\\*\\*\\*@127.0.0.1:5672/ refused the connection" in record
    # Before: the message queue first; with the evidence: ruled out, another first.
    first_row = next(line for line in record.splitlines() if line.startswith("| 1 |"))
    assert "Message queue / broker" in first_row.split("|")[2]
    assert "Message queue / broker" not in first_row.split("|")[4]


def test_a_probed_servers_words_stay_literal_in_the_madr(decision: Decision, alice: User) -> None:
    # The error text comes from the peer, which anyone may run: no live Markdown from it.
    token = advisor_services.share_link_create(decision=decision)[1]
    run = services.run_create(
        user=alice, decision=decision, targets=[services.TargetSpec("tcp://127.0.0.1:9")], count=3
    )
    _finish(run, ok=False, error="wrong protocol: [click](javascript:alert(1)) <b>x</b> `y`")
    record = Client().get(f"/s/{token}/decision.md").content.decode()
    assert "[click](javascript:" not in record and "<b>" not in record
    assert "\\[click\\](javascript:alert(1)) &lt;b&gt;x&lt;/b&gt; \\`y\\`" in record


def test_run_again_offers_the_same_targets_and_asks_for_passwords_again(
    client: Client, decision: Decision, alice: User
) -> None:
    run = services.run_create(
        user=alice,
        decision=decision,
        targets=[
            services.TargetSpec("amqp://app:pw@127.0.0.1:5672/"),
            services.TargetSpec("tcp://127.0.0.1:9"),
        ],
        count=7,
    )
    html = client.get(f"/d/{decision.pk}/probe?rerun={run.pk}").content.decode()
    assert urls_in(html) == ["amqp://app:****@127.0.0.1:5672/", "tcp://127.0.0.1:9"]
    assert 'name="count" value="7"' in html
    assert "type it again" in html
