"""The Celery application. Workers start with ``celery -A advisor worker``.

``-Q NAME`` makes the worker a vantage point: it registers NAME with a
heartbeat (``probes.tasks.Heartbeat``) and takes the probe jobs sent there.
Every worker also consumes the sweep queue, where beat sends the sweeper.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty
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
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
logger = logging.getLogger(__name__)


class FilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, with messages that appear whole or not at all.

    kombu creates a message's file, then writes it; a worker polling the folder in
    between moves the empty file away and fails to decode it, and its consumer
    takes that for an unrecoverable error: the worker shuts down, and nothing
    probes until it is restarted (``tests/runs/test_filesystem_broker.py``).
    Here each message is written to a hidden file the consumer ignores, then
    renamed into place; a file that still cannot be decoded (written by another
    program) is dropped with a warning: the sweeper sends its job again.
    """

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        partial = folder / f".{uuid.uuid4()}.partial"
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(partial, folder / name)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        try:
            return super()._get(queue)
        except ValueError:
            logger.warning("a message of queue %s could not be decoded: dropped", queue)
            raise Empty() from None


class FilesystemTransport(filesystem.Transport):
    Channel = FilesystemChannel


app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
if str(app.conf.broker_url or "").startswith("filesystem://"):
    app.conf.broker_transport = f"{__name__}:FilesystemTransport"
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
