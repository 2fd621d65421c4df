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
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from advisor import vocabulary
from advisor.selectors import decision_choices_for_user
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
        ),
    ),
)
# The document format version is the file format's business, not a question: the
# form always writes version 1 (the only one) and never shows it.
FORM_FIELDS: tuple[str, ...] = tuple(name for name in FIELDS if name != "version")
assert sorted(n for g in GROUPS for n in (*g.basic, *g.advanced)) == sorted(FORM_FIELDS)

# The fields read as a number with a unit, and the unit chooser's name beside each.
QUANTITY_FIELDS: dict[str, str] = {
    name: vocabulary.FIELDS[name].kind
    for name in FORM_FIELDS
    if vocabulary.FIELDS[name].kind in vocabulary.UNITS
}
UNIT_SUFFIX = "_unit"

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


def usecase_initial(
    document: dict[str, Any] | None = None, units: dict[str, str] | None = None
) -> dict[str, Any]:
    """Form initial values: the document's defaults overlaid with ``document``.

    Quantities are split into a number and a unit: the unit they were given in
    (``units``, as stored with a decision) when that reads them exactly, else the
    largest unit that does ("20" and "GB", "2" and "h").
    """
    initial = _defaults()
    initial.update(document or {})
    shown = {k: _shown(v) for k, v in initial.items() if k != "version"}
    for name, kind in QUANTITY_FIELDS.items():
        value = initial.get(name)
        if value is None:
            shown[name] = ""
            shown[name + UNIT_SUFFIX] = vocabulary.BASE_UNIT[kind]
            continue
        number, unit = quantity_in_unit(value, kind, (units or {}).get(name))
        shown[name] = number
        shown[name + UNIT_SUFFIX] = unit
    return shown


def _shown(value: Any) -> Any:
    """A value as a form shows it: nothing for null, and 200 rather than 200.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unit(kind: str, symbol: str | None) -> vocabulary.Unit | None:
    return next((u for u in vocabulary.UNITS[kind] if u.symbol == symbol), None)


def quantity_in_unit(value: float | int, kind: str, symbol: str | None) -> tuple[str, str]:
    """(number, unit) for ``value`` in the unit ``symbol`` when that reads it exactly
    with at most three decimals; otherwise in the unit the vocabulary picks."""
    unit = _unit(kind, symbol)
    if unit is not None and value:
        scaled = value / unit.factor
        if scaled >= 0.001 and math.isclose(round(scaled, 3), scaled, rel_tol=1e-9):
            return f"{round(scaled, 3):,}".removesuffix(".0"), unit.symbol
    return vocabulary.split_quantity(value, kind)


def quantity_text(name: str, value: Any, symbol: str | None) -> str:
    """An answer as a person reads it, in the unit it was given in where that is exact
    ("1,500 ms" stays "1,500 ms"); otherwise as the vocabulary writes it."""
    kind = QUANTITY_FIELDS.get(name)
    if kind is None or value is None or symbol is None or isinstance(value, bool):
        return vocabulary.value_text(name, value)
    try:
        number, unit = quantity_in_unit(value, kind, symbol)
    except (TypeError, ValueError, OverflowError):
        return vocabulary.value_text(name, value)
    if unit != symbol:
        return vocabulary.value_text(name, value)
    if unit == "bytes" and number == "1":
        return "1 byte"
    return f"{number} {unit}"


_LEADING_NUMBER = re.compile(r"^\s*(?:[0-9][0-9_,]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|\.[0-9]+)\s*")


def typed_unit(text: str, kind: str) -> str | None:
    """The unit a person typed after the number ("20GB" -> "GB"), None for a bare number
    or one the vocabulary reads in words ("once a day"), which keep the chosen unit."""
    rest = _LEADING_NUMBER.sub("", text.lower(), count=1)
    if rest == text.lower():
        return None
    key = re.sub(r"\s+", "", rest)
    if kind == "rate":
        key = re.sub(r"^(every|each)", "per", key)
    if not key:
        return None
    for unit in vocabulary.UNITS[kind]:
        if key == unit.symbol.lower().replace(" ", "") or key in unit.aliases:
            return unit.symbol
    return None


class UnitSelect(forms.Select):
    """A unit chooser that reads a submission without its unit as the base unit.

    A bound form shows what was submitted, not its initial values: without this, a
    refused submission (or an edit) that sent no unit would preselect nothing, and
    the chooser would not show the unit the number was read in."""

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        value = super().value_from_datadict(data, files, name)
        return self.base if value in (None, "") else value


def _build_unit_field(name: str) -> forms.Field:
    kind = QUANTITY_FIELDS[name]
    choices = [(u.symbol, u.symbol) for u in vocabulary.UNITS[kind]]
    base = vocabulary.BASE_UNIT[kind]
    return forms.CharField(
        required=False,
        # Its own words, not the question's, so "Peak messages or requests" names one control.
        label=f"{vocabulary.FIELDS[name].short}: unit",
        initial=base,
        widget=UnitSelect(base, choices=choices, attrs={"class": "unit"}),
    )


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
    if name in QUANTITY_FIELDS:
        # Text, not a number input: a person may type the unit ("20 GB", "2 h"); a bare
        # number is read in the unit chosen beside it.
        unit_attrs = {
            "inputmode": "text",
            "autocomplete": "off",
            "spellcheck": "false",
            "size": "14",
            "maxlength": "60",
        }
        if name in _NULLABLE:
            unit_attrs["placeholder"] = "no limit" if name == "latency_ms" else "no files"
        return forms.CharField(
            required=False, strip=False, widget=forms.TextInput(attrs=unit_attrs), **common
        )
    if name in _INT_FIELDS or name in _FLOAT_FIELDS:
        attrs: dict[str, Any] = {"step": "1", "inputmode": "numeric", "min": 1}
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
        for name in FORM_FIELDS:
            self.fields[name] = _build_field(name)
            if name in QUANTITY_FIELDS:
                self.fields[name + UNIT_SUFFIX] = _build_unit_field(name)
        self.usecase: UseCase | None = None
        # The unit each quantity was given in, for showing it back that way.
        self.units: dict[str, str] = {}

    def unit_field(self, name: str) -> forms.BoundField | None:
        return self[name + UNIT_SUFFIX] if name in QUANTITY_FIELDS else None

    def document(self) -> dict[str, Any]:
        """The answers as a use-case document, typed as well as the text allows."""
        data: dict[str, Any] = {}
        for name in FORM_FIELDS:
            value = self.cleaned_data.get(name)
            if name in _BOOL_FIELDS:
                data[name] = bool(value)
                continue
            text = "" if value is None else str(value)
            if name in QUANTITY_FIELDS:
                self._read_quantity(name, text.strip(), data)
            elif name in _INT_FIELDS or name in _FLOAT_FIELDS:
                text = text.strip()
                if text != "":
                    data[name] = _number(text, whole=name in _INT_FIELDS)
                # An emptied number falls back to the document's default.
            elif name in CHOICE_LABELS:
                if text != "":  # missing interaction -> "is required" from the model
                    data[name] = text
            else:
                data[name] = text
        return data

    def _read_quantity(self, name: str, text: str, data: dict[str, Any]) -> None:
        """ "20GB", "2 h", "5 per minute", or a bare number in the chosen unit."""
        kind = QUANTITY_FIELDS[name]
        chosen = str(self.cleaned_data.get(name + UNIT_SUFFIX) or vocabulary.BASE_UNIT[kind])
        if _unit(kind, chosen) is None:
            self._unit_errors[name] = (
                f"the unit {json.dumps(chosen[:40])} is not one of "
                f"{vocabulary.accepted_units(kind)}"
            )
            return
        if text == "":
            if name in _NULLABLE:
                data[name] = None
            # An emptied non-nullable number falls back to the document's default.
            return
        try:
            value = vocabulary.parse_quantity(text, kind, default_unit=chosen)
        except vocabulary.QuantityError as exc:
            shown = text if len(text) <= 40 else text[:37] + "..."
            self._unit_errors[name] = f"got {json.dumps(shown)}: {exc}"
            return
        data[name] = value
        bare = _LEADING_NUMBER.sub("", text, count=1) == ""
        # "once a day" names its unit in words: show it back in the unit that reads it.
        self.units[name] = typed_unit(text, kind) or (
            chosen if bare else vocabulary.split_quantity(value, kind)[1]
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._unit_errors: dict[str, str] = {}
        document = self.document()
        try:
            usecase = parse_usecase(document)
        except UseCaseError as exc:
            errors = {**exc.errors, **self._unit_errors}
            for name in QUANTITY_FIELDS:
                if name in exc.errors and name not in self._unit_errors:
                    errors[name] = self._range_message(name)
        else:
            errors = dict(self._unit_errors)
            if not errors:
                self.usecase = usecase
        for field, message in errors.items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned

    def _range_message(self, name: str) -> str:
        """A quantity the model refused as out of range, said in the units typed."""
        words = vocabulary.FIELDS[name]
        typed = str(self.cleaned_data.get(name) or "").strip()
        shown = typed if len(typed) <= 40 else typed[:37] + "..."
        kind = QUANTITY_FIELDS[name]
        unit = self.cleaned_data.get(name + UNIT_SUFFIX) or vocabulary.BASE_UNIT[kind]
        if typed and typed_unit(typed, kind) is None and _LEADING_NUMBER.sub("", typed) == "":
            shown = f"{shown} {unit}"
        high = vocabulary.bound_text(name, words.maximum or 0)
        if words.kind == "duration":
            accepted = f"more than 0 ms and at most {high}"
        elif words.kind == "rate":
            accepted = f"from 0 to {high}"
        else:
            low = vocabulary.bound_text(name, words.minimum or 0)
            accepted = f"from {low} to {high}"
        if words.nullable:
            accepted += f", or empty for {words.null_text}"
        return f"got {json.dumps(shown)}; accepted: {accepted}"

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
    # No choice is preselected: a select showing "Never" beside a link that expires
    # next week would say the opposite of the expiry column next to it.
    expires_in = forms.ChoiceField(
        label="Change when it stops working",
        choices=[("", "Choose…"), *EXPIRY_LABELS.items()],
        help_text="From now; 'Never' keeps it working until you revoke it.",
    )

    def expires_at(self) -> datetime | None:
        delta = EXPIRY_CHOICES[self.cleaned_data["expires_in"]]
        return None if delta is None else timezone.now() + delta


class DecisionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        title = obj.heading or "Untitled use case"
        version = f" (version {obj.revision})" if obj.revision > 1 else ""
        return f"{title}{version}, {obj.created_at:%d %b %Y %H:%M}"


class CompareForm(forms.Form):
    """Two of the user's own decisions; anyone else's is not a choice."""

    a = DecisionChoiceField(queryset=None, label="Compare", empty_label="Choose a decision")
    b = DecisionChoiceField(queryset=None, label="with", empty_label="Choose a decision")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queryset = decision_choices_for_user(user=user)
        for name in ("a", "b"):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = queryset

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        a, b = cleaned.get("a"), cleaned.get("b")
        if a is not None and b is not None and a.pk == b.pk:
            raise forms.ValidationError("Choose two different decisions to compare.")
        return cleaned
