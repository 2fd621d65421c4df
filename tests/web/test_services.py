"""Services and selectors for decisions and share links, against the real database."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.utils import timezone

from advisor import engine, selectors, services
from advisor.models import Decision, ShareLink
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db


BATCH = parse_usecase(
    {"title": "Nightly batch", "interaction": "file_transfer", "file_bytes": 2_000_000_000}
)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="a-long-passphrase-1")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="a-long-passphrase-2")


def test_decision_create_freezes_the_engine_answer(alice: User) -> None:
    decision, token = services.decision_create(usecase=BATCH, owner=alice)
    expected = engine.recommend(BATCH)
    decision.refresh_from_db()
    assert decision.owner == alice
    assert decision.title == "Nightly batch"
    assert decision.usecase == BATCH.model_dump(mode="json")
    assert decision.result == expected.contract_json()
    assert decision.kb_version == expected.kb_version == engine.KB_VERSION
    assert decision.result["ranking"][0]["method"] == "file_transfer"
    share = decision.share_links.get()
    assert share.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert share.expires_at is None and share.revoked_at is None


def test_tokens_are_long_unique_and_url_safe() -> None:
    tokens = {services.decision_create(usecase=BATCH, owner=None)[1] for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) >= 43  # 32 random bytes
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert services.share_url(token) == f"/s/{token}"


def test_decision_create_stores_nothing_when_the_share_link_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A duplicate hash (forced here) must roll the decision back with it.
    existing, _ = services.decision_create(usecase=BATCH, owner=None)
    taken = existing.share_links.get().token_hash
    monkeypatch.setattr(services, "token_hash", lambda token: taken)
    with pytest.raises(IntegrityError):
        services.decision_create(usecase=BATCH, owner=None)
    assert Decision.objects.count() == 1
    assert ShareLink.objects.count() == 1


def test_active_share_link_lookup(alice: User) -> None:
    decision, token = services.decision_create(usecase=BATCH, owner=alice)
    share = selectors.share_link_get_active(token=token)
    assert share is not None and share.decision == decision
    assert selectors.share_link_get_active(token=token + "x") is None
    assert selectors.share_link_get_active(token="") is None
    assert selectors.share_link_get_active(token=share.token_hash) is None  # the hash is no key


def test_revoke_only_by_the_owner(alice: User, bob: User) -> None:
    decision, token = services.decision_create(usecase=BATCH, owner=alice)
    share = decision.share_links.get()
    for intruder in (bob, AnonymousUser()):
        with pytest.raises(PermissionDenied):
            services.share_link_revoke(share=share, user=intruder)
    assert selectors.share_link_get_active(token=token) is not None

    services.share_link_revoke(share=share, user=alice)
    assert selectors.share_link_get_active(token=token) is None
    first = ShareLink.objects.get(pk=share.pk).revoked_at
    services.share_link_revoke(share=ShareLink.objects.get(pk=share.pk), user=alice)
    assert ShareLink.objects.get(pk=share.pk).revoked_at == first


def test_anonymous_decisions_links_cannot_be_revoked_by_anyone(alice: User) -> None:
    decision, _ = services.decision_create(usecase=BATCH, owner=None)
    with pytest.raises(PermissionDenied):
        services.share_link_revoke(share=decision.share_links.get(), user=alice)


def test_expiry_only_by_the_owner_and_it_ends_the_link(alice: User, bob: User) -> None:
    decision, token = services.decision_create(usecase=BATCH, owner=alice)
    share = decision.share_links.get()
    past = timezone.now() - timedelta(minutes=1)
    with pytest.raises(PermissionDenied):
        services.share_link_set_expiry(share=share, user=bob, expires_at=past)
    assert selectors.share_link_get_active(token=token) is not None

    services.share_link_set_expiry(share=share, user=alice, expires_at=past)
    assert selectors.share_link_get_active(token=token) is None
    assert ShareLink.objects.get(pk=share.pk).state == "expired"
    services.share_link_set_expiry(share=share, user=alice, expires_at=None)
    assert selectors.share_link_get_active(token=token) is not None


def test_decision_selectors_are_per_user(alice: User, bob: User) -> None:
    mine, _ = services.decision_create(usecase=BATCH, owner=alice)
    theirs, _ = services.decision_create(usecase=BATCH, owner=bob)
    anonymous, _ = services.decision_create(usecase=BATCH, owner=None)
    assert list(selectors.decision_list_for_user(user=alice)) == [mine]
    assert list(selectors.decision_list_for_user(user=AnonymousUser())) == []
    assert selectors.decision_get_for_user(user=alice, decision_id=mine.pk) == mine
    assert selectors.decision_get_for_user(user=alice, decision_id=theirs.pk) is None
    assert selectors.decision_get_for_user(user=alice, decision_id=anonymous.pk) is None


def test_visitor_selector_lets_the_anonymous_creator_in_by_session(alice: User) -> None:
    anonymous, _ = services.decision_create(usecase=BATCH, owner=None)
    owned, _ = services.decision_create(usecase=BATCH, owner=alice)
    get = selectors.decision_get_for_visitor
    assert get(user=AnonymousUser(), decision_id=anonymous.pk, session_decision_ids=[]) is None
    assert (
        get(user=AnonymousUser(), decision_id=anonymous.pk, session_decision_ids=[anonymous.pk])
        == anonymous
    )
    # A session that lists an owned decision does not open it for someone else.
    assert get(user=AnonymousUser(), decision_id=owned.pk, session_decision_ids=[owned.pk]) is None
    assert get(user=alice, decision_id=owned.pk, session_decision_ids=[]) == owned


def test_claim_gives_only_unowned_decisions_to_the_user(alice: User, bob: User) -> None:
    anonymous, _ = services.decision_create(usecase=BATCH, owner=None)
    bobs, _ = services.decision_create(usecase=BATCH, owner=bob)
    assert services.decision_claim(decision_ids=[anonymous.pk, bobs.pk], user=alice) == 1
    assert Decision.objects.get(pk=anonymous.pk).owner == alice
    assert Decision.objects.get(pk=bobs.pk).owner == bob


def test_examples_are_all_valid_and_named_safely() -> None:
    names = [e.name for e in selectors.example_list()]
    assert names == sorted(names)
    for name in names:
        assert selectors.example_get(name=name) is not None
    assert selectors.example_get(name="../examples/support-chat") is None
    assert selectors.example_get(name="support-chat.json") is None
