"""Stored recommendations and the links that share them.

A :class:`Decision` freezes what the engine said (``result``, the
``advise --format json`` object) together with the knowledge-base version it
came from, so a shared page shows the same thing tomorrow whatever the engine
says by then. A :class:`ShareLink` keeps only the SHA-256 of its token: a
database leak does not leak working links.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Decision(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="decisions",
        help_text="Empty for a recommendation made by an anonymous visitor.",
    )
    title = models.CharField(max_length=200, blank=True)
    usecase = models.JSONField(help_text="The use-case document, all fields, as validated.")
    result = models.JSONField(help_text="The engine's answer, frozen: contract_json().")
    kb_version = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Any change (a title fixed in the admin) makes new keys for the cached pages.
    updated_at = models.DateTimeField(auto_now=True)
    # Editing the answers makes a new decision that points at the one it was edited
    # from; the old one and its links stay exactly as they were.
    previous = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="revisions",
        help_text="The decision this one was edited from.",
    )
    revision = models.PositiveIntegerField(
        default=1, help_text="1 for a new decision, one more with every edit."
    )
    units = models.JSONField(
        default=dict,
        blank=True,
        help_text="The unit each quantity was given in on the form, to show it back in it.",
    )
    figures = models.JSONField(
        null=True,
        blank=True,
        help_text="The charts' plotly JSON, built once from the frozen result.",
    )

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.heading or f"Decision {self.pk}"

    @property
    def heading(self) -> str:
        """The title on one line, "" when it is only blanks, so pages fall back to a default."""
        return " ".join(self.title.split())

    @property
    def ranking(self) -> list[dict[str, Any]]:
        ranking = self.result.get("ranking", []) if isinstance(self.result, dict) else []
        return ranking if isinstance(ranking, list) else []

    @property
    def winner(self) -> dict[str, Any] | None:
        return self.ranking[0] if self.ranking else None


class ShareLink(models.Model):
    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(
        max_length=64, unique=True, help_text="SHA-256 (hex) of the token; the token is not kept."
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Share link {self.pk} of {self.decision}"

    def is_active(self, now: Any = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def state(self) -> str:
        """What the owner reads in "My decisions": active, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class ApiToken(models.Model):
    """A bearer token for the API (``manage.py create_api_token USERNAME``).

    Only the SHA-256 of the token is kept, like a share link's: the token is
    printed once when it is made and cannot be shown again.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    token_hash = models.CharField(
        max_length=64, unique=True, help_text="SHA-256 (hex) of the token; the token is not kept."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"API token {self.pk} of {self.user}"
