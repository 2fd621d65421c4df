"""One of many processes writing to one SQLite file at once (tests/runs/test_sqlite.py).

``python -m tests.runs.sqlite_writer NAME ROUNDS GO_FILE [deferred]``: prints ``ready``
and waits until GO_FILE exists, so every writer begins together, then runs ROUNDS
transactions that read and then write, the pattern of the claim and of the
heartbeat (a deferred transaction that reads first fails at once with
"database is locked" when another connection writes meanwhile). Prints
``ok`` or the error and exits 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")


def main() -> int:
    import django

    django.setup()
    from django.db import OperationalError, connection, transaction
    from django.utils import timezone

    from probes.models import VantagePoint

    name, rounds, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    if len(sys.argv) > 4 and sys.argv[4] == "deferred":
        connection.settings_dict["OPTIONS"].pop("transaction_mode", None)
        connection.settings_dict["OPTIONS"]["timeout"] = 20
    VantagePoint.objects.exists()  # connected and warm before the start
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    try:
        for index in range(rounds):
            with transaction.atomic():
                seen = VantagePoint.objects.filter(name=name).count()
                if seen:
                    VantagePoint.objects.filter(name=name).update(
                        last_seen=timezone.now(), hostname=str(index)
                    )
                else:
                    VantagePoint.objects.create(name=name)
    except OperationalError as exc:
        print(f"error: {exc}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
