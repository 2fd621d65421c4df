"""Issue 9's leftovers: stored figures on pages, the unit chooser of a bound form, the
heading of a refused duplicate, and compressed HTML only where no secret is in it."""

from __future__ import annotations

import gzip
import re
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.test import Client

from advisor import plots, services
from advisor.models import Decision
from advisor.usecase import parse_usecase
from tests.web.test_decisions import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"
ORDERS = {
    "title": "Nightly stock counts",
    "interaction": "fire_and_forget",
    "receiver_may_be_offline": True,
}
BASE_UNITS = {
    "latency_ms": "ms",
    "rate_per_second": "per second",
    "message_bytes": "bytes",
    "file_bytes": "bytes",
}


@pytest.fixture
def ada() -> User:
    return User.objects.create_user("ada", password=PASSWORD)


def made(owner: User | None, **answers: object) -> tuple[Decision, str]:
    return services.decision_create(usecase=parse_usecase({**ORDERS, **answers}), owner=owner)


def selected_unit(html: str, field: str) -> list[str]:
    chooser = re.search(rf'<select name="{field}_unit"[^>]*>(.*?)</select>', html, re.S)
    assert chooser is not None, f"no unit chooser for {field}"
    return re.findall(r'<option value="([^"]*)" selected>', chooser.group(1))


# --- the figures stored with the decision ------------------------------------------------


def test_pages_draw_the_figures_stored_with_the_decision_and_build_none(
    ada: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    decision, token = made(ada)
    assert isinstance(decision.figures, dict)
    figures = dict(decision.figures)
    figures["ranking"] = {"data": [], "layout": {"title": {"text": "stored-ranking-marker"}}}
    Decision.objects.filter(pk=decision.pk).update(figures=figures)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a page built the charts again instead of using the stored ones")

    monkeypatch.setattr(plots, "figures", refuse)
    for client, path in ((client_for(ada), f"/d/{decision.pk}"), (Client(), f"/s/{token}")):
        response = client.get(path)
        assert response.status_code == 200
        assert "stored-ranking-marker" in response.content.decode()


def test_a_decision_stored_without_figures_still_gets_its_charts(ada: User) -> None:
    decision, _ = made(ada)
    Decision.objects.filter(pk=decision.pk).update(figures=None)
    html = client_for(ada).get(f"/d/{decision.pk}").content.decode()
    assert 'id="fig-ranking"' in html and 'id="fig-contributions"' in html


# --- the unit chooser of a bound form ----------------------------------------------------


def test_a_refused_submission_without_units_preselects_each_base_unit(client: Client) -> None:
    response = client.post("/", {"interaction": "fire_and_forget", "consumers": "0"})
    assert response.status_code == 400
    html = response.content.decode()
    for field, unit in BASE_UNITS.items():
        assert selected_unit(html, field) == [unit], field


def test_a_refused_edit_preselects_the_base_unit_and_keeps_a_chosen_one(ada: User) -> None:
    decision, _ = made(ada)
    response = client_for(ada).post(
        f"/d/{decision.pk}/edit",
        {
            "interaction": "fire_and_forget",
            "consumers": "0",
            "file_bytes": "2",
            "file_bytes_unit": "GB",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert selected_unit(html, "file_bytes") == ["GB"]
    assert selected_unit(html, "message_bytes") == ["bytes"]
    assert selected_unit(html, "latency_ms") == ["ms"]


def test_a_number_sent_without_its_unit_is_read_in_the_base_unit(client: Client) -> None:
    response = client.post("/", {"interaction": "fire_and_forget", "message_bytes": "2048"})
    assert response.status_code == 302
    decision = Decision.objects.get()
    assert decision.usecase["message_bytes"] == 2048
    assert decision.units.get("message_bytes") == "bytes"


# --- a refused duplicate ---------------------------------------------------------------


def test_a_refused_duplicate_still_says_what_it_duplicates(ada: User) -> None:
    decision, _ = made(ada)
    client = client_for(ada)
    page = client.get(f"/d/{decision.pk}/duplicate").content.decode()
    assert f'name="duplicate_of" value="{decision.pk}"' in page
    response = client.post(
        "/", {"interaction": "fire_and_forget", "consumers": "0", "duplicate_of": str(decision.pk)}
    )
    assert response.status_code == 400
    html = unescape(response.content.decode())
    assert "<h1>Duplicate: Nightly stock counts</h1>" in html
    assert f'name="duplicate_of" value="{decision.pk}"' in html
    assert f'href="/d/{decision.pk}"' in html  # back to the decision it duplicates
    assert Decision.objects.count() == 1


@pytest.mark.parametrize("duplicate_of", ["mine-not", "999999", "-1", ""])
def test_a_duplicate_of_a_decision_not_yours_is_a_plain_new_decision(
    ada: User, duplicate_of: str
) -> None:
    decision, _ = made(ada)  # ada's, not the anonymous visitor's
    if duplicate_of == "mine-not":
        duplicate_of = str(decision.pk)
    response = Client().post(
        "/", {"interaction": "fire_and_forget", "consumers": "0", "duplicate_of": duplicate_of}
    )
    assert response.status_code == 400
    html = unescape(response.content.decode())
    assert "<h1>How should your servers talk?</h1>" in html
    assert "Nightly stock counts" not in html


# --- compressed HTML, only without secrets ------------------------------------------------


def test_the_share_page_is_gzipped_for_a_visitor_who_is_not_logged_in(ada: User) -> None:
    _, token = made(ada)
    plain = Client().get(f"/s/{token}")
    assert "Content-Encoding" not in plain
    squeezed = Client().get(f"/s/{token}", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert squeezed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in squeezed["Vary"]
    body = gzip.decompress(squeezed.content)
    # The same page (the random padding of Heal The Breach is in the gzip header only).
    assert body == plain.content
    assert len(squeezed.content) < len(plain.content) / 3
    # The share headers stay.
    assert squeezed["Cache-Control"] == "private, no-store"


def test_the_questionnaire_and_knowledge_pages_are_gzipped_too(client: Client) -> None:
    for path in ("/", "/knowledge"):
        response = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
        assert response["Content-Encoding"] == "gzip", path


def test_pages_that_can_hold_secrets_are_not_compressed(ada: User) -> None:
    decision, token = made(ada)
    owner = client_for(ada)
    # The owner's page lists share links (tokens) beside text from the address.
    for client, path in (
        (owner, f"/d/{decision.pk}?next=probe"),
        (owner, f"/s/{token}"),  # logged in: the page names the user
        (owner, "/"),
        (owner, "/decisions"),
    ):
        response = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, path
        assert "Content-Encoding" not in response, path
    # An anonymous visitor's own decision, shown with its fresh share link.
    visitor = Client()
    visitor.post("/", {"interaction": "fire_and_forget"})
    mine = Decision.objects.exclude(pk=decision.pk).get()
    response = visitor.get(f"/d/{mine.pk}", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and "/s/" in response.content.decode()
    assert "Content-Encoding" not in response
    # API answers carry what the caller sent.
    api = Client().get(f"/api/recommendations/{decision.pk}", HTTP_ACCEPT_ENCODING="gzip")
    assert "Content-Encoding" not in api
