"""Accounts: sign up, log in and out, "My decisions", link management, the admin."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from advisor import selectors, services
from advisor.models import Decision, ShareLink
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"
CHAT = parse_usecase({"title": "Alice's chat", "interaction": "bidirectional"})
BATCH = parse_usecase({"title": "Bob's batch", "interaction": "file_transfer"})


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password=PASSWORD)


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_signup_logs_in_and_lands_on_my_decisions() -> None:
    client = Client()
    page = client.get("/accounts/signup")
    assert page.status_code == 200
    assert '<label for="id_username">' in page.content.decode()
    response = client.post(
        "/accounts/signup",
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/decisions"
    assert User.objects.filter(username="carol").exists()
    assert client.get("/decisions").status_code == 200


def test_signup_errors_are_400_next_to_the_field_and_create_nobody() -> None:
    response = Client().post(
        "/accounts/signup", {"username": "dave", "password1": PASSWORD, "password2": "other"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_password2_error"' in html
    assert 'aria-invalid="true"' in html
    assert not User.objects.filter(username="dave").exists()


def test_login_and_logout(alice: User) -> None:
    client = Client()
    assert client.get("/accounts/login").status_code == 200
    bad = client.post("/accounts/login", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 400
    assert client.get("/decisions").status_code == 302  # still anonymous
    good = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert good.status_code == 302
    assert client.get("/decisions").status_code == 200
    # Logging out is a POST (a GET could be forged by any page's <img>).
    assert client.get("/accounts/logout").status_code == 405
    assert client.post("/accounts/logout").status_code == 302
    response = client.get("/decisions")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login")


def test_my_decisions_shows_only_my_own(alice: User, bob: User) -> None:
    services.decision_create(usecase=CHAT, owner=alice)
    services.decision_create(usecase=BATCH, owner=bob)
    nobodys = parse_usecase({"title": "Nobody's", "interaction": "streaming"})
    services.decision_create(usecase=nobodys, owner=None)
    html = logged_in(alice).get("/decisions").content.decode()
    assert "Alice&#x27;s chat" in html
    assert "Bob&#x27;s batch" not in html and "Nobody" not in html
    assert 'class="state state-active"' in html
    assert "Revoke" in html


def test_my_decisions_shows_link_states(alice: User) -> None:
    decision, _ = services.decision_create(usecase=CHAT, owner=alice)
    first = decision.share_links.get()
    services.share_link_revoke(share=first, user=alice)
    second, _ = services.share_link_create(decision=decision)
    services.share_link_set_expiry(
        share=second, user=alice, expires_at=timezone.now() - timedelta(minutes=1)
    )
    services.share_link_create(decision=decision)
    html = logged_in(alice).get("/decisions").content.decode()
    states = re.findall(r'class="state state-(\w+)"', html)
    assert sorted(states) == ["active", "expired", "revoked"]


def test_owner_revokes_from_the_page_and_the_link_dies(alice: User) -> None:
    decision, token = services.decision_create(usecase=CHAT, owner=alice)
    share = decision.share_links.get()
    client = logged_in(alice)
    response = client.post(f"/share-links/{share.pk}/revoke", {"next": "decisions"})
    assert response.status_code == 302 and response["Location"] == "/decisions"
    assert Client().get(f"/s/{token}").status_code == 404


def unmasked(body: bytes) -> bytes:
    """A page without its CSRF token, which Django masks afresh on every render."""
    body = re.sub(rb'"X-CSRFToken": "[^"]+"', b"", body)
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", body)


def test_another_users_link_answers_exactly_as_a_missing_one(alice: User, bob: User) -> None:
    decision, token = services.decision_create(usecase=CHAT, owner=alice)
    share = decision.share_links.get()
    missing = share.pk + 1000
    intruder = logged_in(bob)
    for path, data in (
        ("/share-links/{}/revoke", {}),
        ("/share-links/{}/expiry", {"expires_in": "1h"}),
    ):
        theirs = intruder.post(path.format(share.pk), data)
        nothing = intruder.post(path.format(missing), data)
        # 404 both, and the same page: a 403 would tell bob the link exists.
        assert (theirs.status_code, nothing.status_code) == (404, 404), path
        assert unmasked(theirs.content) == unmasked(nothing.content), path
    confirm = intruder.get(f"/share-links/{share.pk}/revoke")
    assert confirm.status_code == 404
    assert unmasked(confirm.content) == unmasked(
        intruder.get(f"/share-links/{missing}/revoke").content
    )
    assert intruder.post(f"/d/{decision.pk}/share").status_code == 404
    share.refresh_from_db()
    assert share.revoked_at is None and share.expires_at is None
    assert Client().get(f"/s/{token}").status_code == 200
    # Anonymous visitors are sent to log in, and nothing changes either.
    anonymous = Client().post(f"/share-links/{share.pk}/revoke")
    assert anonymous.status_code == 302 and "/accounts/login" in anonymous["Location"]
    assert selectors.share_link_get_active(token=token) is not None


def test_revoke_asks_first_and_needs_post_and_csrf(alice: User) -> None:
    decision, token = services.decision_create(usecase=CHAT, owner=alice)
    share = decision.share_links.get()
    client = logged_in(alice)
    # A GET only asks: the confirmation page, with the button that posts.
    confirm = client.get(f"/share-links/{share.pk}/revoke?next=decisions")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Revoke this share link?" in html
    assert f'action="/share-links/{share.pk}/revoke"' in html
    assert 'name="next" value="decisions"' in html
    assert selectors.share_link_get_active(token=token) is not None
    strict = Client(enforce_csrf_checks=True)
    strict.login(username="alice", password=PASSWORD)
    assert strict.post(f"/share-links/{share.pk}/revoke").status_code == 403
    assert selectors.share_link_get_active(token=token) is not None


def test_owner_sets_an_expiry(alice: User) -> None:
    decision, token = services.decision_create(usecase=CHAT, owner=alice)
    share = decision.share_links.get()
    client = logged_in(alice)
    before = timezone.now()
    response = client.post(f"/share-links/{share.pk}/expiry", {"expires_in": "7d"})
    assert response.status_code == 302 and response["Location"] == f"/d/{decision.pk}"
    share.refresh_from_db()
    assert share.expires_at is not None
    assert before + timedelta(days=7) <= share.expires_at <= timezone.now() + timedelta(days=7)
    assert client.post(f"/share-links/{share.pk}/expiry", {"expires_in": "1y"}).status_code == 400
    client.post(f"/share-links/{share.pk}/expiry", {"expires_in": "never"})
    share.refresh_from_db()
    assert share.expires_at is None
    assert Client().get(f"/s/{token}").status_code == 200


@pytest.mark.parametrize("path", ["/share-links/999999/revoke", "/share-links/999999/expiry"])
def test_unknown_share_ids_are_404(alice: User, path: str) -> None:
    assert logged_in(alice).post(path, {"expires_in": "1h"}).status_code == 404


def test_owner_makes_a_new_link_after_revoking(alice: User) -> None:
    decision, old = services.decision_create(usecase=CHAT, owner=alice)
    client = logged_in(alice)
    client.post(f"/share-links/{decision.share_links.get().pk}/revoke")
    response = client.post(f"/d/{decision.pk}/share")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    match = re.search(r'value="http://testserver/s/([A-Za-z0-9_-]{43})"', page)
    assert match is not None and match.group(1) != old
    assert Client().get(f"/s/{match.group(1)}").status_code == 200
    assert Client().get(f"/s/{old}").status_code == 404


def test_anonymous_decisions_join_the_account_on_signup() -> None:
    client = Client()
    location = client.post("/", {"interaction": "streaming", "title": "Before signup"})["Location"]
    decision = Decision.objects.get()
    assert decision.owner is None
    client.post(
        "/accounts/signup", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD}
    )
    decision.refresh_from_db()
    assert decision.owner == User.objects.get(username="erin")
    assert "Before signup" in client.get("/decisions").content.decode()
    assert client.get(location).status_code == 200


def test_anonymous_decisions_join_the_account_on_login(alice: User) -> None:
    client = Client()
    client.post("/", {"interaction": "streaming"})
    client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert Decision.objects.get().owner == alice


def test_logged_in_users_decisions_are_theirs_and_private(alice: User, bob: User) -> None:
    client = logged_in(alice)
    location = client.post("/", {"interaction": "request_response"})["Location"]
    assert Decision.objects.get().owner == alice
    assert client.get(location).status_code == 200
    assert logged_in(bob).get(location).status_code == 404


def test_every_model_is_in_the_admin(alice: User) -> None:
    for model in apps.get_app_config("advisor").get_models():
        assert admin.site.is_registered(model), model
    User.objects.create_superuser("root", password=PASSWORD)
    decision, _ = services.decision_create(usecase=CHAT, owner=alice)
    client = logged_in(User.objects.get(username="root"))
    for model in (Decision, ShareLink):
        opts = model._meta
        assert client.get(f"/admin/{opts.app_label}/{opts.model_name}/").status_code == 200
    assert client.get(f"/admin/advisor/decision/{decision.pk}/change/").status_code == 200
    share = decision.share_links.get()
    assert client.get(f"/admin/advisor/sharelink/{share.pk}/change/").status_code == 200


def test_admin_cannot_add_tokenless_links_or_engine_free_decisions(alice: User) -> None:
    # Adding a ShareLink in the admin stored an empty token hash (a second add then
    # crashed on the unique hash: 500), and adding a Decision crashed on its
    # read-only result. Only the app makes them; the admin reads, revokes, expires.
    User.objects.create_superuser("root", password=PASSWORD)
    decision, _ = services.decision_create(usecase=CHAT, owner=alice)
    other, _ = services.decision_create(usecase=BATCH, owner=alice)
    share = decision.share_links.get()
    client = logged_in(User.objects.get(username="root"))
    link_form = {"decision": str(decision.pk), "expires_at_0": "", "expires_at_1": ""}
    for _ in range(2):
        assert client.post("/admin/advisor/sharelink/add/", link_form).status_code == 403
    assert client.post("/admin/advisor/decision/add/", {"title": "x"}).status_code == 403
    assert ShareLink.objects.count() == 2 and Decision.objects.count() == 2

    # Editing a link sets its expiry but never moves it to another decision.
    changed = client.post(
        f"/admin/advisor/sharelink/{share.pk}/change/",
        {
            "decision": str(other.pk),
            "expires_at_0": "2099-01-01",
            "expires_at_1": "00:00:00",
            "revoked_at_0": "",
            "revoked_at_1": "",
        },
    )
    assert changed.status_code == 302
    share.refresh_from_db()
    assert share.decision_id == decision.pk
    assert share.expires_at is not None and share.expires_at.year == 2099


def _unlabelled_inputs(html: str) -> list[str]:
    """Visible form controls without a <label for=...> naming them."""
    labelled = set(re.findall(r'<label[^>]*\sfor="([^"]+)"', html))
    missing = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if re.search(r'type="(hidden|submit)"', tag):
            continue
        match = re.search(r'\sid="([^"]+)"', tag)
        if match is None or match.group(1) not in labelled:
            missing.append(tag)
    return missing


def test_every_control_on_every_page_has_a_label(alice: User) -> None:
    client = logged_in(alice)
    location = client.post("/", {"interaction": "streaming", "encryption": "on"})["Location"]
    decision = Decision.objects.get()
    token = services.share_link_create(decision=decision)[1]
    pages = {
        "/": client,
        "/?example=support-chat": client,
        location: client,
        "/decisions": client,
        f"/s/{token}": Client(),
        "/accounts/login": Client(),
        "/accounts/signup": Client(),
    }
    for path, visitor in pages.items():
        response = visitor.get(path)
        assert response.status_code == 200, path
        assert _unlabelled_inputs(response.content.decode()) == [], path
    # The check looks at real controls: the questionnaire has one per question (7 radios
    # for the interaction; the format version is no question) and 4 unit choosers.
    controls = re.findall(r"<(?:input|select|textarea)\b[^>]*>", client.get("/").content.decode())
    assert len([c for c in controls if 'type="hidden"' not in c]) == 22 + 7 + 4
    invalid = client.post("/", {"interaction": "teleport"})
    assert _unlabelled_inputs(invalid.content.decode()) == []
