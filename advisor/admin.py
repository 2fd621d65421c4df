from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from advisor.models import ApiToken, Decision, ShareLink


class ShareLinkInline(admin.TabularInline):
    model = ShareLink
    extra = 0
    # Links are made by the app, which alone sees the token; the admin only reads
    # and revokes or expires them. A link added here would have no token at all
    # (and a second one would collide on the empty hash), so adding is not offered.
    fields = ("token_hash", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("token_hash", "created_at")
    can_delete = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "winner_method", "kb_version", "created_at")
    list_filter = ("kb_version", "created_at")
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("usecase", "result", "kb_version", "created_at")
    inlines = (ShareLinkInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A decision is the engine's frozen answer to a use case; the admin cannot
        # make one (its result is read-only here), the questionnaire and API do.
        return False

    @admin.display(description="recommended")
    def winner_method(self, obj: Decision) -> str:
        winner = obj.winner
        return str(winner.get("method", "")) if winner else ""


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ("id", "decision", "created_at", "expires_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    raw_id_fields = ("decision",)
    # A link keeps pointing at the decision it was made for: moving it would show
    # someone else's recommendation to whoever holds the token.
    readonly_fields = ("decision", "token_hash", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    raw_id_fields = ("user",)
    # Tokens are made by `manage.py create_api_token`, which alone sees the token;
    # the admin can only revoke one.
    readonly_fields = ("user", "token_hash", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
