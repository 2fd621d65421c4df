"""Hypothesis strategies for valid use-case documents."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from advisor.usecase import (
    DELIVERIES,
    EXISTING_INTERFACES,
    FIREWALLS,
    INTERACTIONS,
    MAX_LATENCY_MS,
    ORDERINGS,
    PEERS,
)

_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")

_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "title": st.text(_TEXT, max_size=200),
    "latency_ms": st.none()
    | st.floats(min_value=0.001, max_value=MAX_LATENCY_MS, allow_nan=False)
    | st.sampled_from([1, 2, 10, 20, 50, 60000]),
    "realtime": st.booleans(),
    "message_bytes": st.integers(min_value=1, max_value=10**10)
    | st.sampled_from([1200, 1201, 65507, 65508, 1_000_000, 1_000_001]),
    "file_bytes": st.none() | st.integers(min_value=1, max_value=10**13),
    "rate_per_second": st.floats(min_value=0, max_value=10**9, allow_nan=False)
    | st.sampled_from([10000, 100000]),
    "delivery": st.sampled_from(DELIVERIES),
    "loss_tolerant": st.booleans(),
    "ordering": st.sampled_from(ORDERINGS),
    "receiver_may_be_offline": st.booleans(),
    "consumers": st.integers(min_value=1, max_value=10**6),
    "peers": st.sampled_from(PEERS),
    "browser_clients": st.booleans(),
    "firewall": st.sampled_from(FIREWALLS),
    "inbound_blocked": st.booleans(),
    "flexible_queries": st.booleans(),
    "strict_contract": st.booleans(),
    "existing_interface": st.sampled_from(EXISTING_INTERFACES),
    "constrained_devices": st.booleans(),
    "encryption": st.booleans(),
    "small_team": st.booleans(),
    "notes": st.text(_TEXT, max_size=50),
}

documents: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"interaction": st.sampled_from(INTERACTIONS)}, optional=_OPTIONAL
)
