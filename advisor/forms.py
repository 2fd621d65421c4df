"""The questionnaire, a Django form that mirrors the use-case document; and the expiry form.

The form only carries answers; whether they are valid is decided in one place,
:func:`advisor.usecase.parse_usecase`, and its per-field messages are attached
to the form fields. That is why numbers and choices are plain ``CharField``s
here: a Django ``IntegerField`` or ``ChoiceField`` would reject bad input with
its own words before the use-case model ever saw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from advisor.usecase import (
    CHOICES,
    FIELDS,
    UseCase,
    UseCaseError,
    parse_usecase,
)


@dataclass(frozen=True)
class Question:
    label: str
    help: str


# The question a person reads for each field of the document, and its help text in
# plain words. Every field of UseCase has one (checked below).
QUESTIONS: dict[str, Question] = {
    "version": Question(
        "Document format version",
        "The version of the use-case format these answers follow. Only version 1 exists.",
    ),
    "title": Question(
        "Name of this use case",
        "A short name you and your team will recognise, e.g. 'Orders to the warehouse'. "
        "Optional, at most 200 characters.",
    ),
    "interaction": Question(
        "How do the two sides interact?",
        "Pick the pattern closest to what the two servers do most of the time.",
    ),
    "consumers": Question(
        "How many independent receivers get each message?",
        "1 means point to point. More than 1 means every receiver needs its own copy, "
        "for example billing, shipping and analytics all reacting to one order.",
    ),
    "peers": Question(
        "Who runs the other end?",
        "Your own team or company, a partner organisation you agree formats with, "
        "or the public you cannot coordinate with.",
    ),
    "browser_clients": Question(
        "Do web browsers connect to it directly?",
        "Tick if pages running in users' browsers talk to this service themselves, "
        "not only your servers.",
    ),
    "existing_interface": Question(
        "What does the other side already speak?",
        "If the other end already has an interface that cannot change, say which one; "
        "otherwise leave 'nothing fixed'.",
    ),
    "latency_ms": Question(
        "Time budget for one message or request (milliseconds)",
        "The end-to-end time that 95 out of 100 messages or requests must stay within. "
        "Leave empty if there is no deadline.",
    ),
    "realtime": Question(
        "Must receivers get updates the moment they happen?",
        "Tick if the receiver must be pushed each update as it happens; "
        "untick if checking for news now and then (polling) is fine.",
    ),
    "rate_per_second": Question(
        "Peak messages or requests per second",
        "The busiest rate you expect, all senders together. 0.01 is one every "
        "100 seconds; 1000 is a busy service.",
    ),
    "message_bytes": Question(
        "Typical size of one message (bytes)",
        "The usual size of one message, request or response body. 1024 bytes is 1 KB; "
        "a JSON order is a few KB.",
    ),
    "file_bytes": Question(
        "Size of one file or batch (bytes)",
        "Only when whole files or batches are moved: the size of one. "
        "1 MB is 1048576 bytes. Leave empty if no files are moved.",
    ),
    "delivery": Question(
        "What delivery guarantee does the business need?",
        "Best effort: a lost message is acceptable. At least once: nothing may be lost, "
        "duplicates are handled. Exactly once: each message takes effect once only.",
    ),
    "loss_tolerant": Question(
        "Is losing an occasional message acceptable?",
        "Tick for data where the next message makes up for a lost one: telemetry, "
        "audio and video, game state.",
    ),
    "ordering": Question(
        "Which order does the receiver rely on?",
        "None: any order works. Per key: messages about the same thing (one order, one "
        "device) must arrive in order. Total: every message in one global order.",
    ),
    "receiver_may_be_offline": Question(
        "Must messages wait while the receiver is down or busy?",
        "Tick if the sender must be able to hand messages off even when the receiver "
        "is restarting, overloaded or offline for a while.",
    ),
    "firewall": Question(
        "What gets through the network between them?",
        "Open: any port. HTTP only: only web traffic on ports 80/443, often through "
        "proxies. SSH only: only SSH on port 22.",
    ),
    "inbound_blocked": Question(
        "Is the receiving side unable to accept incoming connections?",
        "Tick if the receiver sits behind NAT or a firewall and can only connect out, "
        "as many devices and on-premises servers do.",
    ),
    "encryption": Question(
        "Must traffic be encrypted in transit?",
        "Keep this ticked unless the traffic never leaves a network you fully trust.",
    ),
    "constrained_devices": Question(
        "Are devices low-power or is bandwidth scarce or metered?",
        "Tick for battery-powered devices, microcontrollers or cellular and satellite "
        "links where every byte counts.",
    ),
    "small_team": Question(
        "Is a small team running this, wanting few moving parts?",
        "Tick if nobody has time to run and watch an extra server such as a broker.",
    ),
    "flexible_queries": Question(
        "Do callers need different fields or nested data on each call?",
        "Tick if different clients ask for different slices of the data, "
        "such as dashboards and mobile apps with their own views.",
    ),
    "strict_contract": Question(
        "Is a formal, machine-checked contract required?",
        "Tick if both sides must agree on a schema that tools check: an IDL, "
        "a WSDL or a JSON/XML schema, for example for audits or partners.",
    ),
    "notes": Question(
        "Anything else?",
        "Free text kept with the decision for your team; the recommendation does not "
        "read it. At most 5000 characters.",
    ),
}
assert set(QUESTIONS) == set(FIELDS), "every use-case field needs a question"

CHOICE_LABELS: dict[str, dict[str, str]] = {
    "interaction": {
        "request_response": "Request and response: the caller needs the answer to go on",
        "fire_and_forget": "Fire and forget: hand off commands or jobs without waiting",
        "publish_subscribe": "Publish and subscribe: each event goes to several receivers",
        "streaming": "Streaming: a continuous flow of updates or measurements",
        "bidirectional": "Two-way: both sides send at any time over a long-lived session",
        "file_transfer": "File transfer: files or batches move between servers",
        "remote_execution": "Remote execution: run commands on, or reach a service through, "
        "a remote server",
    },
    "delivery": {
        "best_effort": "Best effort",
        "at_least_once": "At least once",
        "exactly_once": "Exactly once",
    },
    "ordering": {"none": "No order needed", "per_key": "In order per key", "total": "Total order"},
    "peers": {
        "internal": "Our own team or company",
        "partner": "A partner organisation",
        "public": "The public",
    },
    "firewall": {
        "open": "Any port is open",
        "http_only": "Only HTTP(S) on ports 80/443",
        "ssh_only": "Only SSH on port 22",
    },
    "existing_interface": {
        "none": "Nothing fixed",
        "rest": "A REST API",
        "soap": "SOAP web services",
        "graphql": "GraphQL",
        "grpc": "gRPC",
        "broker": "A message broker",
        "file_drop": "Files dropped in a folder or on a server",
        "custom_tcp": "A custom protocol over TCP",
    },
}
for _name, _values in CHOICES.items():
    assert set(CHOICE_LABELS[_name]) == set(_values), f"labels for every {_name} value"


@dataclass(frozen=True)
class Group:
    slug: str
    title: str
    basic: tuple[str, ...]
    advanced: tuple[str, ...] = ()


# The questionnaire's sections, in the order a person thinks about the problem;
# the advanced questions of each section sit in a <details> below its basic ones.
GROUPS: tuple[Group, ...] = (
    Group(
        "parties",
        "What talks to what",
        ("title", "interaction", "consumers", "peers"),
        ("browser_clients", "existing_interface"),
    ),
    Group("speed", "How fast", ("latency_ms", "realtime", "rate_per_second")),
    Group("size", "How big", ("message_bytes", "file_bytes")),
    Group(
        "reliability",
        "How reliable",
        ("delivery", "receiver_may_be_offline"),
        ("loss_tolerant", "ordering"),
    ),
    Group(
        "network",
        "Network and constraints",
        ("firewall", "encryption"),
        (
            "inbound_blocked",
            "constrained_devices",
            "small_team",
            "flexible_queries",
            "strict_contract",
            "notes",
            "version",
        ),
    ),
)
assert sorted(n for g in GROUPS for n in (*g.basic, *g.advanced)) == sorted(FIELDS)

_INT_FIELDS = frozenset({"version", "message_bytes", "file_bytes", "consumers"})
_FLOAT_FIELDS = frozenset({"latency_ms", "rate_per_second"})
_NULLABLE = frozenset({"latency_ms", "file_bytes"})
_BOOL_FIELDS = frozenset(
    name for name, info in UseCase.model_fields.items() if info.annotation in (bool, "bool")
)


def _number(text: str, *, whole: bool) -> Any:
    """The number the user typed, or the text itself so the use-case model names the problem."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if whole and math.isfinite(value) and value.is_integer():
        return int(value)  # "1e3" bytes is 1000 bytes
    return value


def _defaults() -> dict[str, Any]:
    return {
        name: info.default for name, info in UseCase.model_fields.items() if not info.is_required()
    }


def usecase_initial(document: dict[str, Any] | None = None) -> dict[str, Any]:
    """Form initial values: the document's defaults overlaid with ``document``."""
    initial = _defaults()
    initial.update(document or {})
    return {k: _shown(v) for k, v in initial.items()}


def _shown(value: Any) -> Any:
    """A value as a form shows it: nothing for null, and 200 rather than 200.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _build_field(name: str) -> forms.Field:
    question = QUESTIONS[name]
    common: dict[str, Any] = {"label": question.label, "help_text": question.help}
    if name in _BOOL_FIELDS:
        return forms.BooleanField(required=False, **common)
    if name in CHOICE_LABELS:
        choices = list(CHOICE_LABELS[name].items())
        widget: forms.Widget = (
            forms.RadioSelect(choices=choices)
            if name == "interaction"
            else forms.Select(choices=choices)
        )
        return forms.CharField(required=False, widget=widget, **common)
    if name in _INT_FIELDS or name in _FLOAT_FIELDS:
        attrs: dict[str, Any] = {
            "step": "1" if name in _INT_FIELDS else "any",
            "inputmode": ("numeric" if name in _INT_FIELDS else "decimal"),
        }
        attrs["min"] = 0 if name == "rate_per_second" else (1 if name in _INT_FIELDS else None)
        if name == "version":
            attrs.update({"min": 1, "max": 1, "readonly": True})
        if name in _NULLABLE:
            attrs["placeholder"] = "no limit" if name == "latency_ms" else "no files"
        attrs = {k: v for k, v in attrs.items() if v is not None}
        return forms.CharField(required=False, widget=forms.NumberInput(attrs=attrs), **common)
    if name == "notes":
        return forms.CharField(
            required=False,
            strip=False,
            widget=forms.Textarea(attrs={"rows": 3, "maxlength": 5000}),
            **common,
        )
    return forms.CharField(
        required=False, strip=False, widget=forms.TextInput(attrs={"maxlength": 200}), **common
    )


class UseCaseForm(forms.Form):
    """Every field of the use-case document; valid when ``parse_usecase`` accepts it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in FIELDS:
            self.fields[name] = _build_field(name)
        self.usecase: UseCase | None = None

    def document(self) -> dict[str, Any]:
        """The answers as a use-case document, typed as well as the text allows."""
        data: dict[str, Any] = {}
        for name in FIELDS:
            value = self.cleaned_data.get(name)
            if name in _BOOL_FIELDS:
                data[name] = bool(value)
                continue
            text = "" if value is None else str(value)
            if name in _INT_FIELDS or name in _FLOAT_FIELDS:
                text = text.strip()
                if text == "":
                    if name in _NULLABLE:
                        data[name] = None
                    # An emptied non-nullable number falls back to the document's default.
                    continue
                data[name] = _number(text, whole=name in _INT_FIELDS)
            elif name in CHOICE_LABELS:
                if text != "":  # missing interaction -> "is required" from the model
                    data[name] = text
            else:
                data[name] = text
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            self.usecase = parse_usecase(self.document())
        except UseCaseError as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned

    def advanced_open(self, group: Group) -> bool:
        """Open a section's advanced part when it holds an error or a non-default answer."""
        defaults = _defaults()
        for name in group.advanced:
            if name in self.errors:
                return True
            value = self[name].value() if self.is_bound else self.initial.get(name)
            default = defaults.get(name)
            if name in _BOOL_FIELDS:
                if bool(value) != bool(default):
                    return True
            elif str(value if value is not None else "") != str(
                default if default is not None else ""
            ):
                return True
        return False


# How long a share link keeps working, counted from when the owner sets it.
EXPIRY_CHOICES: dict[str, timedelta | None] = {
    "never": None,
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
EXPIRY_LABELS = {
    "never": "Never",
    "1h": "In 1 hour",
    "1d": "In 1 day",
    "7d": "In 7 days",
    "30d": "In 30 days",
}


class ExpiryForm(forms.Form):
    expires_in = forms.ChoiceField(
        label="Link stops working",
        choices=list(EXPIRY_LABELS.items()),
        help_text="From now; 'Never' keeps it working until you revoke it.",
    )

    def expires_at(self) -> datetime | None:
        delta = EXPIRY_CHOICES[self.cleaned_data["expires_in"]]
        return None if delta is None else timezone.now() + delta
