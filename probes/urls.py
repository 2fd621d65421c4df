from __future__ import annotations

from django.urls import path

from probes import views

urlpatterns = [
    path("d/<int:decision_id>/probe", views.probe_plan, name="probe_plan"),
    path("runs/<int:run_id>", views.run_detail, name="probe_run"),
    path("runs/<int:run_id>/progress", views.run_progress, name="probe_run_progress"),
]
