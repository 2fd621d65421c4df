"""What an owner does with decisions: exports, edit (a new version), duplicate, compare,
delete, revoke; and the questionnaire's units, through Django's test client."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from advisor import selectors, services
from advisor.models import Decision, ShareLink
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"
ORDERS = {
    "title": "Orders to the warehouse",
    "interaction": "fire_and_forget",
    "receiver_may_be_offline": True,
}


@pytest.fixture
def ada() -> User:
    return User.objects.create_user("ada", password=PASSWORD)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password=PASSWORD)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def made(owner: User | None, **answers: object) -> tuple[Decision, str]:
    return services.decision_create(usecase=parse_usecase({**ORDERS, **answers}), owner=owner)


def post_form(client: Client, path: str, **answers: str) -> object:
    data = {"interaction": "fire_and_forget", "receiver_may_be_offline": "on", "encryption": "on"}
    data.update(answers)
    return client.post(path, data)


# --- units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "typed", "unit", "stored", "shown"),
    [
        ("file_bytes", "20GB", "bytes", 20_000_000_000, "20 GB"),
        ("file_bytes", "20", "GiB", 21_474_836_480, "20 GiB"),
        ("message_bytes", "2 KB", "KiB", 2000, "2 KB"),
        ("rate_per_second", "once a day", "per second", 1 / 86400, "1 per day"),
        ("rate_per_second", "5", "per minute", 5 / 60, "5 per minute"),
        ("latency_ms", "2 h", "ms", 7_200_000, "2 h"),
        ("latency_ms", "1500", "ms", 1500, "1,500 ms"),
    ],
)
def test_quantities_are_read_in_their_unit_and_shown_back_in_it(
    client: Client, field: str, typed: str, unit: str, stored: float, shown: str
) -> None:
    answers = {field: typed, f"{field}_unit": unit}
    response = post_form(client, "/", **answers)
    assert response.status_code == 302  # type: ignore[attr-defined]
    decision = Decision.objects.get()
    assert decision.usecase[field] == pytest.approx(stored)
    html = unescape(client.get(f"/d/{decision.pk}").content.decode())
    row = re.search(
        rf"<tr data-field=\"{field}\"><th scope=\"row\">[^<]*</th><td>([^<]*)</td>",
        html,
    )
    assert row is not None and row.group(1) == shown


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("file_bytes", "20 parsecs", "'parsecs' is not a unit here; accepted: bytes, KB"),
        ("file_bytes", "20 Mb", "'Mb' reads as bits; for bytes write MB"),
        ("message_bytes", "10^23", "is not a unit here"),
        ("message_bytes", "2 TB", "accepted: from 1 byte to 1 TB"),
        ("rate_per_second", "1e308", "accepted: from 0 to 1,000,000,000 per second"),
        ("latency_ms", "2 days", "'days' is not a unit here; accepted: ms, s, min, h"),
        ("latency_ms", "25 h", "accepted: more than 0 ms and at most 24 h"),
    ],
)
def test_quantities_that_cannot_be_read_are_refused_clearly(
    client: Client, field: str, typed: str, message: str
) -> None:
    response = post_form(client, "/", **{field: typed})
    assert response.status_code == 400  # type: ignore[attr-defined]
    html = unescape(response.content.decode())  # type: ignore[attr-defined]
    errors = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert errors is not None and message in errors.group(1)
    assert Decision.objects.count() == 0


def test_a_tampered_unit_is_a_field_error_not_a_500(client: Client) -> None:
    response = post_form(client, "/", file_bytes="3", file_bytes_unit="parsec")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert 'the unit "parsec" is not one of bytes, KB' in unescape(
        response.content.decode()  # type: ignore[attr-defined]
    )


def test_the_form_has_no_format_version_and_a_unit_chooser_per_quantity(client: Client) -> None:
    html = client.get("/").content.decode()
    assert 'name="version"' not in html
    for field in ("latency_ms", "message_bytes", "file_bytes", "rate_per_second"):
        assert f'<select name="{field}_unit"' in html


# --- exports ----------------------------------------------------------------------------


def test_the_owner_downloads_madr_and_json_any_time_named_from_title_and_date(
    ada: User,
) -> None:
    decision, _ = made(ada)
    decision.created_at = timezone.now() - timedelta(days=40)  # long after the link's hour
    decision.save()
    client = client_for(ada)
    day = decision.created_at.strftime("%Y-%m-%d")
    madr = client.get(f"/d/{decision.pk}/decision.md")
    assert madr.status_code == 200
    assert madr["Content-Disposition"] == f'attachment; filename="orders-to-the-warehouse-{day}.md"'
    assert "# Orders to the warehouse" in madr.content.decode()
    exported = client.get(f"/d/{decision.pk}/recommendation.json")
    assert exported["Content-Disposition"].endswith(f'-{day}.json"')
    assert json.loads(exported.content) == decision.result
    page = client.get(f"/d/{decision.pk}").content.decode()
    assert f'href="/d/{decision.pk}/decision.md"' in page


def test_exports_of_someone_elses_decision_are_404(ada: User, bob: User) -> None:
    decision, _ = made(ada)
    for path in (f"/d/{decision.pk}/decision.md", f"/d/{decision.pk}/recommendation.json"):
        assert client_for(bob).get(path).status_code == 404
        assert Client().get(path).status_code == 404


def test_an_untitled_decision_exports_as_decision_and_its_date(ada: User) -> None:
    decision, _ = made(ada, title="  ")
    response = client_for(ada).get(f"/d/{decision.pk}/decision.md")
    day = decision.created_at.strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="decision-{day}.md"'


# --- edit, duplicate --------------------------------------------------------------------


def test_editing_makes_a_new_version_and_leaves_the_old_one_and_its_links(ada: User) -> None:
    old, old_token = made(ada)
    client = client_for(ada)
    form = client.get(f"/d/{old.pk}/edit").content.decode()
    assert "Save as version 2" in form
    assert f'action="/d/{old.pk}/edit"' in form
    assert 'value="Orders to the warehouse"' in form
    response = post_form(client, f"/d/{old.pk}/edit", title="Orders, edited", consumers="3")
    new = Decision.objects.exclude(pk=old.pk).get()
    assert response["Location"] == f"/d/{new.pk}"  # type: ignore[index]
    assert (new.previous_id, new.revision, new.owner_id) == (old.pk, 2, ada.pk)
    assert new.usecase["consumers"] == 3
    old.refresh_from_db()
    assert old.title == "Orders to the warehouse" and old.usecase["consumers"] == 1
    # The old link still opens the old answers; the new version has a link of its own.
    assert "Orders to the warehouse" in Client().get(f"/s/{old_token}").content.decode()
    assert new.share_links.count() == 1
    page = client.get(f"/d/{new.pk}").content.decode()
    assert f'href="/d/{old.pk}"' in page and "version 1" in page


def test_only_the_owner_edits(ada: User, bob: User) -> None:
    decision, _ = made(ada)
    assert client_for(bob).get(f"/d/{decision.pk}/edit").status_code == 404
    assert post_form(client_for(bob), f"/d/{decision.pk}/edit").status_code == 404  # type: ignore[attr-defined]
    anonymous = Client().get(f"/d/{decision.pk}/edit")
    assert anonymous.status_code == 302 and "/accounts/login" in anonymous["Location"]
    assert Decision.objects.count() == 1


def test_a_refused_edit_stores_nothing_and_keeps_the_edit_form(ada: User) -> None:
    decision, _ = made(ada)
    response = post_form(client_for(ada), f"/d/{decision.pk}/edit", consumers="0")
    assert response.status_code == 400  # type: ignore[attr-defined]
    html = response.content.decode()  # type: ignore[attr-defined]
    assert f'action="/d/{decision.pk}/edit"' in html and 'id="form-errors"' in html
    assert Decision.objects.count() == 1


def test_duplicate_prefills_a_copy_that_saves_as_a_separate_decision(ada: User) -> None:
    decision, _ = made(ada, file_bytes=20 * 10**9)
    decision.units = {"file_bytes": "GB"}
    decision.save()
    client = client_for(ada)
    html = unescape(client.get(f"/d/{decision.pk}/duplicate").content.decode())
    assert 'value="Orders to the warehouse (copy)"' in html
    assert re.search(r'name="file_bytes"[^>]*value="20"', html)
    assert re.search(r'<option value="GB" selected>', html)
    assert 'action="/"' in html
    post_form(client, "/", title="Orders to the warehouse (copy)", consumers="2")
    copy = Decision.objects.get(title="Orders to the warehouse (copy)")
    assert copy.previous_id is None and copy.revision == 1
    assert (
        client_for(User.objects.create_user("eve")).get(f"/d/{decision.pk}/duplicate").status_code
        == 404
    )


# --- compare ----------------------------------------------------------------------------


def test_compare_shows_the_answers_that_differ_and_both_rankings(ada: User) -> None:
    a, _ = made(ada)
    b, _ = made(ada, consumers=3, interaction="publish_subscribe")
    response = client_for(ada).get("/compare", {"a": a.pk, "b": b.pk})
    assert response.status_code == 200
    html = unescape(response.content.decode())
    differ = re.findall(r'<tr data-field="(\w+)">', html)
    assert sorted(differ) == ["consumers", "interaction"]
    rows = re.findall(r'<tr data-method="(\w+)"', html)
    assert rows == [item["method"] for item in b.ranking]  # in B's order, all eleven
    assert len(rows) == 11
    winner_a = a.ranking[0]["label"]
    winner_b = b.ranking[0]["label"]
    if winner_a == winner_b:
        assert f"Both recommend <strong>{winner_a}</strong>" in html
    else:
        assert f"A recommends <strong>{winner_a}</strong>, B <strong>{winner_b}</strong>" in html


def test_compare_refuses_other_peoples_decisions_and_a_decision_with_itself(
    ada: User, bob: User
) -> None:
    mine, _ = made(ada)
    theirs, _ = made(bob)
    client = client_for(ada)
    refused = client.get("/compare", {"a": mine.pk, "b": theirs.pk})
    assert refused.status_code == 400
    assert theirs.title not in refused.content.decode().split("<option")[0]
    same = client.get("/compare", {"a": mine.pk, "b": mine.pk})
    assert same.status_code == 400
    assert "Choose two different decisions" in same.content.decode()
    assert client.get("/compare", {"a": "x", "b": "<script>"}).status_code == 400
    assert Client().get("/compare").status_code == 302  # log in first


# --- delete, revoke, expiry ---------------------------------------------------------------


def test_delete_asks_first_then_its_links_stop_working(ada: User) -> None:
    decision, token = made(ada)
    client = client_for(ada)
    confirm = client.get(f"/d/{decision.pk}/delete")
    assert confirm.status_code == 200
    assert "1 working link" in confirm.content.decode()
    assert Decision.objects.filter(pk=decision.pk).exists()  # asking changes nothing
    response = client.post(f"/d/{decision.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/decisions"
    assert not Decision.objects.filter(pk=decision.pk).exists()
    assert ShareLink.objects.count() == 0
    assert Client().get(f"/s/{token}").status_code == 404
    assert "its share links no longer open" in client.get("/decisions").content.decode()


def test_deleting_a_version_keeps_the_others(ada: User) -> None:
    old, _ = made(ada)
    new, new_token = services.decision_revise(
        decision=old, usecase=parse_usecase({**ORDERS, "consumers": 2}), user=ada
    )
    client_for(ada).post(f"/d/{old.pk}/delete")
    new.refresh_from_db()
    assert new.previous_id is None and new.revision == 2
    assert Client().get(f"/s/{new_token}").status_code == 200


def test_others_cannot_delete_and_get_the_same_404_as_for_nothing(ada: User, bob: User) -> None:
    decision, _ = made(ada)
    intruder = client_for(bob)
    theirs = intruder.post(f"/d/{decision.pk}/delete")
    nothing = intruder.post(f"/d/{decision.pk + 999}/delete")
    assert theirs.status_code == nothing.status_code == 404
    assert intruder.get(f"/d/{decision.pk}/delete").status_code == 404
    assert Decision.objects.filter(pk=decision.pk).exists()


def test_the_links_table_shows_each_links_real_expiry(ada: User) -> None:
    decision, _ = made(ada)
    share = decision.share_links.get()
    expires = timezone.now() + timedelta(days=3)
    services.share_link_set_expiry(share=share, user=ada, expires_at=expires)
    html = client_for(ada).get(f"/d/{decision.pk}").content.decode()
    assert f'<time datetime="{expires.isoformat(timespec="seconds")[:19]}' in html.replace(
        "+00:00", ""
    )
    assert "(in 2\xa0days" in html or "(in 3\xa0days" in html
    # The select does not claim "Never" for a link that expires.
    select = re.search(r'<select name="expires_in".*?</select>', html, re.S)
    assert select is not None and "selected" not in select.group(0)
    assert '<option value="">Choose…</option>' in select.group(0)


def test_an_empty_expiry_choice_is_refused(ada: User) -> None:
    decision, _ = made(ada)
    share = decision.share_links.get()
    response = client_for(ada).post(f"/share-links/{share.pk}/expiry", {"expires_in": ""})
    assert response.status_code == 400
    share.refresh_from_db()
    assert share.expires_at is None


def test_revoke_confirmation_posts_and_the_link_dies(ada: User) -> None:
    decision, token = made(ada)
    share = decision.share_links.get()
    client = client_for(ada)
    assert (
        "Revoke this share link?" in client.get(f"/share-links/{share.pk}/revoke").content.decode()
    )
    assert selectors.share_link_find_live(token=token) is not None
    client.post(f"/share-links/{share.pk}/revoke")
    assert selectors.share_link_find_live(token=token) is None
    assert Client().get(f"/s/{token}").status_code == 404


# --- login returns ----------------------------------------------------------------------


def test_log_in_returns_to_the_page_the_user_was_on(ada: User) -> None:
    decision, _ = made(ada)
    html = Client().get("/knowledge").content.decode()
    assert 'href="/accounts/login?next=%2Fknowledge"' in html
    client = Client()
    response = client.post(
        "/accounts/login", {"username": "ada", "password": PASSWORD, "next": f"/d/{decision.pk}"}
    )
    assert response.status_code == 302 and response["Location"] == f"/d/{decision.pk}"
    # Somewhere else entirely is not followed.
    other = Client().post(
        "/accounts/login",
        {"username": "ada", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert other["Location"] == "/"


def test_sign_up_returns_to_the_page_too(client: Client) -> None:
    page = client.get("/accounts/signup?next=/knowledge").content.decode()
    assert 'name="next" value="/knowledge"' in page
    response = client.post(
        "/accounts/signup",
        {
            "username": "cy",
            "password1": "a long enough passphrase 42",
            "password2": "a long enough passphrase 42",
            "next": "/knowledge",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/knowledge"


def test_share_pages_do_not_put_their_token_into_the_login_link(ada: User) -> None:
    _, token = made(ada)
    html = Client().get(f"/s/{token}").content.decode()
    assert token not in html.split('href="/accounts/login')[1].split('"')[0]


def test_examples_set_inbound_blocked_only_where_the_receiver_is_behind_nat() -> None:
    """inbound_blocked is about the receiving side: devices that only send telemetry
    out do not set it; receivers that must take commands behind NAT do."""
    examples = {e.name: e.usecase for e in selectors.example_list()}
    assert examples["truck-telemetry"].inbound_blocked is False
    assert examples["kiosk-commands"].inbound_blocked is True
    # Every example that sets it sends something to the blocked side.
    for name, usecase in examples.items():
        if usecase.inbound_blocked:
            assert usecase.interaction in (
                "fire_and_forget",
                "publish_subscribe",
                "bidirectional",
            ), name
