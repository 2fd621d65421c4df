"""The use-case document, version 1 (``docs/usecase.md`` section 1).

The one input model of the product: the web form, the JSON API and
``manage.py advise`` all build a :class:`UseCase`. It is strict: unknown
fields, wrong types and out-of-range values are errors, and every error names
the field and says what is accepted (:func:`error_messages`).
"""

from __future__ import annotations

import json
import re
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


# The largest integer a double holds exactly; every integer maximum sits far below it.
_EXACT_FLOAT_INTEGER = 2**53

# A use-case document is a few hundred bytes; the longest valid one (5000 characters
# of notes, each escaped as a surrogate pair) stays under 64 KiB. These bound the work
# a hostile one can cause before its fields are even looked at: PyYAML, pure Python,
# takes about a second for this much.
MAX_DOCUMENT_CHARS = 128 * 1024
# The document is a flat object, perhaps wrapped once under "usecase"; nothing real
# nests deeper than a few levels. Bounded well below Python's recursion limit.
MAX_NESTING = 32
# What an error message quotes of a bad value, and how many fields it reports.
PREVIEW_CHARS = 60
MAX_REPORTED_ERRORS = 30

# Only the plain-scalar types JSON has: no timestamps (a date stays the text it is),
# no merge keys ("<<") and no YAML 1.1 "value" or "yaml" types. Numbers are read as
# in JSON (and YAML 1.2), plus "_" between digits: not YAML 1.1's octal "012",
# hexadecimal, binary or base-60 "1:30" (which makes a title "1:30" the number 90,
# and a long "1:2:...:3.5" overflow).
_IMPLICIT_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:(?:0|[1-9][0-9_]*)(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


# Title and notes refuse NUL (PostgreSQL text cannot hold it); the schema says so,
# in a pattern ECMA-262 and Python read alike.
_NO_NUL = "^[^\\u0000]*$"


class UseCase(BaseModel):
    """One server-to-server communication need."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Literal[1] = Field(1, description="Format version; always 1.")
    title: str = Field(
        "",
        max_length=MAX_TITLE_CHARS,
        description="A name for the use case.",
        json_schema_extra={"pattern": _NO_NUL},
    )
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
    notes: str = Field(
        "",
        max_length=MAX_NOTES_CHARS,
        description="Free text.",
        json_schema_extra={"pattern": _NO_NUL},
    )

    @field_validator("version", "message_bytes", "file_bytes", "consumers", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # JSON Schema counts 1000.0 an integer (a number with a zero fraction), and so
        # does the contract; strict mode alone would refuse it.
        # Only floats that hold an integer exactly (|x| <= 2**53, far above every
        # maximum) are converted: 1e23 stays 1e+23 in the message, not 99999999999999991611392.
        if type(value) is float and value.is_integer() and abs(value) <= _EXACT_FLOAT_INTEGER:
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


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short JSON-like rendering of ``value`` for an error message, at most ``limit`` chars.

    It stops as soon as it has enough to show, so its cost is bounded whatever the
    value: a huge string, a deeply nested list, an integer of thousands of digits
    (which ``str`` would refuse), or a structure that shares parts many times over.
    """
    out: list[str] = []
    size = 0

    def emit(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)

    def walk(item: Any, depth: int) -> None:
        if size > limit:
            return
        if depth > 8:
            emit("...")
        elif item is None or isinstance(item, bool):
            emit(json.dumps(item))
        elif isinstance(item, int):
            if item.bit_length() > 256:  # about 77 digits; str() refuses past 4300
                emit(f"<a whole number of about {int(item.bit_length() * 0.30103)} digits>")
            else:
                emit(str(item))
        elif isinstance(item, float):
            emit(json.dumps(item))
        elif isinstance(item, str):
            # ASCII only: no control, bidi or terminal escape characters in a message.
            emit(json.dumps(item[: limit + 1]))
        elif isinstance(item, dict):
            emit("{")
            for index, (key, member) in enumerate(item.items()):
                if size > limit:
                    break
                if index:
                    emit(", ")
                walk(key, depth + 1)
                emit(": ")
                walk(member, depth + 1)
            emit("}")
        elif isinstance(item, list | tuple):
            emit("[")
            for index, member in enumerate(item):
                if size > limit:
                    break
                if index:
                    emit(", ")
                walk(member, depth + 1)
            emit("]")
        else:  # the loaders make only JSON types; anything else is named, not printed
            emit(f"<{type(item).__name__}>")

    walk(value, 0)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_of(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(document)"
    name = str(loc[0])
    # An unknown field's name comes from the input: quote it, bounded, when it is long.
    return name if len(name) <= PREVIEW_CHARS else preview(name)


def error_messages(exc: ValidationError) -> dict[str, str]:
    """Turn pydantic's errors into one clear message per field (bounded in size and count)."""
    errors: dict[str, str] = {}
    others = 0
    for err in exc.errors(include_url=False):
        field = _field_of(err["loc"])
        if field in errors:
            continue  # a union reports once per branch; the first says enough
        if len(errors) >= MAX_REPORTED_ERRORS:
            others += 1
            continue
        kind = err["type"]
        if kind == "extra_forbidden":
            errors[field] = (
                "is not a field of the use-case document (known fields: " + ", ".join(FIELDS) + ")"
            )
        elif kind == "missing":
            errors[field] = f"is required; accepted: {ACCEPTED.get(field, 'a value')}"
        else:
            shown = preview(err.get("input"))
            errors[field] = f"got {shown}; accepted: {ACCEPTED.get(field, err['msg'])}"
    if others:
        errors["(more)"] = f"{others} more fields have errors; fix the ones above first"
    return errors


def parse_usecase(data: Any) -> UseCase:
    """Validate an already-parsed object (a dict) into a UseCase or raise UseCaseError."""
    if not isinstance(data, dict):
        raise UseCaseError(
            {"(document)": f"must be an object with named fields, got {type(data).__name__}"}
        )
    for key in data:
        if not isinstance(key, str):
            shown = f"{preview(key)} ({type(key).__name__})"
            raise UseCaseError({"(document)": f"field names must be text, got {shown}"})
    try:
        return UseCase.model_validate(data)
    except ValidationError as exc:
        raise UseCaseError(error_messages(exc)) from None


_YAML_TAG = "tag:yaml.org,2002:"


class DocumentLoader(yaml.SafeLoader):
    """A YAML loader for documents from outside: SafeLoader without what they abuse.

    It refuses anchors and aliases (``&a`` / ``*a``: a kilobyte of them expands into
    gigabytes, the "billion laughs"), every explicit tag (``!!timestamp``,
    ``!!binary``, ``!!python/...``, even ``!!bool``: a use case needs none, and some
    crash SafeLoader's constructors), and nesting deeper than :data:`MAX_NESTING`
    (the composer recurses once per level). Plain scalars resolve only to the types
    JSON has. Each refusal is a ``yaml.MarkedYAMLError`` that says where it is.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _IMPLICIT_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse("an alias (*name) is not accepted; write the value out", event)
        if event.anchor is not None:
            raise self._refuse("an anchor (&name) is not accepted; write the value out", event)
        tag = event.tag
        if tag is not None:
            shown = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise self._refuse(f"an explicit tag ({shown}) is not accepted; remove it", event)
        if not isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise self._refuse(f"lists or mappings nest deeper than {MAX_NESTING} levels", event)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    @staticmethod
    def _refuse(problem: str, event: yaml.Event) -> yaml.MarkedYAMLError:
        mark = event.start_mark if isinstance(event.start_mark, yaml.Mark) else None
        return RefusedYAML(None, None, problem, mark)


DocumentLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
DocumentLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class RefusedYAML(yaml.composer.ComposerError):
    """Well-formed YAML that uses something :class:`DocumentLoader` does not accept."""


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`DocumentLoader` (raises ``yaml.YAMLError``)."""
    loader = DocumentLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message in one line: the problem and where, never a page of input."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        text = exc.problem
        mark = exc.problem_mark
        if mark is not None:
            text += f" at line {mark.line + 1} column {mark.column + 1}"
    else:
        text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether lists/objects in ``data`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            members = item.values() if isinstance(item, dict) else item
            stack.extend((member, depth + 1) for member in members)
    return False


_TOO_DEEP = f"is refused: lists or objects nest deeper than {MAX_NESTING} levels"


def load_usecase_text(text: str) -> UseCase:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better) into a UseCase."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise UseCaseError(
            {"(document)": f"is larger than {MAX_DOCUMENT_CHARS} characters; a use case is small"}
        )
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
        except RecursionError:
            raise UseCaseError({"(document)": _TOO_DEEP}) from None
        except ValueError as exc:  # e.g. an integer longer than Python converts
            raise UseCaseError({"(document)": f"is not valid JSON: {exc}"}) from None
        if _nesting_exceeds(data, MAX_NESTING):
            raise UseCaseError({"(document)": _TOO_DEEP})
    else:
        try:
            data = load_yaml(text)
        except RefusedYAML as exc:
            raise UseCaseError({"(document)": f"is refused: {_yaml_problem(exc)}"}) from None
        except yaml.YAMLError as exc:
            raise UseCaseError({"(document)": f"is not valid YAML: {_yaml_problem(exc)}"}) from None
        except (ValueError, ArithmeticError) as exc:  # e.g. more digits than Python converts
            raise UseCaseError({"(document)": f"is not valid YAML: {exc}"}) from None
    # A usecase wrapped as in the scenarios folder is accepted for convenience.
    if isinstance(data, dict) and set(data) >= {"usecase"} and "interaction" not in data:
        data = data["usecase"]
    return parse_usecase(data)
