"""Write paths for decisions and share links.

The engine runs once, here, when a decision is created; everything that shows
a decision afterwards reads the stored result. Tokens leave this module once,
as the return value, and only their SHA-256 is stored.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from advisor import engine, plots
from advisor.models import Decision, ShareLink
from advisor.recommendation import Recommendation
from advisor.selectors import token_hash
from advisor.usecase import UseCase

UserLike = User | AnonymousUser


def _owns(decision: Decision, user: UserLike) -> bool:
    owner_id = decision.owner_id
    return bool(user.is_authenticated and owner_id is not None and owner_id == user.pk)


def share_link_create(*, decision: Decision) -> tuple[ShareLink, str]:
    """A new link for ``decision``; the raw token is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    share = ShareLink.objects.create(decision=decision, token_hash=token_hash(token))
    return share, token


def decision_figures(*, result: dict[str, Any]) -> dict[str, Any] | None:
    """The charts of a frozen result, as plotly JSON: built once, stored with the decision."""
    recommendation = Recommendation.from_stored(result)
    if recommendation is None:
        return None
    ranking_figure, contribution_figure = plots.figures(recommendation.ranking)
    return {"ranking": ranking_figure, "contributions": contribution_figure}


def decision_create(
    *,
    usecase: UseCase,
    owner: User | None,
    previous: Decision | None = None,
    units: dict[str, str] | None = None,
) -> tuple[Decision, str]:
    """Run the engine, freeze its answer with a share link; return (decision, raw token).

    With ``previous``, the new decision is the next revision of that one (an edit of
    its answers); ``previous`` itself is not touched. ``units`` records the unit each
    quantity was typed in on the form ({"file_bytes": "GB"}), to show it back that way.
    """
    # The typed answer once: its contract JSON is what gets stored, and its ranking
    # draws the charts, stored too so that no page builds them again.
    recommendation = engine.recommend(usecase)
    result = recommendation.contract_json()
    ranking_figure, contribution_figure = plots.figures(recommendation.ranking)
    figures = {"ranking": ranking_figure, "contributions": contribution_figure}
    with transaction.atomic():
        decision = Decision.objects.create(
            owner=owner,
            title=usecase.title,
            usecase=usecase.model_dump(mode="json"),
            result=result,
            kb_version=str(result.get("kb_version") or engine.KB_VERSION),
            previous=previous,
            revision=previous.revision + 1 if previous is not None else 1,
            figures=figures,
            units=dict(units or {}),
        )
        _, token = share_link_create(decision=decision)
    return decision, token


def decision_revise(
    *,
    decision: Decision,
    usecase: UseCase,
    user: UserLike,
    units: dict[str, str] | None = None,
) -> tuple[Decision, str]:
    """Edited answers: a new revision of ``decision`` with its own link; only its owner may."""
    if not _owns(decision, user) or not isinstance(user, User):
        raise PermissionDenied("only the owner of a decision can edit it")
    return decision_create(usecase=usecase, owner=user, previous=decision, units=units)


def decision_delete(*, decision: Decision, user: UserLike) -> None:
    """Delete a decision and its share links (they stop working); only its owner may.

    Later revisions stay; they only lose the pointer to this one.
    """
    if not _owns(decision, user):
        raise PermissionDenied("only the owner of a decision can delete it")
    decision.delete()


def share_link_create_for_owner(*, decision: Decision, user: UserLike) -> tuple[ShareLink, str]:
    """A fresh link, e.g. after revoking a leaked one; only the decision's owner may."""
    if not _owns(decision, user):
        raise PermissionDenied("only the owner of a decision can create share links for it")
    return share_link_create(decision=decision)


def share_link_revoke(*, share: ShareLink, user: UserLike) -> None:
    """Revoke a link for good; only the decision's owner may. A second revoke changes nothing."""
    if not _owns(share.decision, user):
        raise PermissionDenied("only the owner of a decision can revoke its share links")
    if share.revoked_at is None:
        share.revoked_at = timezone.now()
        share.save(update_fields=["revoked_at"])


def share_link_set_expiry(*, share: ShareLink, user: UserLike, expires_at: datetime | None) -> None:
    """Set (or clear, with None) when a link stops working; only the decision's owner may."""
    if not _owns(share.decision, user):
        raise PermissionDenied("only the owner of a decision can change its share links")
    share.expires_at = expires_at
    share.save(update_fields=["expires_at"])


def decision_claim(*, decision_ids: list[int], user: User) -> int:
    """Give an anonymous visitor's decisions (ids kept in their session) to the account
    they just signed up or logged in with; decisions someone already owns stay theirs."""
    if not decision_ids:
        return 0
    return Decision.objects.filter(pk__in=decision_ids, owner__isnull=True).update(owner=user)


def share_url(token: str) -> str:
    """The share page's path, ``/s/<token>``; views and the API make it absolute."""
    # A plain path rather than reverse(): the API calls this too, and the contract fixes it.
    return f"/s/{token}"
