"""Probe runs in the admin: read-only, since rows change only through the services.

Target URLs are shown masked; the encrypted secret is never shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from probes.models import ProbeJob, ProbeJobResult, ProbeRun, VantagePoint


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProbeJobInline(admin.TabularInline):
    model = ProbeJob
    extra = 0
    fields = ("position", "vantage_point", "url", "method", "status", "attempts", "samples_done")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProbeRun)
class ProbeRunAdmin(_ReadOnly):
    list_display = ("id", "decision", "owner", "status", "created_at", "finished_at")
    list_filter = ("status", "created_at")
    raw_id_fields = ("decision", "owner")
    exclude = ("charts",)
    inlines = (ProbeJobInline,)


@admin.register(ProbeJob)
class ProbeJobAdmin(_ReadOnly):
    list_display = ("id", "run", "url", "vantage_point", "status", "attempts", "finished_at")
    list_filter = ("status", "vantage_point")
    exclude = ("secret_url",)
    raw_id_fields = ("run",)


@admin.register(ProbeJobResult)
class ProbeJobResultAdmin(_ReadOnly):
    list_display = ("id", "job", "attempt", "failure", "created_at")
    raw_id_fields = ("job",)


@admin.register(VantagePoint)
class VantagePointAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "last_seen", "stopped_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
