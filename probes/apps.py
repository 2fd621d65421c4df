from __future__ import annotations

from django.apps import AppConfig


class ProbesConfig(AppConfig):
    name = "probes"
    verbose_name = "Switchboard probes"
    default_auto_field = "django.db.models.BigAutoField"
