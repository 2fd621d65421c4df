"""Fast pages and a strict policy: the Content-Security-Policy on every answer, no inline
script or style anywhere, static files hashed, compressed and cached for a year, and
share pages and the questionnaire served from HTML rendered once."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from advisor import services
from advisor.middleware import POLICY
from advisor.models import Decision
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db

EXPECTED_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
CHAT = {"title": "Support chat", "interaction": "bidirectional", "realtime": True}


@pytest.fixture
def owner() -> User:
    user = User.objects.create_user("owner")
    return user


@pytest.fixture
def pages(owner: User) -> dict[str, Client]:
    """Every kind of page, with a visitor who may see it."""
    decision, token = services.decision_create(usecase=parse_usecase(CHAT), owner=owner)
    other, _ = services.decision_create(usecase=parse_usecase(CHAT), owner=owner)
    mine = Client()
    mine.force_login(owner)
    share = decision.share_links.get()
    return {
        "/": Client(),
        "/?example=support-chat": Client(),
        "/knowledge": Client(),
        f"/s/{token}": Client(),
        "/s/no-such-token": Client(),
        "/nowhere": Client(),
        "/accounts/login": Client(),
        "/accounts/signup": Client(),
        "/api/docs": Client(),
        f"/d/{decision.pk}": mine,
        f"/d/{decision.pk}/edit": mine,
        f"/d/{decision.pk}/duplicate": mine,
        f"/d/{decision.pk}/delete": mine,
        f"/share-links/{share.pk}/revoke": mine,
        f"/compare?a={decision.pk}&b={other.pk}": mine,
        "/decisions": mine,
    }


def test_the_policy_is_the_one_asked_for() -> None:
    assert POLICY == EXPECTED_POLICY


def test_every_page_sends_the_policy_and_has_no_inline_script_or_style(
    pages: dict[str, Client],
) -> None:
    for path, visitor in pages.items():
        response = visitor.get(path)
        assert response.status_code in (200, 404), path
        assert response["Content-Security-Policy"] == EXPECTED_POLICY, path
        html = response.content.decode()
        # A script is a file of ours or data (the figures' JSON), never code in the page.
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"<style\b", html), path
        assert not re.search(r"\sstyle\s*=", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "javascript:" not in html.lower(), path


def test_static_files_and_errors_carry_the_policy_too(client: Client) -> None:
    css = re.search(
        r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', client.get("/").content.decode()
    )
    assert css is not None
    assert client.get(css.group(1))["Content-Security-Policy"] == EXPECTED_POLICY
    assert client.post("/s/whatever")["Content-Security-Policy"] == EXPECTED_POLICY


def test_htmx_is_told_not_to_inject_styles_or_evaluate_code(client: Client) -> None:
    html = client.get("/").content.decode()
    assert (
        '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false, '
        '"allowEval": false, "allowScriptTags": false}\'>'
    ) in html


def test_static_files_have_hashed_names_gzip_and_a_year_of_cache(client: Client) -> None:
    html = client.get("/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets
    for asset in assets:
        assert re.search(r"\.[0-9a-f]{12}\.(?:js|css|svg)$", asset), asset
        response = client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, asset
        cache_control = response["Cache-Control"]
        assert "immutable" in cache_control and "max-age=315360000" in cache_control, asset
        if asset.endswith((".js", ".css")):
            assert response["Content-Encoding"] == "gzip", asset


def test_plotly_is_the_cartesian_partial_bundle_and_small_over_the_wire() -> None:
    vendor = Path(settings.BASE_DIR) / "static" / "vendor"
    bundles = sorted(p.name for p in vendor.glob("plotly*.js"))
    assert bundles == ["plotly-cartesian-4.1.1.min.js"]
    source = (vendor / bundles[0]).read_bytes()
    # The trace types the pages and the probe-run charts draw are in it ...
    for trace in (b'"bar"', b'"heatmap"', b'"box"', b'"violin"', b'"scatter"'):
        assert trace in source, trace
    # ... and the 3D and map ones are not (their names do not even occur).
    for absent in (b'"scatter3d"', b'"scattermapbox"'):
        assert absent not in source, absent
    assert len(gzip.compress(source)) < 600_000


def test_a_share_page_is_rendered_once_and_then_costs_one_query(owner: User) -> None:
    decision, token = services.decision_create(usecase=parse_usecase(CHAT), owner=owner)
    first = Client().get(f"/s/{token}")
    assert first.templates  # rendered
    with CaptureQueriesContext(connection) as queries:
        again = Client().get(f"/s/{token}")
    assert again.status_code == 200
    assert again.templates == []  # served from the cache
    assert again.content == first.content
    # Only the link's own check: the decision's JSON is never read again.
    assert len(queries.captured_queries) == 1
    assert "token_hash" in queries.captured_queries[0]["sql"]
    # Revoking works at once although the page is cached.
    services.share_link_revoke(share=decision.share_links.get(), user=owner)
    assert Client().get(f"/s/{token}").status_code == 404


def test_charts_are_stored_with_the_decision_when_it_is_made(owner: User) -> None:
    decision, _ = services.decision_create(usecase=parse_usecase(CHAT), owner=owner)
    stored = Decision.objects.get(pk=decision.pk).figures
    assert stored is not None
    assert stored["ranking"]["data"][0]["type"] == "bar"
    assert stored["contributions"]["data"][0]["type"] == "heatmap"
    labels = stored["ranking"]["data"][0]["y"]
    assert labels[0] == decision.ranking[0]["label"]


def test_the_questionnaire_is_cached_but_each_visitor_has_a_working_csrf_token() -> None:
    tokens = []
    for _ in range(2):
        visitor = Client(enforce_csrf_checks=True)
        response = visitor.get("/")
        html = response.content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        header = re.search(r'"X-CSRFToken": "([^"]+)"', html)
        assert token is not None and header is not None
        assert token.group(1) == header.group(1)
        assert "csrfstandin" not in html
        tokens.append(token.group(1))
        posted = visitor.post(
            "/", {"csrfmiddlewaretoken": token.group(1), "interaction": "streaming"}
        )
        assert posted.status_code == 302
    assert tokens[0] != tokens[1]
    assert Decision.objects.count() == 2
    # A second visitor's page came from the cache.
    assert Client().get("/").templates == []
