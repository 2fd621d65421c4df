"""The questionnaire, a Django form that mirrors the use-case document; and the expiry form.

The form only carries answers; whether they are valid is decided in one place,
:func:`advisor.usecase.parse_usecase`, and its per-field messages are attached
to the form fields. That is why numbers and choices are plain ``CharField``s
here: a Django ``IntegerField`` or ``ChoiceField`` would reject bad input with
its own words before the use-case model ever saw it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from advisor import vocabulary
from advisor.usecase import (
    FIELDS,
    UseCase,
    UseCaseError,
    parse_usecase,
)


@dataclass(frozen=True)
class Question:
    label: str
    help: str


# The question a person reads for each field, and its help: from the vocabulary.
QUESTIONS: dict[str, Question] = {
    name: Question(words.question, words.help) for name, words in vocabulary.FIELDS.items()
}
CHOICE_LABELS: dict[str, dict[str, str]] = {
    name: dict(words.choices) for name, words in vocabulary.FIELDS.items() if words.choices
}


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
        if vocabulary.FIELDS[name].kind in vocabulary.UNITS:
            # Text, not a number input: a person may type the unit ("20 GB", "2 h").
            unit_attrs = {"inputmode": "text", "autocomplete": "off", "spellcheck": "false"}
            if name in _NULLABLE:
                unit_attrs["placeholder"] = "no limit" if name == "latency_ms" else "no files"
            return forms.CharField(
                required=False, widget=forms.TextInput(attrs=unit_attrs), **common
            )
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
                kind = vocabulary.FIELDS[name].kind
                if kind in vocabulary.UNITS:
                    # "20GB", "2 h", "5 per minute": read with their unit, never misread.
                    try:
                        data[name] = vocabulary.parse_quantity(text, kind)
                    except vocabulary.QuantityError as exc:
                        self._unit_errors[name] = f"got {json.dumps(text)}: {exc}"
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
        self._unit_errors: dict[str, str] = {}
        document = self.document()
        try:
            usecase = parse_usecase(document)
        except UseCaseError as exc:
            errors = {**exc.errors, **self._unit_errors}
        else:
            errors = dict(self._unit_errors)
            if not errors:
                self.usecase = usecase
        for field, message in errors.items():
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
