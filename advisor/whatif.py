"""What would change the answer: the thresholds themselves. Pure.

For each answer a user could plausibly be unsure of or change (a budget, a
size, a rate, a guarantee; not who the peers are or what the firewall lets
through, and never the file size of a case that moves no files), it finds the
smallest change that puts another method first:

* numbers: walking away from the current value over the edges of the answer's
  bands (every number a rule, constraint, ramp or warning compares it with), the
  first edge at which the first pick loses; then bisection between the last value
  that keeps it and that edge. Between two edges every score is linear in the
  logarithm of the answer, so the first pick, once overtaken inside a band, stays
  overtaken there: checking the edges misses no flip, and the bisection finds the
  threshold itself (to the byte or receiver for whole numbers, to 0.1 % otherwise).
  The search stays within a factor of 100 of the current value: farther is no
  longer "unsure" but another use case.
* yes/no and choices: each other value.

A change that would contradict another answer (accepting losses while asking for
exactly-once, a real-time need with a budget of minutes, a file that cannot move
within the budget) is not offered. At most :data:`MAX_FLIPS` are reported,
nearest first. Scores come from :func:`advisor.scoring.partial`: only the rules
and constraints that read the changed answer are re-evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisor import vocabulary
from advisor.knowledge import METHODS
from advisor.scoring import COMPILED, FIELD_ORDER, Compiled, N, State, partial, winner, with_derived

MAX_FLIPS = 5
WINDOW = 100.0  # how far (as a factor) a number is searched from its current value
FLOAT_PRECISION = 1e-3

NUMBERS = ("latency_ms", "message_bytes", "rate_per_second", "consumers", "file_bytes")
INTEGERS = frozenset({"message_bytes", "consumers", "file_bytes"})
YES_NO = (
    "realtime",
    "loss_tolerant",
    "receiver_may_be_offline",
    "strict_contract",
    "flexible_queries",
    "small_team",
    "encryption",
)
CHOICES = ("delivery", "ordering")
LOWEST = {
    "latency_ms": 1e-3,
    "message_bytes": 1,
    "rate_per_second": 1e-6,
    "consumers": 1,
    "file_bytes": 1,
}
HIGHEST = {
    "latency_ms": float(vocabulary.MAX_LATENCY_MS),
    "message_bytes": vocabulary.MAX_MESSAGE_BYTES,
    "rate_per_second": float(vocabulary.MAX_RATE_PER_SECOND),
    "consumers": vocabulary.MAX_CONSUMERS,
    "file_bytes": vocabulary.MAX_FILE_BYTES,
}

Values = dict[str, Any]


def _loss_and_guarantee_disagree(v: Values) -> bool:
    # "An occasional lost message is acceptable" is what best effort means.
    return bool(v["loss_tolerant"]) != (v["delivery"] == "best_effort")


def _waiting_without_a_guarantee(v: Values) -> bool:
    return bool(v["receiver_may_be_offline"]) and v["delivery"] == "best_effort"


def _realtime_within_minutes(v: Values) -> bool:
    return bool(v["realtime"]) and v["latency_ms"] is not None and v["latency_ms"] >= 60_000


def _file_beyond_budget(v: Values) -> bool:
    return bool(v["file_exceeds_budget"])


CONTRADICTIONS: tuple[Callable[[Values], bool], ...] = (
    _loss_and_guarantee_disagree,
    _waiting_without_a_guarantee,
    _realtime_within_minutes,
    _file_beyond_budget,
)
CONTRADICTION_EDGES: dict[str, tuple[tuple[float, int], ...]] = {"latency_ms": ((60_000.0, -1),)}


def contradicts(new: Values, old: Values) -> bool:
    """Whether the changed answers contradict each other where the given ones did not."""
    return any(pred(new) and not pred(old) for pred in CONTRADICTIONS)


def plausible_fields(values: Values) -> list[str]:
    """The answers worth changing for these answers."""
    fields = [f for f in NUMBERS if values[f] is not None or f == "latency_ms"]
    if values["rate_per_second"] == 0:
        fields.remove("rate_per_second")
    yes_no = list(YES_NO)
    if values["interaction"] != "request_response":
        yes_no.remove("flexible_queries")  # callers asking for data: a query's question
    return fields + yes_no + list(CHOICES)


def window(field: str, current: Any) -> tuple[float, float]:
    """The range of a number searched around its current value."""
    if current is None:  # no budget yet: any budget
        return LOWEST[field], HIGHEST[field]
    return max(LOWEST[field], current / WINDOW), min(HIGHEST[field], current * WINDOW)


@dataclass
class _Trial:
    """Scores one answer's other values against the rest held fixed."""

    field: str
    state: State
    first: int
    c: Compiled

    def __post_init__(self) -> None:
        c, values = self.c, self.state.values
        self.rules = c.rules_reading[self.field]
        self.exclusions = c.exclusions_reading[self.field]
        # Derived values: the scores need them when a rule reads one; the check for
        # contradictions reads whether a file fits the budget.
        self.scores_derived = self.field in c.derived_inputs
        self.derive = self.scores_derived or self.field in ("latency_ms", "file_bytes")
        now_raw, now_excl = partial(values, self.rules, self.exclusions)
        self.base_raw = [a - b for a, b in zip(self.state.raw, now_raw, strict=True)]
        self.base_excl = [a - b for a, b in zip(self.state.excluded_by, now_excl, strict=True)]

    def values_with(self, value: Any, derive: bool = True) -> Values:
        values = dict(self.state.values)
        values[self.field] = value
        if derive and self.derive:
            with_derived(values)
        return values

    def winner(self, value: Any) -> int:
        values = self.values_with(value, self.scores_derived)
        raw = self.base_raw[:]
        for rule in self.rules:
            f = rule.factor(values)
            if f:
                for effect in rule.effects:
                    raw[effect.method] += effect.weight * f
        excl = self.base_excl
        if self.exclusions:
            excl = excl[:]
            for exclusion in self.exclusions:
                if exclusion.pred(values):
                    for m in exclusion.methods:
                        excl[m] += 1
        return winner(raw, excl, self.state.speaker)

    def allowed(self, value: Any) -> bool:
        return not contradicts(self.values_with(value), self.state.values)


@dataclass(frozen=True)
class Found:
    field: str
    value: Any
    winner: int
    direction: str  # "up", "down" or "set"
    distance: float


def _between(lo: float, hi: float, integer: bool) -> float | None:
    """A point strictly between lo and hi (geometric where both are positive)."""
    if integer:
        if hi - lo <= 1:
            return None
        mid = math.floor(math.sqrt(lo * hi)) if lo > 0 else (lo + hi) // 2
        return min(max(mid, lo + 1), hi - 1)
    if lo > 0 and hi / lo <= 1 + FLOAT_PRECISION:
        return None
    if lo <= 0 and hi - lo <= 1e-9:
        return None
    return math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2


def _nice(lo: float, hi: float, trial: _Trial, up: bool) -> float:
    """The threshold found, as a round number (1,590 rather than 1,585.6) within half a
    per cent of it, away from the current value, when that number flips the pick too."""
    exact = hi if up else lo
    if exact <= 0:
        return exact
    for digits in (3, 4):
        scale = 10 ** (math.floor(math.log10(exact)) - digits + 1)
        for rounded in (
            round(exact / scale) * scale,
            (math.ceil(exact / scale) if up else math.floor(exact / scale)) * scale,
        ):
            rounded = float(f"{rounded:.{digits + 1}g}")
            if rounded <= 0 or abs(rounded - exact) > exact * 0.005:
                continue
            if (rounded < exact) if up else (rounded > exact):
                continue
            if trial.allowed(rounded) and trial.winner(rounded) != trial.first:
                return rounded
    return exact


def _search_number(trial: _Trial, c: Compiled, edges: tuple[tuple[float, int], ...]) -> list[Found]:
    field = trial.field
    current = trial.state.values[field]
    integer = field in INTEGERS
    low, high = window(field, current)
    points: set[float] = {low, high}
    # Both sides of every switch; a ramp's point once (the scores are continuous there).
    for b, side in edges:
        if integer:
            if side > 0:
                points.update((math.floor(b), math.floor(b) + 1))
            elif side < 0:
                points.update((math.ceil(b) - 1, math.ceil(b)))
            else:
                points.add(round(b))
        elif side > 0:
            points.update((b, math.nextafter(b, math.inf)))
        elif side < 0:
            points.update((math.nextafter(b, -math.inf), b))
        else:
            points.add(b)
    found: list[Found] = []
    start = math.inf if current is None else current
    for up in (True, False):
        if current is None and up:
            continue
        if up:
            ahead = sorted(p for p in points if start < p <= high)
        else:
            ahead = sorted((p for p in points if low <= p < start), reverse=True)
        keep = start
        for point in ahead:
            value: float = int(point) if integer else point
            if not trial.allowed(value) or trial.winner(value) == trial.first:
                # Kept, or a change that contradicts another answer: not a flip to show.
                keep = value
                continue
            # The first pick is lost somewhere in (keep, value]: bisect.
            lo, hi = (keep, value) if up else (value, keep)
            if math.isinf(hi):
                hi = HIGHEST[field]
            while True:
                mid = _between(lo, hi, integer)
                if mid is None:
                    break
                flips = trial.allowed(mid) and trial.winner(mid) != trial.first
                if up:
                    lo, hi = (lo, mid) if flips else (mid, hi)
                else:
                    lo, hi = (mid, hi) if flips else (lo, mid)
            threshold = hi if up else lo
            if not integer:
                threshold = _nice(lo, hi, trial, up)
            if integer:
                threshold = int(threshold)
            w = trial.winner(threshold)
            if w == trial.first or not trial.allowed(threshold):
                break
            base = current if current is not None else HIGHEST[field]
            distance = abs(math.log10(threshold / base)) if threshold > 0 and base > 0 else 1.0
            found.append(Found(field, threshold, w, "up" if up else "down", distance))
            break
    return found


def _cannot_flip(field: str, state: State, first: int, c: Compiled) -> bool:
    """Whether no value of this answer can dethrone the first pick: it cannot rule the
    pick out, and no rival it could make feasible is within reach of the points the
    answer's rules can move (the sum of their weights, for each of the two)."""
    if state.speaker is not None:
        return False
    exclusions = c.exclusions_reading[field]
    if any(first in e.methods for e in exclusions):
        return False
    reach = c.reach[field]
    raw = state.raw
    excluded = list(state.excluded_by)
    for e in exclusions:
        if state.excl_matched[e.index]:
            for m in e.methods:
                excluded[m] -= 1
    lead = raw[first] - reach[first]
    for m in range(N):
        if m != first and not excluded[m] and raw[m] + reach[m] >= lead - 1e-9:
            return False
    return True


def search(state: State, first: int, c: Compiled = COMPILED) -> list[Found]:
    """Every plausible single change that dethrones ``first``, nearest first."""
    values = state.values
    found: list[Found] = []
    for field in plausible_fields(values):
        if _cannot_flip(field, state, first, c):
            continue
        trial = _Trial(field, state, first, c)
        if field in NUMBERS:
            edges = c.bounds.get(field, ()) + CONTRADICTION_EDGES.get(field, ())
            found += _search_number(trial, c, edges)
            # Having no budget at all is a change a user may consider too.
            if field == "latency_ms" and values[field] is not None and trial.allowed(None):
                w = trial.winner(None)
                if w != first:
                    found.append(Found(field, None, w, "set", 1.0))
            continue
        options = (not values[field],) if field in YES_NO else vocabulary.CHOICES[field]
        current = values[field]
        best: Found | None = None
        for value in options:
            if value == current or not trial.allowed(value):
                continue
            w = trial.winner(value)
            if w == first:
                continue
            distance = 1.0
            if field in CHOICES:
                order = vocabulary.CHOICES[field]
                distance = abs(order.index(value) - order.index(current))
            if best is None or distance < best.distance:
                best = Found(field, value, w, "set", float(distance))
        if best is not None:
            found.append(best)
    found.sort(key=lambda f: (f.distance, FIELD_ORDER[f.field]))
    return found[:MAX_FLIPS]


_NUMBER_WORDS = {
    # field: (the subject, the word before an upper edge, before a lower edge)
    "latency_ms": ("the time budget were", "", ""),
    "message_bytes": ("messages were", "above", "below"),
    "rate_per_second": ("the peak rate were", "", ""),
    "consumers": ("each message went to", "more than", "fewer than"),
    "file_bytes": ("files were", "above", "below"),
}


def _change_text(found: Found, current: Any) -> str:
    field = found.field
    words = vocabulary.FIELDS[field]
    now = vocabulary.value_text(field, current)
    if words.kind == "bool":
        value = vocabulary.value_text(field, found.value)
        return f"the answer to “{words.short}” were {value} (now {now})"
    if found.direction == "set" or found.value is None:
        return f"{words.short.lower()} were {vocabulary.value_text(field, found.value)} (now {now})"
    if current is None:
        # From no budget, a budget of this much flips it (not every smaller one).
        return (
            f"there were a time budget of {vocabulary.bound_text(field, found.value)} (now {now})"
        )
    subject, above, below = _NUMBER_WORDS[field]
    value = found.value
    if field in INTEGERS:
        edge = value - 1 if found.direction == "up" else value + 1
        side = above if found.direction == "up" else below
        unit = " receivers" if field == "consumers" else ""
        return f"{subject} {side} {vocabulary.bound_text(field, edge)}{unit} (now {now})"
    side = "or more" if found.direction == "up" else "or less"
    return f"{subject} {vocabulary.bound_text(field, value)} {side} (now {now})"


def flips(
    state: State, first: int, labels: dict[str, str], c: Compiled = COMPILED
) -> list[dict[str, Any]]:
    """The flips of :func:`search` as the contract's ``what_would_change`` entries."""
    out = []
    values = state.values
    for found in search(state, first, c):
        current = values[found.field]
        change = _change_text(found, current)
        threshold = found.value
        if found.field in INTEGERS and found.direction != "set":
            threshold = found.value - 1 if found.direction == "up" else found.value + 1
        out.append(
            {
                "for_method": METHODS[first],
                "field": found.field,
                "label": vocabulary.FIELDS[found.field].short,
                "current": current,
                "value": found.value,
                "threshold": threshold,
                "winner": METHODS[found.winner],
                "change": change,
                "text": f"If {change}, {labels[METHODS[found.winner]]} would rank first instead "
                f"of {labels[METHODS[first]]}.",
            }
        )
    return out


__all__ = ["MAX_FLIPS", "contradicts", "flips", "plausible_fields", "search", "window"]
