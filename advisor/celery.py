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
from celery.signals import celeryd_after_setup, worker_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
