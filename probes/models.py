"""Probe runs as rows: the source of truth for what was asked and what was measured.

A :class:`ProbeRun` is one press of "Run" (or one ``POST /api/probe-runs``) on a
decision: its targets, settings and vantage points. It has one
:class:`ProbeJob` per target and vantage point; a job is what one Celery task
claims and measures. Both move through one state machine::

    queued -> running -> done
                      -> failed        (a job that gave up, with its reason)
    running -> queued                  (the sweeper, when the worker was lost)

A job's measurement is one :class:`ProbeJobResult`, unique per job (a
one-to-one row), written in the same transaction that ends the job. When the
last job of a run ends, the run stores what the evidence changed, the advice
recomputed with it, and its charts, once; pages only read them.

A :class:`VantagePoint` is a worker queue that has registered itself: its
workers write ``last_seen`` every few seconds, so one that stopped shows stale.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


ACTIVE = (Status.QUEUED, Status.RUNNING)
ENDED = (Status.DONE, Status.FAILED)


class VantagePoint(models.Model):
    name = models.CharField(max_length=64, unique=True, help_text="The worker queue (-Q NAME).")
    hostname = models.CharField(max_length=255, blank=True, help_text="The worker last seen.")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="When its last worker shut down cleanly."
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.stopped_at is not None and self.stopped_at >= self.last_seen:
            return False
        return self.last_seen >= now - timedelta(seconds=settings.PROBE_STALE_AFTER_S)

    @property
    def live(self) -> bool:
        return self.is_live()

    @property
    def seen_ago_s(self) -> float:
        return max(0.0, (timezone.now() - self.last_seen).total_seconds())


class ProbeRun(models.Model):
    decision = models.ForeignKey(
        "advisor.Decision", on_delete=models.CASCADE, related_name="probe_runs"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="probe_runs"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    count = models.PositiveSmallIntegerField()
    interval_ms = models.FloatField()
    timeout_s = models.FloatField()
    throughput = models.BooleanField(default=False)
    insecure = models.BooleanField(default=False)
    vantage_points = models.JSONField(default=list, help_text="The queue names, in order.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ending_at = models.DateTimeField(
        null=True, blank=True, help_text="When a process took on ending it (one does)."
    )
    reason = models.TextField(blank=True, help_text="Why it failed, or which jobs gave up.")
    # Filled once, when the last job ends.
    measurements = models.JSONField(default=list, help_text="What the engine was given.")
    evidence = models.JSONField(default=list, help_text="What the evidence changed (notes).")
    advice = models.JSONField(null=True, blank=True, help_text="advise JSON with the evidence.")
    charts = models.JSONField(default=list, help_text="Plotly figures, computed at the end.")

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Probe run {self.pk} of {self.decision_id}"

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class ProbeJob(models.Model):
    run = models.ForeignKey(ProbeRun, on_delete=models.CASCADE, related_name="jobs")
    position = models.PositiveSmallIntegerField(help_text="The target's place in the run.")
    vantage_point = models.CharField(max_length=64)
    url = models.CharField(max_length=2048, help_text="The target URL, any password masked.")
    secret_url = models.TextField(
        blank=True,
        help_text="The full URL, Fernet-encrypted, when it carries a secret; erased at the end.",
    )
    scheme = models.CharField(max_length=32)
    destination = models.CharField(max_length=255, help_text="The host, as the guard reads it.")
    method = models.CharField(max_length=32, help_text="The method this target stands for.")
    implementation = models.CharField(max_length=32, blank=True)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims so far.")
    samples_done = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Last put in the queue.")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Last sent to the broker.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    reason = models.TextField(blank=True, help_text="Why the job gave up, when it did.")

    class Meta:
        ordering = ("run", "position", "vantage_point")
        constraints = [
            models.UniqueConstraint(
                fields=("run", "position", "vantage_point"), name="probe_job_once_per_target"
            )
        ]
        indexes = [models.Index(fields=("status", "heartbeat_at"))]

    def __str__(self) -> str:
        return f"{self.url} from {self.vantage_point}"

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_url)


class ProbeJobResult(models.Model):
    """What one job measured: exactly one per job (the one-to-one is the guarantee)."""

    job = models.OneToOneField(ProbeJob, on_delete=models.CASCADE, related_name="outcome")
    attempt = models.PositiveSmallIntegerField(help_text="The claim that measured it.")
    result = models.JSONField(help_text="The section 4 object.")
    failure = models.CharField(max_length=20, blank=True, help_text="Why it got no answer.")
    series = models.JSONField(
        default=list, help_text="Per sample: [seconds since the start, latency ms or null]."
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Result of {self.job}"

    @property
    def data(self) -> dict[str, Any]:
        return self.result if isinstance(self.result, dict) else {}
