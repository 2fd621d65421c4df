"""Abuse and leaks: login, anonymous-creation and share-lookup rate limits (429 with
Retry-After), owner checks that answer exactly as for something missing, and the
Content-Security-Policy on error pages too.

The limits count in the cache (local memory here, emptied before each test by
tests/web/conftest.py; Redis across processes: tests/runs/test_processes.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from pytest_django.fixtures import Settings

from advisor import ratelimit, services
from advisor.middleware import POLICY
from advisor.models import Decision
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"
CHAT = {"title": "Support chat", "interaction": "bidirectional", "realtime": True}
DOCUMENT = {"title": "Orders", "interaction": "fire_and_forget", "receiver_may_be_offline": True}


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


def from_address(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def assert_429(response: Any) -> None:
    assert response.status_code == 429, response.content[:300]
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert response["Content-Security-Policy"] == POLICY


# --- logins --------------------------------------------------------------------------


def test_site_login_refuses_the_right_password_after_40_wrong_ones(alice: User) -> None:
    client = Client()
    answers = [
        client.post("/accounts/login", {"username": "alice", "password": f"guess-{i}"})
        for i in range(40)
    ]
    assert answers[0].status_code == 400  # a wrong password, told as such
    assert_429(answers[-1])
    right = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert_429(right)
    assert "_auth_user_id" not in client.session


def test_site_login_limit_per_account_holds_across_addresses(alice: User) -> None:
    for i in range(ratelimit.LOGIN_PER_ACCOUNT.count):
        wrong = from_address(f"10.0.0.{i}").post(
            "/accounts/login", {"username": "alice", "password": "nope"}
        )
        assert wrong.status_code == 400
    right = from_address("10.0.1.1").post(
        "/accounts/login", {"username": "ALICE ", "password": PASSWORD}
    )
    assert_429(right)


def test_site_login_limit_per_address_holds_across_accounts(alice: User) -> None:
    client = from_address("10.0.2.2")
    for i in range(ratelimit.LOGIN_PER_ADDRESS.count):
        answer = client.post("/accounts/login", {"username": f"user{i}", "password": "x"})
        assert answer.status_code == 400
    assert_429(client.post("/accounts/login", {"username": "alice", "password": PASSWORD}))
    # Another address logs in to the same account as usual.
    other = from_address("10.0.2.3")
    answer = other.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302


def test_logins_within_the_limits_work(alice: User) -> None:
    client = Client()
    client.post("/accounts/login", {"username": "alice", "password": "wrong"})
    answer = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_admin_login_refuses_the_right_password_after_40_wrong_ones(admin_user: User) -> None:
    client = Client()
    first = client.post("/admin/login/", {"username": "root", "password": "guess"})
    assert first.status_code == 200 and b"errornote" in first.content
    for i in range(39):
        client.post("/admin/login/", {"username": "root", "password": f"guess-{i}"})
    right = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert_429(right)
    assert client.get("/admin/").status_code == 302  # still sent to log in


def test_admin_login_still_works_within_the_limits(admin_user: User) -> None:
    client = Client()
    answer = client.post(
        "/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"}
    )
    assert answer.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_scale_setting_raises_the_login_limits(alice: User, settings: Settings) -> None:
    settings.RATE_LIMIT_SCALE = 5
    client = Client()
    for _ in range(40):
        client.post("/accounts/login", {"username": "alice", "password": "nope"})
    answer = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302


# --- anonymous recommendations -------------------------------------------------------


def test_anonymous_api_posts_beyond_the_limit_get_429_and_store_nothing() -> None:
    client = from_address("10.1.0.1")
    limit = ratelimit.ANONYMOUS_RECOMMENDATIONS.count
    for _ in range(limit):
        assert client.post("/api/recommendations", DOCUMENT, "application/json").status_code == 201
    stored = Decision.objects.count()
    refused = client.post("/api/recommendations", DOCUMENT, "application/json")
    assert_429(refused)
    assert refused.json()["detail"].startswith("Too many requests")
    assert Decision.objects.count() == stored
    # Another address is not affected.
    other = from_address("10.1.0.2").post("/api/recommendations", DOCUMENT, "application/json")
    assert other.status_code == 201


def test_invalid_documents_do_not_use_up_the_limit() -> None:
    client = from_address("10.1.1.1")
    for _ in range(ratelimit.ANONYMOUS_RECOMMENDATIONS.count + 5):
        bad = client.post("/api/recommendations", {"interaction": "telepathy"}, "application/json")
        assert bad.status_code == 422
    assert client.post("/api/recommendations", DOCUMENT, "application/json").status_code == 201


def test_a_logged_in_user_is_not_under_the_anonymous_limit(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    client.get("/")  # the CSRF cookie
    token = client.cookies["csrftoken"].value
    for _ in range(ratelimit.ANONYMOUS_RECOMMENDATIONS.count + 3):
        answer = client.post(
            "/api/recommendations", DOCUMENT, "application/json", headers={"X-CSRFToken": token}
        )
        assert answer.status_code == 201


def test_anonymous_questionnaire_posts_beyond_the_limit_get_429() -> None:
    client = from_address("10.1.2.1")
    form = {"title": "Orders", "interaction": "fire_and_forget"}
    first = client.post("/", form)
    assert first.status_code == 302, first.content[:500]
    for _ in range(ratelimit.ANONYMOUS_RECOMMENDATIONS.count - 1):
        client.post("/", form)
    stored = Decision.objects.count()
    assert_429(client.post("/", form))
    assert Decision.objects.count() == stored


# --- share links ---------------------------------------------------------------------


def test_share_lookups_are_limited_per_address(alice: User) -> None:
    _, token = services.decision_create(usecase=parse_usecase(CHAT), owner=alice)
    client = from_address("10.2.0.1")
    limit = ratelimit.SHARE_LOOKUPS.count
    answers = [client.get(f"/s/guess-{i}").status_code for i in range(limit - 1)]
    assert set(answers) == {404}
    assert client.get(f"/s/{token}").status_code == 200
    refused = client.get(f"/s/{token}")
    assert_429(refused)
    assert refused["Referrer-Policy"] == "no-referrer"  # the share headers, still
    assert_429(client.get(f"/api/recommendations/{token}"))
    assert from_address("10.2.0.2").get(f"/s/{token}").status_code == 200


def test_share_lookups_through_the_api_count_too(alice: User) -> None:
    _, token = services.decision_create(usecase=parse_usecase(CHAT), owner=alice)
    client = from_address("10.2.1.1")
    for i in range(ratelimit.SHARE_LOOKUPS.count):
        assert client.get(f"/api/recommendations/guess-{i}").status_code == 404
    refused = client.get(f"/api/recommendations/{token}")
    assert_429(refused)
    assert refused.json()["retry_after"] >= 1


# --- owner checks ---------------------------------------------------------------------


def unmasked(body: bytes) -> bytes:
    """The page without its per-request CSRF token."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", body)


def test_another_users_decision_answers_exactly_as_a_missing_one(alice: User) -> None:
    bob = User.objects.create_user("bob", password=PASSWORD)
    decision, token = services.decision_create(usecase=parse_usecase(CHAT), owner=alice)
    share = decision.share_links.get()
    missing = Decision.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1000
    intruder = Client()
    intruder.force_login(bob)
    for template, method in (
        ("/d/{}", "get"),
        ("/d/{}/edit", "get"),
        ("/d/{}/duplicate", "get"),
        ("/d/{}/delete", "get"),
        ("/d/{}/delete", "post"),
        ("/d/{}/share", "post"),
        ("/d/{}/decision.md", "get"),
        ("/d/{}/recommendation.json", "get"),
    ):
        theirs = getattr(intruder, method)(template.format(decision.pk))
        nothing = getattr(intruder, method)(template.format(missing))
        assert (theirs.status_code, nothing.status_code) == (404, 404), template
        assert unmasked(theirs.content) == unmasked(nothing.content), template
    for template in ("/share-links/{}/revoke", "/share-links/{}/expiry"):
        theirs = intruder.post(template.format(share.pk), {"expires_in": "1h"})
        nothing = intruder.post(template.format(share.pk + 1000), {"expires_in": "1h"})
        assert (theirs.status_code, nothing.status_code) == (404, 404), template
        assert unmasked(theirs.content) == unmasked(nothing.content), template
    assert Decision.objects.filter(pk=decision.pk).exists()
    assert Client().get(f"/s/{token}").status_code == 200


# --- the policy on error pages ---------------------------------------------------------


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("boom", boom)]


@pytest.mark.urls("tests.web.test_hardening")
def test_a_server_error_page_carries_the_policy() -> None:
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    assert response["Content-Security-Policy"] == POLICY


def test_error_answers_carry_the_policy(alice: User) -> None:
    client = Client()
    answers = {
        "404": client.get("/no-such-page"),
        "405": client.put("/accounts/login"),
        "400": client.post("/accounts/login", {"username": "alice", "password": "x"}),
        "403 csrf": Client(enforce_csrf_checks=True).post("/accounts/login", {}),
        "413/400 api": client.post("/api/recommendations", "{", "application/json"),
    }
    for name, response in answers.items():
        assert response.status_code >= 400, name
        assert response["Content-Security-Policy"] == POLICY, name


# --- the address behind a proxy ------------------------------------------------------


def test_forwarded_for_counts_only_from_a_trusted_proxy(settings: Settings) -> None:
    from django.test import RequestFactory

    def address(remote: str, forwarded: str | None = None) -> str:
        request = RequestFactory().get("/", REMOTE_ADDR=remote)
        if forwarded is not None:
            request.META["HTTP_X_FORWARDED_FOR"] = forwarded
        return ratelimit.client_address(request)

    # No trusted proxy: a client's header is never believed.
    assert address("203.0.113.9", "10.9.9.9") == "203.0.113.9"
    settings.TRUSTED_PROXIES = ["127.0.0.1/32", "10.0.0.0/24"]
    # From the proxy: the last hop it did not add itself, whatever the client wrote first.
    assert address("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    assert address("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.0.0.5") == "198.51.100.7"
    assert address("127.0.0.1") == "127.0.0.1"
    # Not from the proxy: the header is ignored.
    assert address("203.0.113.9", "198.51.100.7") == "203.0.113.9"


def test_logins_behind_a_proxy_are_limited_per_client_not_for_everyone(
    alice: User, settings: Settings
) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    guesser = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for i in range(ratelimit.LOGIN_PER_ADDRESS.count + 1):
        guesser.post("/accounts/login", {"username": f"u{i}", "password": "x"})
    assert_429(guesser.post("/accounts/login", {"username": "u0", "password": "x"}))
    someone_else = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8")
    answer = someone_else.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302


# --- https ---------------------------------------------------------------------------


def test_production_https_redirects_pages_but_not_health_checks(settings: Settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    page = Client().get("/knowledge")
    assert page.status_code == 301 and page["Location"] == "https://testserver/knowledge"
    assert Client().get("/healthz").status_code == 200  # load balancers check over http
    assert Client().get("/readyz").status_code == 200
    secure = Client().get("/knowledge", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert secure["Content-Security-Policy"] == POLICY
