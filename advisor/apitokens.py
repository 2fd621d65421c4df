"""API tokens: ``Authorization: Bearer TOKEN`` for scripts and servers.

``python manage.py create_api_token USERNAME`` makes one and prints it once;
only its SHA-256 is stored (:class:`advisor.models.ApiToken`), so a database
leak leaks no working token. A request that sends a bearer token is that
token's user's, and needs no CSRF token (no browser sends it on its own); a
request without one falls back to the session.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django.utils import timezone

from advisor.models import ApiToken
from advisor.selectors import token_hash

# Tokens are "sb_" + 43 URL-safe characters; anything far longer is not one.
PREFIX = "sb_"
MAX_TOKEN_LENGTH = 128


class InvalidToken(Exception):
    """The request sent a bearer token that opens nothing."""


def api_token_create(*, user: User) -> tuple[ApiToken, str]:
    """A new token for ``user``; the raw token is returned once and never stored."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, token_hash=token_hash(token))
    return row, token


def bearer_token(request: HttpRequest) -> str | None:
    """The bearer token the request sends, or None when it sends none."""
    header = str(request.META.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def user_for_token(token: str) -> User:
    """The active user a token belongs to; InvalidToken when it belongs to nobody."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("the bearer token is not valid")
    row = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=token_hash(token), revoked_at__isnull=True)
        .first()
    )
    if row is None or not row.user.is_active:
        raise InvalidToken("the bearer token is not valid")
    # At most one write a minute per token: a busy script must not turn every
    # read into a write.
    now = timezone.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


def request_user(request: HttpRequest) -> tuple[User | AnonymousUser, bool]:
    """(user, by_token): the bearer token's user, else the session's user.

    Raises InvalidToken when a bearer token is sent and opens nothing: a script
    with a revoked token must hear so, not carry on as anonymous.
    """
    token = bearer_token(request)
    if token is not None:
        return user_for_token(token), True
    user = getattr(request, "user", None)
    return (user if user is not None else AnonymousUser()), False
