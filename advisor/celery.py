"""The Celery application. Workers start with ``celery -A advisor worker``.

``-Q NAME`` makes the worker a vantage point: it registers NAME with a
heartbeat (``probes.tasks.Heartbeat``) and takes the probe jobs sent there.
Every worker also consumes the sweep queue, where beat sends the sweeper.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import (
    celeryd_after_setup,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task
# (it calls close(), whatever CONN_MAX_AGE says), so each probe job opened a new one:
# on PostgreSQL a new server process, measured at 30-70 ms of every job's claim on
# the loaded machine (bench/e2e.py --profile). With a reuse count it leaves them
# open; the two handlers below then do what Django does around each request: close
# a connection that is older than CONN_MAX_AGE or broke (close_old_connections).
app.conf.update(CELERY_DB_REUSE_MAX=10_000)
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs: Any) -> None:
    from django.db import close_old_connections

    close_old_connections()


def _broker_folders() -> None:
    """kombu's filesystem transport needs its folders; make them, wherever var/ is."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                Path(str(folder)).mkdir(parents=True, exist_ok=True)


_broker_folders()


@celeryd_after_setup.connect
def _consume_sweep_queue(sender: str, instance: Any, **kwargs: Any) -> None:
    from django.conf import settings

    instance.app.amqp.queues.select_add(settings.PROBE_SWEEP_QUEUE)


@worker_ready.connect
def _start_heartbeat(sender: Any, **kwargs: Any) -> None:
    from probes import tasks

    queues = sender.controller.app.amqp.queues.consume_from
    tasks.heartbeat_start(tasks.vantage_point_names(queues), str(sender.hostname))


@worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    from probes import tasks

    tasks.heartbeat_stop()


@worker_init.connect
def _preload(**kwargs: Any) -> None:
    # Import what every job needs before the pool forks, so no job pays for it:
    # each probe module with its client library, and the engine.
    from probes import tasks

    tasks.preload()
