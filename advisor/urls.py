from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from advisor import api, health, views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Before the admin's own URLs: its login form, with the login rate limits.
    path("admin/login/", views.admin_login),
    path("admin/", admin.site.urls),
    # The JSON API (advisor/api.py) is mounted on the next line.
    path("api/", api.api.urls),
    path("", views.home, name="home"),
    path("preview", views.preview, name="preview"),
    path("knowledge", views.knowledge, name="knowledge"),
    path("d/<int:decision_id>", views.decision_detail, name="decision"),
    path("d/<int:decision_id>/share", views.share_create, name="share_create"),
    path("d/<int:decision_id>/edit", views.decision_edit, name="decision_edit"),
    path("d/<int:decision_id>/duplicate", views.decision_duplicate, name="decision_duplicate"),
    path("d/<int:decision_id>/delete", views.decision_delete, name="decision_delete"),
    path("d/<int:decision_id>/decision.md", views.decision_madr, name="decision_madr"),
    path("d/<int:decision_id>/recommendation.json", views.decision_json, name="decision_json"),
    path("compare", views.decision_compare, name="compare"),
    path("decisions", views.decision_list, name="decisions"),
    path("share-links/<int:share_id>/revoke", views.share_revoke, name="share_revoke"),
    path("share-links/<int:share_id>/expiry", views.share_expiry, name="share_expiry"),
    path("s/<str:token>", views.share_page, name="share"),
    path("s/<str:token>/decision.md", views.share_madr, name="share_madr"),
    path("s/<str:token>/recommendation.json", views.share_json, name="share_json"),
    path("accounts/signup", views.signup, name="signup"),
    path("accounts/login", views.SwitchboardLoginView.as_view(), name="login"),
    path("accounts/logout", auth_views.LogoutView.as_view(), name="logout"),
    # Probe runs: the decision page's panel, run pages and their progress fragment.
    path("", include("probes.urls")),
]
