"""How many recommendations one process makes per second.

Usage: .venv/bin/python bench/engine.py [--seconds S] [--documents N]

It builds N varied, valid use-case documents (seeded, so runs compare), then
calls the engine on them in a loop for S seconds, twice: the full
recommendation (ranking, reasons, caveats, warnings and "what would change")
serialised to the ``advise --format json`` object, and the ranking alone
without "what would change". Target: a median under 1 ms for the full
recommendation on the project's 2-core machine, so it stays invisible next to
a page view.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
# A developer's tool, as before DEBUG defaulted to off (the settings need a key without it).
os.environ.setdefault("DJANGO_DEBUG", "true")

from advisor.engine import recommend_json
from advisor.usecase import (
    DELIVERIES,
    EXISTING_INTERFACES,
    FIREWALLS,
    INTERACTIONS,
    ORDERINGS,
    PEERS,
    UseCase,
    parse_usecase,
)


def random_document(rng: random.Random) -> dict[str, Any]:
    return {
        "interaction": rng.choice(INTERACTIONS),
        "latency_ms": rng.choice([None, 1, 5, 20, 100, 500, 2000, 60000]),
        "realtime": rng.random() < 0.3,
        "message_bytes": rng.choice([100, 1000, 5000, 64000, 2_000_000]),
        "file_bytes": rng.choice([None, None, None, 10_000_000, 2_000_000_000]),
        "rate_per_second": rng.choice([0.1, 1, 50, 2000, 20000, 200000]),
        "delivery": rng.choice(DELIVERIES),
        "loss_tolerant": rng.random() < 0.2,
        "ordering": rng.choice(ORDERINGS),
        "receiver_may_be_offline": rng.random() < 0.3,
        "consumers": rng.choice([1, 1, 3, 100]),
        "peers": rng.choice(PEERS),
        "browser_clients": rng.random() < 0.2,
        "firewall": rng.choice((*FIREWALLS, "open", "open")),
        "inbound_blocked": rng.random() < 0.15,
        "flexible_queries": rng.random() < 0.15,
        "strict_contract": rng.random() < 0.3,
        "existing_interface": rng.choice(EXISTING_INTERFACES + ("none",) * 6),
        "constrained_devices": rng.random() < 0.1,
        "encryption": rng.random() < 0.85,
        "small_team": rng.random() < 0.3,
    }


def measure(docs: list[UseCase], seconds: float, full: bool) -> tuple[float, float]:
    """Recommendations per second, and the median microseconds per recommendation."""
    done = 0
    per_round: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for doc in docs:
            if full:
                recommend_json(doc)
            else:
                recommend_json(doc, explain_changes=False)
        per_round.append((time.perf_counter() - start) / len(docs))
        done += len(docs)
    total = sum(per_round) * len(docs)
    return done / total, statistics.median(per_round) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--documents", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(20261128)
    docs = [parse_usecase(random_document(rng)) for _ in range(args.documents)]
    recommend_json(docs[0])  # warm up
    print(f"engine benchmark: {len(docs)} distinct documents, {args.seconds:g} s each")
    rate, micro = measure(docs, args.seconds, full=True)
    print(f"full recommendation (JSON):  {rate:8.0f} per second ({micro:.0f} us each)")
    rate_core, micro_core = measure(docs, args.seconds, full=False)
    print(f"ranking without flips:      {rate_core:8.0f} per second ({micro_core:.0f} us each)")
    print(f"target: median full recommendation < 1000 us: {'met' if micro < 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
