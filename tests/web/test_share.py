"""Share links: read-only pages, one 404 for every dead token, headers, frozen results."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from advisor import engine, services
from advisor.models import Decision, ShareLink
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db


CHAT = {
    "title": "Support chat",
    "interaction": "bidirectional",
    "realtime": True,
    "browser_clients": True,
    "peers": "public",
}


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("owner", password="a-long-passphrase-1")


@pytest.fixture
def shared(owner: User) -> tuple[Decision, str]:
    return services.decision_create(usecase=parse_usecase(CHAT), owner=owner)


def share_urls(token: str) -> list[str]:
    return [f"/s/{token}", f"/s/{token}/decision.md", f"/s/{token}/recommendation.json"]


def test_share_page_opens_read_only_without_login(shared: tuple[Decision, str]) -> None:
    decision, token = shared
    response = Client().get(f"/s/{token}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Support chat" in html
    assert "WebSockets" in html
    assert "read-only" in html
    # Nothing on the page can change anything: no forms, no CSRF token to post with.
    assert "<form" not in html
    assert "csrfmiddlewaretoken" not in html and "X-CSRFToken" not in html
    # Every method, its score and the exports are there.
    for item in decision.result["ranking"]:
        assert f'id="m-{item["method"]}"' in html
    assert f'href="/s/{token}/decision.md"' in html
    assert f'href="/s/{token}/recommendation.json"' in html


def test_share_page_sends_no_referrer_and_noindex(shared: tuple[Decision, str]) -> None:
    _, token = shared
    for url in share_urls(token):
        response = Client().get(url)
        assert response.status_code == 200, url
        assert response["Referrer-Policy"] == "no-referrer", url
        assert "noindex" in response["X-Robots-Tag"], url
    html = Client().get(f"/s/{token}").content.decode()
    assert '<meta name="robots" content="noindex, nofollow">' in html


def test_unknown_revoked_and_expired_tokens_get_the_same_404(
    owner: User, shared: tuple[Decision, str]
) -> None:
    decision, revoked_token = shared
    services.share_link_revoke(share=decision.share_links.get(), user=owner)
    expired_share, expired_token = services.share_link_create(decision=decision)
    services.share_link_set_expiry(
        share=expired_share, user=owner, expires_at=timezone.now() - timedelta(seconds=1)
    )
    unknown_token = "x" * 43

    for suffix in ("", "/decision.md", "/recommendation.json"):
        answers = [
            Client().get(f"/s/{token}{suffix}")
            for token in (unknown_token, revoked_token, expired_token)
        ]
        assert [a.status_code for a in answers] == [404, 404, 404], suffix
        bodies = {a.content for a in answers}
        assert len(bodies) == 1, suffix
        headers = {(a["Content-Type"], a["Referrer-Policy"], a["X-Robots-Tag"]) for a in answers}
        assert len(headers) == 1, suffix
        # The body never echoes the token it was asked for.
        assert revoked_token.encode() not in answers[1].content


def test_a_link_with_a_future_expiry_still_opens(owner: User, shared: tuple[Decision, str]) -> None:
    decision, token = shared
    services.share_link_set_expiry(
        share=decision.share_links.get(), user=owner, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert Client().get(f"/s/{token}").status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_to_a_share_url_are_405(shared: tuple[Decision, str], method: str) -> None:
    _, token = shared
    client = Client(enforce_csrf_checks=True)
    for url in share_urls(token):
        response = getattr(client, method)(url, data={})
        assert response.status_code == 405, url
        assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
        assert response["Referrer-Policy"] == "no-referrer"
    # A write to a dead token is refused the same way, before any lookup.
    assert client.post("/s/unknown-token").status_code == 405


def test_head_of_a_share_page_is_allowed(shared: tuple[Decision, str]) -> None:
    _, token = shared
    assert Client().head(f"/s/{token}").status_code == 200


def test_token_is_never_stored_in_plaintext(shared: tuple[Decision, str]) -> None:
    decision, service_token = shared
    # A token made through the web form and shown on its creator's page, which also
    # writes the session table, must not land anywhere in the database either.
    client = Client()
    location = client.post("/", {"interaction": "streaming", "encryption": "on"})["Location"]
    page = client.get(location).content.decode()
    match = re.search(r'value="http://testserver/s/([A-Za-z0-9_-]{43})"', page)
    assert match is not None
    web_token = match.group(1)
    assert client.get(f"/s/{web_token}").status_code == 200

    found = []
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        assert "django_session" in tables and "advisor_sharelink" in tables
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                for token in (service_token, web_token):
                    if any(token in str(cell) for cell in row):
                        found.append((table, token))
    assert found == []
    share = decision.share_links.get()
    assert share.token_hash == hashlib.sha256(service_token.encode()).hexdigest()


def test_share_page_is_frozen_to_the_stored_result(shared: tuple[Decision, str]) -> None:
    decision, token = shared
    result = decision.result
    result["ranking"][0]["label"] = "Carrier pigeons"
    result["ranking"][0]["reasons"] = ["pigeons never drop a connection"]
    result["ranking"][0]["reasons_for"][0]["text"] = "pigeons never drop a connection"
    result["warnings"] = ["frozen on purpose"]
    decision.result = result
    # The charts are stored with the decision, built once from its result: the page
    # draws what is stored, never building them again.
    figures = services.decision_figures(result=result)
    assert figures is not None
    figures["ranking"]["layout"]["title"] = {"text": "stored, not rebuilt"}
    decision.figures = figures
    decision.save()

    html = Client().get(f"/s/{token}").content.decode()
    assert "Carrier pigeons" in html
    assert "pigeons never drop a connection" in html
    assert "frozen on purpose" in html
    figure = html.split('<script id="fig-ranking" type="application/json">')[1].split("</script>")[
        0
    ]
    assert "Carrier pigeons" in figure
    assert "stored, not rebuilt" in figure
    exported = json.loads(Client().get(f"/s/{token}/recommendation.json").content)
    assert exported["ranking"][0]["label"] == "Carrier pigeons"
    # And today's engine still says something else: the page did not re-run it.
    assert engine.recommend(parse_usecase(CHAT)).ranking[0].label != "Carrier pigeons"


def test_share_page_never_runs_the_engine(
    shared: tuple[Decision, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = shared

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a share page must not run the engine")

    monkeypatch.setattr(engine, "recommend", refuse)
    for url in share_urls(token):
        assert Client().get(url).status_code == 200


def test_json_export_is_the_stored_result(shared: tuple[Decision, str]) -> None:
    decision, token = shared
    response = Client().get(f"/s/{token}/recommendation.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    day = decision.created_at.strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="support-chat-{day}.json"'
    body = json.loads(response.content)
    assert body == decision.result
    assert len(body["ranking"]) == len(engine.METHODS)
    assert body["version"] == 1


def test_madr_export_is_an_attachment_in_markdown(shared: tuple[Decision, str]) -> None:
    decision, token = shared
    response = Client().get(f"/s/{token}/decision.md")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    # Named from the title and the day it was made, like the owner's own download.
    day = decision.created_at.strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="support-chat-{day}.md"'
    text = response.content.decode()
    assert text.startswith("---\nstatus: proposed\n")
    assert "# Support chat" in text
    assert "## Decision Outcome" in text


@pytest.mark.parametrize("token", ["a" * 129, "%2e%2e", "..", "a b", "ä", "null", "0"])
def test_odd_tokens_are_404_not_500(token: str) -> None:
    assert Client().get(f"/s/{token}").status_code == 404


def test_share_link_survives_its_owner_logging_out(shared: tuple[Decision, str]) -> None:
    _, token = shared
    client = Client()
    assert client.login(username="owner", password="a-long-passphrase-1")
    assert client.get(f"/s/{token}").status_code == 200
    client.post("/accounts/logout")
    assert client.get(f"/s/{token}").status_code == 200


def test_revoked_link_stays_revoked_even_with_a_later_expiry(
    owner: User, shared: tuple[Decision, str]
) -> None:
    decision, token = shared
    share = decision.share_links.get()
    services.share_link_revoke(share=share, user=owner)
    services.share_link_set_expiry(
        share=ShareLink.objects.get(pk=share.pk),
        user=owner,
        expires_at=timezone.now() + timedelta(days=7),
    )
    assert Client().get(f"/s/{token}").status_code == 404


@pytest.mark.parametrize("secure", [True, False])
def test_the_fresh_token_cookie_is_https_only_where_the_session_is(
    settings: Settings, secure: bool
) -> None:
    settings.SESSION_COOKIE_SECURE = secure
    client = Client()
    response = client.post("/", {"interaction": "streaming"})
    assert response.status_code == 302
    cookie = response.cookies["sb_share_token"]
    assert bool(cookie["secure"]) is secure
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == response["Location"]  # only the new decision's page gets it


def test_a_title_of_blanks_falls_back_to_a_heading_not_an_empty_one(owner: User) -> None:
    decision, token = services.decision_create(
        usecase=parse_usecase({"title": "  \n\t ", "interaction": "streaming"}), owner=owner
    )
    shared = Client().get(f"/s/{token}").content.decode()
    assert re.search(r"<h1>\s*A shared recommendation\s*</h1>", shared)
    assert "<title>A shared recommendation · Switchboard</title>" in shared
    mine = Client()
    mine.force_login(owner)
    page = mine.get(f"/d/{decision.pk}").content.decode()
    assert re.search(r"<h1>\s*Your recommendation\s*</h1>", page)
    assert "Untitled use case" in mine.get("/decisions").content.decode()
    # A title over several lines is shown on one.
    decision.title = "Orders\n  to the warehouse"
    decision.save()
    assert "<h1>Orders to the warehouse</h1>" in Client().get(f"/s/{token}").content.decode()


@pytest.mark.parametrize("example", ["order-events", "partner-api", "game-state", "kiosk-commands"])
def test_each_reason_appears_once_winner_first_then_alternatives_then_the_rest_folded(
    example: str,
) -> None:
    from html import unescape
    from pathlib import Path

    document = json.loads(Path(f"advisor/examples/{example}.json").read_text())["usecase"]
    decision = services.decision_create(usecase=parse_usecase(document), owner=None)[0]
    token = services.share_link_create(decision=decision)[1]
    page = unescape(Client().get(f"/s/{token}").content.decode())
    ranking = decision.result["ranking"]
    # A reason is shown once for each method it counts for (the winner's not again below).
    holders: dict[str, int] = {}
    for item in ranking:
        for reason in item.get("reasons_for", []) + item.get("reasons_against", []):
            holders[reason["text"]] = holders.get(reason["text"], 0) + 1
    for text, count in holders.items():
        assert page.count(text) == count, text
    # The winner in its own section; the next two feasible methods open; the rest folded.
    assert page.index('id="winner-title"') < page.index('id="alternatives-title"')
    feasible = [i["method"] for i in ranking[1:] if not i.get("excluded")]
    opened = re.findall(r'<details class="method[^"]*" id="m-([a-z_]+)" open>', page)
    assert opened == feasible[:2]
    folded = re.findall(r'<details class="method[^"]*" id="m-([a-z_]+)">', page)
    assert sorted(folded) == sorted(i["method"] for i in ranking[1:] if i["method"] not in opened)
    # Question labels, not field names, in the answers table.
    assert "<code" not in page.split('id="answers-title"')[1]
