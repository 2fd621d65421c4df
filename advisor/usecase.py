"""The use-case document, version 1 (``docs/usecase.md`` section 1).

The one input model of the product: the web form, the JSON API and
``manage.py advise`` all build a :class:`UseCase`. It is strict: unknown
fields, wrong types and out-of-range values are errors, and every error names
the field and says what is accepted (:func:`error_messages`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from advisor import vocabulary
from advisor.vocabulary import (
    MAX_CONSUMERS,
    MAX_FILE_BYTES,
    MAX_LATENCY_MS,
    MAX_MESSAGE_BYTES,
    MAX_NOTES_CHARS,
    MAX_RATE_PER_SECOND,
    MAX_TITLE_CHARS,
)

Interaction = Literal[
    "request_response",
    "fire_and_forget",
    "publish_subscribe",
    "streaming",
    "bidirectional",
    "file_transfer",
    "remote_execution",
]
Delivery = Literal["best_effort", "at_least_once", "exactly_once"]
Ordering = Literal["none", "per_key", "total"]
Peers = Literal["internal", "partner", "public"]
Firewall = Literal["open", "http_only", "ssh_only"]
ExistingInterface = Literal[
    "none", "rest", "soap", "graphql", "grpc", "broker", "file_drop", "custom_tcp"
]

INTERACTIONS: tuple[str, ...] = Interaction.__args__  # type: ignore[attr-defined]
DELIVERIES: tuple[str, ...] = Delivery.__args__  # type: ignore[attr-defined]
ORDERINGS: tuple[str, ...] = Ordering.__args__  # type: ignore[attr-defined]
PEERS: tuple[str, ...] = Peers.__args__  # type: ignore[attr-defined]
FIREWALLS: tuple[str, ...] = Firewall.__args__  # type: ignore[attr-defined]
EXISTING_INTERFACES: tuple[str, ...] = ExistingInterface.__args__  # type: ignore[attr-defined]


class UseCase(BaseModel):
    """One server-to-server communication need."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Literal[1] = Field(1, description="Format version; always 1.")
    title: str = Field("", max_length=MAX_TITLE_CHARS, description="A name for the use case.")
    interaction: Interaction = Field(description="How the two sides interact.")
    latency_ms: Annotated[float | None, Field(gt=0, le=MAX_LATENCY_MS, allow_inf_nan=False)] = (
        Field(None, description="End-to-end budget (p95) for one message or request, in ms.")
    )
    realtime: bool = Field(False, description="Receivers must get updates as they happen.")
    message_bytes: int = Field(
        1024, ge=1, le=MAX_MESSAGE_BYTES, description="Typical size of one message or body."
    )
    file_bytes: Annotated[int | None, Field(ge=1, le=MAX_FILE_BYTES)] = Field(
        None, description="Size of one file or batch, when files are moved."
    )
    rate_per_second: float = Field(
        1,
        ge=0,
        le=MAX_RATE_PER_SECOND,
        allow_inf_nan=False,
        description="Peak messages or requests per second.",
    )
    delivery: Delivery = Field("at_least_once", description="Delivery guarantee needed.")
    loss_tolerant: bool = Field(False, description="Losing an occasional message is acceptable.")
    ordering: Ordering = Field("none", description="Ordering the receiver relies on.")
    receiver_may_be_offline: bool = Field(
        False, description="Messages must wait while a receiver is down or busy."
    )
    consumers: int = Field(
        1, ge=1, le=MAX_CONSUMERS, description="Independent receivers of each message."
    )
    peers: Peers = Field("internal", description="Who runs the other end.")
    browser_clients: bool = Field(False, description="Web browsers connect to it directly.")
    firewall: Firewall = Field("open", description="What crosses the network path.")
    inbound_blocked: bool = Field(
        False, description="The receiving side cannot accept inbound connections."
    )
    flexible_queries: bool = Field(
        False, description="Clients need different fields or nested data on each call."
    )
    strict_contract: bool = Field(
        False, description="A formal, machine-checked contract (schema, IDL, WSDL) is required."
    )
    existing_interface: ExistingInterface = Field(
        "none", description="What the other side already speaks, where that cannot change."
    )
    constrained_devices: bool = Field(
        False, description="Low-power devices or scarce, metered bandwidth."
    )
    encryption: bool = Field(True, description="Traffic must be encrypted in transit.")
    small_team: bool = Field(False, description="A small team that wants few moving parts.")
    notes: str = Field("", max_length=MAX_NOTES_CHARS, description="Free text.")

    @field_validator("version", "message_bytes", "file_bytes", "consumers", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # JSON Schema counts 1000.0 an integer (a number with a zero fraction), and so
        # does the contract; strict mode alone would refuse it.
        if type(value) is float and value.is_integer():
            return int(value)
        # Literal[1] compares with ==, which would let true through as 1.
        if info.field_name == "version" and type(value) is not int:
            raise ValueError("must be the number 1")
        return value

    @field_validator("title", "notes")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail on save.
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        return value


# What each field accepts, in the words a user reads next to an error.
ACCEPTED: dict[str, str] = {name: f.accepted for name, f in vocabulary.FIELDS.items()}
FIELDS: tuple[str, ...] = tuple(UseCase.model_fields)
CHOICES = vocabulary.CHOICES
BOOLEAN_FIELDS = vocabulary.BOOLEAN_FIELDS
assert set(ACCEPTED) == set(FIELDS), "every field needs its words in advisor.vocabulary"
assert all(
    CHOICES[name] == values
    for name, values in {
        "interaction": INTERACTIONS,
        "delivery": DELIVERIES,
        "ordering": ORDERINGS,
        "peers": PEERS,
        "firewall": FIREWALLS,
        "existing_interface": EXISTING_INTERFACES,
    }.items()
), "the vocabulary's choices are the model's"
assert set(BOOLEAN_FIELDS) == {
    name for name, field in UseCase.model_fields.items() if field.annotation is bool
}


class UseCaseError(ValueError):
    """A document that is not a valid use case; ``errors`` maps field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))

    def lines(self) -> list[str]:
        return [f"{field}: {message}" for field, message in self.errors.items()]


def _field_of(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]) if loc else "(document)"


def error_messages(exc: ValidationError) -> dict[str, str]:
    """Turn pydantic's errors into one clear message per field."""
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        field = _field_of(err["loc"])
        if field in errors:
            continue  # a union reports once per branch; the first says enough
        kind = err["type"]
        if kind == "extra_forbidden":
            errors[field] = (
                "is not a field of the use-case document (known fields: " + ", ".join(FIELDS) + ")"
            )
        elif kind == "missing":
            errors[field] = f"is required; accepted: {ACCEPTED.get(field, 'a value')}"
        else:
            got = err.get("input")
            shown = json.dumps(got, default=str)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            errors[field] = f"got {shown}; accepted: {ACCEPTED.get(field, err['msg'])}"
    return errors


def parse_usecase(data: Any) -> UseCase:
    """Validate an already-parsed object (a dict) into a UseCase or raise UseCaseError."""
    if not isinstance(data, dict):
        raise UseCaseError(
            {"(document)": f"must be an object with named fields, got {type(data).__name__}"}
        )
    try:
        return UseCase.model_validate(data)
    except ValidationError as exc:
        raise UseCaseError(error_messages(exc)) from None


def load_usecase_text(text: str) -> UseCase:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better) into a UseCase."""
    stripped = text.lstrip()
    if not stripped:
        raise UseCaseError({"(document)": "is empty; expected a JSON or YAML object"})
    data: Any
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UseCaseError(
                {"(document)": f"is not valid JSON: {exc.msg} at line {exc.lineno}"}
            ) from None
        except ValueError as exc:  # e.g. an integer longer than Python converts
            raise UseCaseError({"(document)": f"is not valid JSON: {exc}"}) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UseCaseError({"(document)": f"is not valid YAML: {exc}"}) from None
        except ValueError as exc:  # e.g. an integer longer than Python converts
            raise UseCaseError({"(document)": f"is not valid YAML: {exc}"}) from None
    # A usecase wrapped as in the scenarios folder is accepted for convenience.
    if isinstance(data, dict) and set(data) >= {"usecase"} and "interaction" not in data:
        data = data["usecase"]
    return parse_usecase(data)
