"""The words of the use-case document, in one place.

Every field's question, help text, short name, unit, bounds and how its value
reads back to a person live here, and only here: the use-case model's error
messages, the questionnaire, the engine's reasons, the pages, the text report
and the MADR export all read this module instead of keeping tables of their own.

Units follow what people write: sizes in B, KB, MB, GB, TB (powers of 1000)
and KiB, MiB, GiB, TiB (powers of 1024); rates per second, minute, hour or
day; budgets in ms, s, min or h. :func:`parse_quantity` reads "20GB", "2 h" or
"5 per minute" and refuses what it cannot read with a message that says what
it accepts; it never guesses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Kind = Literal["version", "text", "choice", "bool", "bytes", "rate", "duration", "count"]

# The upper bounds of the document (contract revision 2): far above any real
# system, far below overflow. They only refuse nonsense.
MAX_LATENCY_MS = 86_400_000  # one day
MAX_MESSAGE_BYTES = 10**12  # 1 TB
MAX_FILE_BYTES = 10**15  # 1 PB
MAX_RATE_PER_SECOND = 10**9
MAX_CONSUMERS = 10**9
MAX_TITLE_CHARS = 200
MAX_NOTES_CHARS = 5000


@dataclass(frozen=True)
class Unit:
    symbol: str  # as shown: "KB", "per hour", "ms"
    factor: float  # how many of the field's base unit (bytes, per second, ms) one is
    aliases: tuple[str, ...]  # what a person may type, lower case, without spaces


BYTE_UNITS: tuple[Unit, ...] = (
    Unit("bytes", 1, ("b", "byte", "bytes")),
    Unit("KB", 10**3, ("kb", "kilobyte", "kilobytes", "k")),
    Unit("MB", 10**6, ("mb", "megabyte", "megabytes", "m")),
    Unit("GB", 10**9, ("gb", "gigabyte", "gigabytes", "g")),
    Unit("TB", 10**12, ("tb", "terabyte", "terabytes", "t")),
    Unit("KiB", 2**10, ("kib", "kibibyte", "kibibytes")),
    Unit("MiB", 2**20, ("mib", "mebibyte", "mebibytes")),
    Unit("GiB", 2**30, ("gib", "gibibyte", "gibibytes")),
    Unit("TiB", 2**40, ("tib", "tebibyte", "tebibytes")),
)
RATE_UNITS: tuple[Unit, ...] = (
    Unit("per second", 1, ("/s", "/sec", "/second", "persecond", "asecond", "s", "ps", "hz")),
    Unit("per minute", 1 / 60, ("/min", "/minute", "perminute", "aminute", "/m", "min")),
    Unit("per hour", 1 / 3600, ("/h", "/hr", "/hour", "perhour", "anhour", "ahour", "h")),
    Unit(
        "per day",
        1 / 86400,
        ("/d", "/day", "perday", "aday", "d", "day", "/night", "anight", "pernight"),
    ),
)
DURATION_UNITS: tuple[Unit, ...] = (
    Unit("ms", 1, ("ms", "msec", "millisecond", "milliseconds")),
    Unit("s", 1000, ("s", "sec", "secs", "second", "seconds")),
    Unit("min", 60_000, ("min", "mins", "minute", "minutes", "m")),
    Unit("h", 3_600_000, ("h", "hr", "hrs", "hour", "hours")),
)
UNITS: dict[str, tuple[Unit, ...]] = {
    "bytes": BYTE_UNITS,
    "rate": RATE_UNITS,
    "duration": DURATION_UNITS,
}
# The unit a bare number is read in, per kind.
BASE_UNIT = {"bytes": "bytes", "rate": "per second", "duration": "ms"}


@dataclass(frozen=True)
class FieldWords:
    name: str
    kind: Kind
    question: str  # the questionnaire's label
    short: str  # a noun phrase for reasons and tables: "Message size"
    help: str
    accepted: str  # what the field accepts, in the words of an error message
    choices: tuple[tuple[str, str], ...] = ()  # (value, label), for kind "choice"
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    null_text: str = "none"  # how a null answer reads: "no budget", "no files"

    @property
    def units(self) -> tuple[Unit, ...]:
        return UNITS.get(self.kind, ())

    def choice_label(self, value: str) -> str:
        return dict(self.choices).get(value, value)


INTERACTION_CHOICES = (
    ("request_response", "Request and response: the caller needs the answer to go on"),
    ("fire_and_forget", "Fire and forget: hand off commands or jobs without waiting"),
    ("publish_subscribe", "Publish and subscribe: each event goes to several receivers"),
    ("streaming", "Streaming: a continuous flow of updates or measurements"),
    ("bidirectional", "Two-way: both sides send at any time over a long-lived session"),
    ("file_transfer", "File transfer: files or batches move between servers"),
    (
        "remote_execution",
        "Remote execution: run commands on, or reach a service through, a remote server",
    ),
)
# A few words for each interaction, for sentences ("for a request and response").
INTERACTION_SHORT = {
    "request_response": "request and response",
    "fire_and_forget": "fire and forget",
    "publish_subscribe": "publish and subscribe",
    "streaming": "streaming",
    "bidirectional": "two-way session",
    "file_transfer": "file transfer",
    "remote_execution": "remote execution",
}
DELIVERY_CHOICES = (
    ("best_effort", "Best effort"),
    ("at_least_once", "At least once"),
    ("exactly_once", "Exactly once"),
)
ORDERING_CHOICES = (
    ("none", "No order needed"),
    ("per_key", "In order per key"),
    ("total", "Total order"),
)
PEERS_CHOICES = (
    ("internal", "Our own team or company"),
    ("partner", "A partner organisation"),
    ("public", "The public"),
)
FIREWALL_CHOICES = (
    ("open", "Any port is open"),
    ("http_only", "Only HTTP(S) on ports 80/443"),
    ("ssh_only", "Only SSH on port 22"),
)
EXISTING_INTERFACE_CHOICES = (
    ("none", "Nothing fixed"),
    ("rest", "A REST API"),
    ("soap", "SOAP web services"),
    ("graphql", "GraphQL"),
    ("grpc", "gRPC"),
    ("broker", "A message broker"),
    ("file_drop", "Files dropped in a folder or on a server"),
    ("custom_tcp", "A custom protocol over TCP"),
)


def _one_of(choices: tuple[tuple[str, str], ...]) -> str:
    return "one of " + ", ".join(value for value, _ in choices)


def _yes_no(name: str, question: str, short: str, help_text: str) -> FieldWords:
    return FieldWords(name, "bool", question, short, help_text, "true or false")


FIELDS: dict[str, FieldWords] = {
    f.name: f
    for f in (
        FieldWords(
            "version",
            "version",
            "Document format version",
            "Format version",
            "The version of the use-case format these answers follow. Only version 1 exists.",
            "the number 1",
        ),
        FieldWords(
            "title",
            "text",
            "Name of this use case",
            "Name",
            "A short name you and your team will recognise, e.g. 'Orders to the warehouse'. "
            f"Optional, at most {MAX_TITLE_CHARS} characters.",
            f"a string of at most {MAX_TITLE_CHARS} characters, without NUL characters",
            maximum=MAX_TITLE_CHARS,
        ),
        FieldWords(
            "interaction",
            "choice",
            "How do the two sides interact?",
            "Interaction",
            "Pick the pattern closest to what the two servers do most of the time.",
            _one_of(INTERACTION_CHOICES),
            choices=INTERACTION_CHOICES,
        ),
        FieldWords(
            "latency_ms",
            "duration",
            "Time budget for one message or request",
            "Time budget",
            "The end-to-end time that 95 out of 100 messages or requests must stay within, "
            "e.g. 200 ms or 2 s. Leave empty if there is no deadline.",
            f"a number > 0 and <= {MAX_LATENCY_MS:,} (milliseconds, that is 24 hours), "
            "or null for no budget",
            nullable=True,
            minimum=0,
            maximum=MAX_LATENCY_MS,
            null_text="no budget",
        ),
        _yes_no(
            "realtime",
            "Must receivers get updates the moment they happen?",
            "Updates pushed as they happen",
            "Tick if the receiver must be pushed each update as it happens; "
            "untick if checking for news now and then (polling) is fine.",
        ),
        FieldWords(
            "message_bytes",
            "bytes",
            "Typical size of one message",
            "Message size",
            "The usual size of one message, request or response body, e.g. 2 KB for a JSON "
            "order. KB, MB, GB are powers of 1000; KiB, MiB, GiB powers of 1024.",
            f"a whole number >= 1 and <= {MAX_MESSAGE_BYTES:,} (bytes)",
            minimum=1,
            maximum=MAX_MESSAGE_BYTES,
        ),
        FieldWords(
            "file_bytes",
            "bytes",
            "Size of one file or batch",
            "File size",
            "Only when whole files or batches are moved: the size of one, e.g. 20 GB. "
            "Leave empty if no files are moved.",
            f"a whole number >= 1 and <= {MAX_FILE_BYTES:,} (bytes), or null for no files",
            nullable=True,
            minimum=1,
            maximum=MAX_FILE_BYTES,
            null_text="no files",
        ),
        FieldWords(
            "rate_per_second",
            "rate",
            "Peak messages or requests",
            "Peak rate",
            "The busiest rate you expect, all senders together, e.g. 200 per second or "
            "1 per day for a nightly batch.",
            f"a number >= 0 and <= {MAX_RATE_PER_SECOND:,} (per second)",
            minimum=0,
            maximum=MAX_RATE_PER_SECOND,
        ),
        FieldWords(
            "delivery",
            "choice",
            "What delivery guarantee does the business need?",
            "Delivery guarantee",
            "Best effort: a lost message is acceptable. At least once: nothing may be lost, "
            "duplicates are handled. Exactly once: each message takes effect once only.",
            _one_of(DELIVERY_CHOICES),
            choices=DELIVERY_CHOICES,
        ),
        _yes_no(
            "loss_tolerant",
            "Is losing an occasional message acceptable?",
            "An occasional lost message is acceptable",
            "Tick for data where the next message makes up for a lost one: telemetry, "
            "audio and video, game state.",
        ),
        FieldWords(
            "ordering",
            "choice",
            "Which order does the receiver rely on?",
            "Ordering",
            "None: any order works. Per key: messages about the same thing (one order, one "
            "device) must arrive in order. Total: every message in one global order.",
            _one_of(ORDERING_CHOICES),
            choices=ORDERING_CHOICES,
        ),
        _yes_no(
            "receiver_may_be_offline",
            "Must messages wait while the receiver is down or busy?",
            "Messages wait while the receiver is down",
            "Tick if the sender must be able to hand messages off even when the receiver "
            "is restarting, overloaded or offline for a while.",
        ),
        FieldWords(
            "consumers",
            "count",
            "How many independent receivers get each message?",
            "Receivers of each message",
            "1 means point to point. More than 1 means every receiver needs its own copy, "
            "for example billing, shipping and analytics all reacting to one order.",
            f"a whole number >= 1 and <= {MAX_CONSUMERS:,}",
            minimum=1,
            maximum=MAX_CONSUMERS,
        ),
        FieldWords(
            "peers",
            "choice",
            "Who runs the other end?",
            "Who runs the other end",
            "Your own team or company, a partner organisation you agree formats with, "
            "or the public you cannot coordinate with.",
            _one_of(PEERS_CHOICES),
            choices=PEERS_CHOICES,
        ),
        _yes_no(
            "browser_clients",
            "Do web browsers connect to it directly?",
            "Browsers connect directly",
            "Tick if pages running in users' browsers talk to this service themselves, "
            "not only your servers.",
        ),
        FieldWords(
            "firewall",
            "choice",
            "What gets through the network between them?",
            "What the network lets through",
            "Open: any port. HTTP only: only web traffic on ports 80/443, often through "
            "proxies. SSH only: only SSH on port 22.",
            _one_of(FIREWALL_CHOICES),
            choices=FIREWALL_CHOICES,
        ),
        _yes_no(
            "inbound_blocked",
            "Can the receiving side only connect out (no incoming connections)?",
            "The receiving side can only connect out",
            "About the side that receives messages or commands. Tick if it sits behind NAT "
            "or a firewall that refuses incoming connections, as devices that must take "
            "commands and on-premises servers often do. Devices that only send telemetry "
            "out are not receivers: leave it unticked for them.",
        ),
        _yes_no(
            "flexible_queries",
            "Do callers need different fields or nested data on each call?",
            "Callers ask for different data each call",
            "Tick if different clients ask for different slices of the data, "
            "such as dashboards and mobile apps with their own views.",
        ),
        _yes_no(
            "strict_contract",
            "Is a formal, machine-checked contract required?",
            "A machine-checked contract is required",
            "Tick if both sides must agree on a schema that tools check: an IDL, "
            "a WSDL or a JSON/XML schema, for example for audits or partners.",
        ),
        FieldWords(
            "existing_interface",
            "choice",
            "What does the other side already speak?",
            "What the other side already speaks",
            "If the other end already has an interface that cannot change, say which one; "
            "otherwise leave 'nothing fixed'.",
            _one_of(EXISTING_INTERFACE_CHOICES),
            choices=EXISTING_INTERFACE_CHOICES,
        ),
        _yes_no(
            "constrained_devices",
            "Are devices low-power or is bandwidth scarce or metered?",
            "Low-power devices or scarce bandwidth",
            "Tick for battery-powered devices, microcontrollers or cellular and satellite "
            "links where every byte counts.",
        ),
        _yes_no(
            "encryption",
            "Must traffic be encrypted in transit?",
            "Encrypted in transit",
            "Keep this ticked unless the traffic never leaves a network you fully trust.",
        ),
        _yes_no(
            "small_team",
            "Is a small team running this, wanting few moving parts?",
            "A small team wants few moving parts",
            "Tick if nobody has time to run and watch an extra server such as a broker.",
        ),
        FieldWords(
            "notes",
            "text",
            "Anything else?",
            "Notes",
            "Free text kept with the decision for your team; the recommendation does not "
            f"read it. At most {MAX_NOTES_CHARS} characters.",
            f"a string of at most {MAX_NOTES_CHARS} characters, without NUL characters",
            maximum=MAX_NOTES_CHARS,
        ),
    )
}

CHOICES: dict[str, tuple[str, ...]] = {
    name: tuple(value for value, _ in f.choices) for name, f in FIELDS.items() if f.choices
}
INTEGER_FIELDS: frozenset[str] = frozenset(
    name for name, f in FIELDS.items() if f.kind in ("version", "count") or f.kind == "bytes"
)
NUMBER_FIELDS: frozenset[str] = frozenset(
    name for name, f in FIELDS.items() if f.kind in ("bytes", "rate", "duration", "count")
)
BOOLEAN_FIELDS: tuple[str, ...] = tuple(name for name, f in FIELDS.items() if f.kind == "bool")


def words(name: str) -> FieldWords:
    return FIELDS[name]


# --------------------------------------------------------------------------
# Reading numbers as people write them.


class QuantityError(ValueError):
    """Text that is not a quantity of the field's kind; the message says what is accepted."""


_NUMBER_WORDS = {"once": "1", "twice": "2", "a": "1", "an": "1", "one": "1"}
_QUANTITY = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|\.[0-9]+)\s*(.*?)\s*$")


def accepted_units(kind: str) -> str:
    return ", ".join(unit.symbol for unit in UNITS[kind])


def _unit_named(kind: str, text: str) -> Unit | None:
    key = re.sub(r"\s+", "", text.lower())
    if kind == "rate":
        # "5 per minute", "5 a minute", "5 every minute", "5/minute": the same.
        key = re.sub(r"^(every|each)", "per", key)
    for unit in UNITS[kind]:
        if key == unit.symbol.lower().replace(" ", "") or key in unit.aliases:
            return unit
    return None


def _plain_number(text: str) -> Decimal:
    if "," in text:
        # Thousands separators only: "1,000,000" yes; "1,5" (a decimal comma) is refused
        # rather than read as 15 or 1.5.
        whole = text.split(".", 1)[0]
        groups = whole.split(",")
        if not groups[0] or len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]):
            raise QuantityError(
                f"{text!r} is not a number: write a decimal point (1.5), not a comma"
            )
        text = text.replace(",", "")
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise QuantityError(f"{text!r} is not a number") from None


def parse_quantity(text: str, kind: str, default_unit: str | None = None) -> float | int:
    """A quantity typed by a person, in the field kind's base unit.

    ``kind`` is "bytes", "rate" or "duration"; ``default_unit`` (a unit symbol)
    is what a bare number means, e.g. the unit chosen beside the input. Sizes come
    back as whole bytes (int, rounded to the nearest byte), rates as a float per
    second, durations as a float of milliseconds. Raises :class:`QuantityError`.
    """
    if kind not in UNITS:
        raise ValueError(f"no units for kind {kind!r}")
    raw = text.strip()
    lowered = raw.lower()
    first, _, rest = lowered.partition(" ")
    if first in _NUMBER_WORDS and rest:  # "once a day", "twice per hour"
        lowered = _NUMBER_WORDS[first] + " " + rest
    match = _QUANTITY.match(lowered)
    if not match:
        raise QuantityError(
            f"{raw!r} is not a number with a unit; write e.g. "
            + {"bytes": "20 GB", "rate": "5 per minute", "duration": "2 s"}[kind]
            + f" (units: {accepted_units(kind)})"
        )
    if len(match.group(1)) > 40:
        # No real quantity has forty digits; refuse before big-number arithmetic.
        raise QuantityError(f"{raw[:20]}... is far too large")
    number = _plain_number(match.group(1))
    unit_text = match.group(2)
    original_unit = raw[len(raw) - len(unit_text) :] if unit_text else ""
    if kind == "bytes" and re.fullmatch(r"[KMGT]i?b", original_unit):
        # "Mb" is megabits by convention: refuse rather than read it as bytes.
        raise QuantityError(
            f"{original_unit!r} reads as bits; for bytes write {original_unit[:-1]}B"
        )
    if unit_text:
        unit = _unit_named(kind, unit_text)
        if unit is None:
            raise QuantityError(
                f"{unit_text!r} is not a unit here; accepted: {accepted_units(kind)}"
            )
    else:
        unit = _unit_named(kind, default_unit or BASE_UNIT[kind])
        if unit is None:
            raise ValueError(f"unknown default unit {default_unit!r} for {kind}")
    if kind == "bytes":
        # Exact for whole multiples: 20 GiB is 21,474,836,480 bytes, not a float's guess.
        return int((number * Decimal(unit.factor)).to_integral_value())
    value = float(number) * unit.factor
    if not math.isfinite(value):
        raise QuantityError(f"{raw!r} is too large")
    return value


# --------------------------------------------------------------------------
# Showing values back.


def _trim(number: float, places: int = 3) -> str:
    """1.5, 20, 0.25; thousands separators; never 1e+15 for a number we show."""
    text = f"{number:,.{places}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def split_quantity(value: float | int, kind: str) -> tuple[str, str]:
    """(number, unit symbol) that reads ``value`` back exactly in the largest unit it
    is a clean multiple of: 21474836480 bytes -> ("20", "GiB"), 1/86400 per second ->
    ("1", "per day"), 7200000 ms -> ("2", "h"). The form shows values this way, so
    what a person typed comes back in their unit."""
    units = UNITS[kind]
    if kind == "bytes":
        n = int(value)
        best = units[0]
        for unit in units[1:]:
            factor = int(unit.factor)
            # A clean multiple: a whole number in this unit, or under 1,000 of it with at
            # most three decimals, exactly (1.201 KB, but 1,234,567 bytes).
            clean = n % factor == 0 or (n < 1000 * factor and (n * 1000) % factor == 0)
            if n >= factor and clean and unit.factor > best.factor:
                best = unit
        return _trim(n / best.factor), best.symbol
    if value == 0:
        return "0", units[0].symbol
    # Rates and budgets: the unit in which the number is a whole one, or has few
    # decimals, preferring the unit a person would say (per second over per day).
    candidates = []
    for unit in units:
        scaled = value / unit.factor
        if scaled < 1 and unit is not units[0]:
            continue
        for places in (0, 1, 2, 3):
            if _close(round(scaled, places), scaled):
                candidates.append((places, -unit.factor if kind == "duration" else 0, unit))
                break
    if not candidates:
        return _trim(value / units[0].factor, 6), units[0].symbol
    if kind == "duration":
        # The largest unit with at most two decimals: 2 h rather than 7,200 s, 1.5 s
        # rather than 1,500 ms, but 1,234 ms rather than 1.234 s.
        places, _, unit = min(candidates, key=lambda c: (c[0] > 2, c[1]))
    else:
        # Rates: per second when it is a clean number there, else the first unit
        # in which it is whole (5 per minute, 1 per day).
        whole = [c for c in candidates if c[0] == 0]
        places, _, unit = whole[0] if whole else min(candidates, key=lambda c: c[0])
    return _trim(value / unit.factor, 3), unit.symbol


def format_bytes(n: float | int) -> str:
    """A size a person reads: "1 byte", "512 bytes", "2 KB", "20 GiB", "1.2 MB"."""
    n = int(n)
    if n == 1:
        return "1 byte"
    if n < 1000:
        return f"{n:,} bytes"
    number, unit = split_quantity(n, "bytes")
    if unit != "bytes":
        return f"{number} {unit}"
    # Not a clean multiple of any unit: three significant figures in SI units.
    for unit_ in reversed(BYTE_UNITS[:5]):
        if n >= unit_.factor:
            return f"{_trim(n / unit_.factor, 2)} {unit_.symbol}"
    return f"{n:,} bytes"


def format_exact_bytes(n: float | int) -> str:
    """A size where the exact number matters (a limit, a threshold): "1,201 bytes",
    or a clean unit when it is exact: "16 MiB", "1 MB"."""
    n = int(n)
    number, unit = split_quantity(n, "bytes")
    if unit == "bytes" or "." in number:
        return "1 byte" if n == 1 else f"{n:,} bytes"
    return f"{number} {unit}"


def format_duration(ms: float | int) -> str:
    """A budget a person reads: "250 ms", "1.5 s", "2 min", "2 h"."""
    if ms < 1:
        return f"{_trim(ms, 3)} ms"
    if ms < 1000:
        return f"{_trim(ms, 1)} ms"
    if ms < 60_000:
        return f"{_trim(ms / 1000, 2)} s"
    if ms < 3_600_000:
        minutes = ms / 60_000
        return f"{_trim(minutes, 1)} min"
    return f"{_trim(ms / 3_600_000, 1)} h"


def format_rate(per_second: float | int) -> str:
    """A rate a person reads: "200 per second", "5 per minute", "1 per day"."""
    if per_second == 0:
        return "none"
    if per_second >= 1:
        return f"{_trim(per_second, 2)} per second"
    for unit in RATE_UNITS[1:]:
        scaled = per_second / unit.factor
        if scaled >= 1:
            return f"{_trim(scaled, 1)} {unit.symbol}"
    return f"{_trim(per_second / RATE_UNITS[-1].factor, 3)} per day"


def format_count(n: float | int) -> str:
    return f"{int(n):,}" if float(n).is_integer() else _trim(float(n))


def value_text(name: str, value: Any) -> str:
    """An answer as a person reads it: "2 KB", "500 ms", "10 per second", "yes",
    "The public", "no budget"."""
    f = FIELDS[name]
    if value is None:
        return f.null_text
    if f.kind == "bool":
        return "yes" if value else "no"
    if f.kind == "choice":
        return f.choice_label(str(value))
    if f.kind == "bytes":
        return format_bytes(value)
    if f.kind == "duration":
        return format_duration(value)
    if f.kind == "rate":
        return format_rate(value)
    if f.kind in ("count", "version"):
        return format_count(value)
    return " ".join(str(value).split())


def answer_text(name: str, value: Any) -> str:
    """The answer with its question's short name: "Message size: 2 KB"."""
    return f"{FIELDS[name].short}: {value_text(name, value)}"


def bound_text(name: str, value: float | int) -> str:
    """A threshold in the field's units, exact where exactness matters:
    "1,201 bytes", "49", "5 ms", "1 per second"."""
    f = FIELDS[name]
    if f.kind == "bytes":
        return format_exact_bytes(value)
    return value_text(name, value)
