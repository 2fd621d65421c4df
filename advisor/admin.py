from __future__ import annotations

from django.contrib import admin

from advisor.models import Decision, ShareLink


class ShareLinkInline(admin.TabularInline):
    model = ShareLink
    extra = 0
    # Links are made by the app, which alone sees the token; the admin only reads
    # and revokes or expires them.
    fields = ("token_hash", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("token_hash", "created_at")
    can_delete = True


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "winner_method", "kb_version", "created_at")
    list_filter = ("kb_version", "created_at")
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("usecase", "result", "kb_version", "created_at")
    inlines = (ShareLinkInline,)

    @admin.display(description="recommended")
    def winner_method(self, obj: Decision) -> str:
        winner = obj.winner
        return str(winner.get("method", "")) if winner else ""


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ("id", "decision", "created_at", "expires_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    raw_id_fields = ("decision",)
    readonly_fields = ("token_hash", "created_at")
