"""Read paths for decisions and share links, used by the views and the API."""

from __future__ import annotations

import hashlib

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.utils import timezone

from advisor.models import Decision, ShareLink

# secrets.token_urlsafe(32) gives 43 characters; anything much longer is not a token
# and is refused before hashing, so a huge path costs nothing.
MAX_TOKEN_LENGTH = 128


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def share_link_get_active(*, token: str) -> ShareLink | None:
    """The live share link for ``token``; None when unknown, revoked or expired alike.

    One answer for all three, so a caller cannot tell a revoked link from one
    that never existed.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = timezone.now()
    return (
        ShareLink.objects.select_related("decision")
        .filter(token_hash=token_hash(token), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )


def decision_list_for_user(*, user: User | AnonymousUser) -> QuerySet[Decision]:
    """The user's own decisions, newest first, with their share links prefetched."""
    if not user.is_authenticated:
        return Decision.objects.none()
    return Decision.objects.filter(owner_id=user.pk).prefetch_related("share_links")


def decision_get_for_user(*, user: User | AnonymousUser, decision_id: int) -> Decision | None:
    """The decision if ``user`` owns it, else None (so others get a 404, not a 403)."""
    return decision_list_for_user(user=user).filter(pk=decision_id).first()


def share_link_get_for_user(*, user: User | AnonymousUser, share_id: int) -> ShareLink | None:
    if not user.is_authenticated:
        return None
    return (
        ShareLink.objects.select_related("decision")
        .filter(pk=share_id, decision__owner_id=user.pk)
        .first()
    )
