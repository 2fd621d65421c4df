"""The use-case document v1: strict validation with messages that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from advisor.usecase import (
    ACCEPTED,
    FIELDS,
    UseCase,
    UseCaseError,
    load_usecase_text,
    parse_usecase,
)
from tests.advisor.strategies import documents


def errors_for(doc: Any) -> dict[str, str]:
    with pytest.raises(UseCaseError) as caught:
        parse_usecase(doc)
    return caught.value.errors


def test_only_interaction_is_required_and_defaults_match_the_contract() -> None:
    usecase = parse_usecase({"interaction": "streaming"})
    assert usecase.model_dump() == {
        "version": 1,
        "title": "",
        "interaction": "streaming",
        "latency_ms": None,
        "realtime": False,
        "message_bytes": 1024,
        "file_bytes": None,
        "rate_per_second": 1,
        "delivery": "at_least_once",
        "loss_tolerant": False,
        "ordering": "none",
        "receiver_may_be_offline": False,
        "consumers": 1,
        "peers": "internal",
        "browser_clients": False,
        "firewall": "open",
        "inbound_blocked": False,
        "flexible_queries": False,
        "strict_contract": False,
        "existing_interface": "none",
        "constrained_devices": False,
        "encryption": True,
        "small_team": False,
        "notes": "",
    }


def test_missing_interaction_names_the_field_and_the_choices() -> None:
    errors = errors_for({})
    assert list(errors) == ["interaction"]
    assert "required" in errors["interaction"]
    assert "request_response" in errors["interaction"]


def test_unknown_field_is_an_error_not_ignored() -> None:
    errors = errors_for({"interaction": "streaming", "latency": 5})
    assert "latency" in errors
    assert "not a field" in errors["latency"]
    assert "latency_ms" in errors["latency"]  # points at the right spelling


# One invalid value per field: each must be rejected, naming that field and what it accepts.
INVALID: list[tuple[str, Any]] = [
    ("version", 2),
    ("version", "1"),
    ("version", True),
    ("version", 2.0),
    ("title", "x" * 201),
    ("title", 5),
    ("title", "nul\x00inside"),
    ("interaction", "rpc"),
    ("latency_ms", 0),
    ("latency_ms", -1),
    ("latency_ms", 86_400_001),
    ("latency_ms", "100"),
    ("latency_ms", float("inf")),
    ("latency_ms", float("nan")),
    ("latency_ms", True),
    ("realtime", "yes"),
    ("realtime", 1),
    ("message_bytes", 0),
    ("message_bytes", 1.5),
    ("message_bytes", "1024"),
    ("message_bytes", None),
    ("message_bytes", 10**12 + 1),
    ("message_bytes", 10**23),
    ("message_bytes", 1e300),
    ("file_bytes", 0),
    ("file_bytes", "big"),
    ("file_bytes", 10**15 + 1),
    ("rate_per_second", -0.1),
    ("rate_per_second", float("inf")),
    ("rate_per_second", None),
    ("rate_per_second", 1e308),
    ("rate_per_second", 1_000_000_001),
    ("delivery", "at_most_once"),
    ("loss_tolerant", "false"),
    ("ordering", "fifo"),
    ("receiver_may_be_offline", 0),
    ("consumers", 0),
    ("consumers", 2.5),
    ("consumers", False),
    ("consumers", 10**9 + 1),
    ("peers", "external"),
    ("browser_clients", None),
    ("firewall", "closed"),
    ("inbound_blocked", "no"),
    ("flexible_queries", []),
    ("strict_contract", {}),
    ("existing_interface", "kafka"),
    ("constrained_devices", "true"),
    ("encryption", None),
    ("small_team", 1.0),
    ("notes", "x" * 5001),
    ("notes", None),
    ("notes", "\x00"),
]


@pytest.mark.parametrize(("field", "value"), INVALID)
def test_every_field_rejects_bad_values_with_a_clear_message(field: str, value: Any) -> None:
    doc = {"interaction": "request_response", field: value}
    errors = errors_for(doc)
    assert list(errors) == [field]
    assert ACCEPTED[field] in errors[field]


def test_every_field_has_an_invalid_case() -> None:
    assert {field for field, _ in INVALID} == set(FIELDS)


def test_all_errors_reported_at_once() -> None:
    errors = errors_for({"interaction": "x", "consumers": 0, "peers": "moon", "extra": 1})
    assert set(errors) == {"interaction", "consumers", "peers", "extra"}


@pytest.mark.parametrize("doc", [[], "streaming", 5, None])
def test_document_must_be_an_object(doc: Any) -> None:
    assert "(document)" in errors_for(doc)


def test_boundaries_are_accepted() -> None:
    usecase = parse_usecase(
        {
            "interaction": "file_transfer",
            "latency_ms": 86_400_000,
            "message_bytes": 1,
            "file_bytes": 1,
            "rate_per_second": 0,
            "consumers": 1,
            "title": "t" * 200,
            "notes": "n" * 5000,
        }
    )
    assert usecase.latency_ms == 86_400_000
    assert parse_usecase({"interaction": "streaming", "latency_ms": 0.001}).latency_ms == 0.001
    top = parse_usecase(
        {
            "interaction": "file_transfer",
            "message_bytes": 10**12,
            "file_bytes": 10**15,
            "rate_per_second": 10**9,
            "consumers": 10**9,
        }
    )
    assert (top.message_bytes, top.file_bytes, top.consumers) == (10**12, 10**15, 10**9)


@pytest.mark.parametrize("field", ["message_bytes", "file_bytes", "consumers", "version"])
def test_a_number_with_a_zero_fraction_is_an_integer(field: str) -> None:
    # As JSON Schema counts it: 1000.0 is an integer, and stays one in the document.
    value = 1.0 if field == "version" else 1000.0
    usecase = parse_usecase({"interaction": "file_transfer", field: value})
    assert getattr(usecase, field) == int(value)
    assert type(getattr(usecase, field)) is int
    text = json.dumps({"interaction": "streaming", field: value})
    assert getattr(load_usecase_text(text), field) == int(value)


def test_yaml_and_json_give_the_same_document() -> None:
    from_yaml = load_usecase_text("interaction: streaming\nlatency_ms: 20\nloss_tolerant: true\n")
    from_json = load_usecase_text(
        '{"interaction": "streaming", "latency_ms": 20, "loss_tolerant": true}'
    )
    assert from_yaml == from_json


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ("interaction: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must be an object"),
        ("interaction: streaming\nmessage_bytes: 1" + "0" * 5000 + "\n", "not valid YAML"),
        ('{"interaction": "streaming", "message_bytes": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
)
def test_unparseable_text_is_a_document_error(text: str, needle: str) -> None:
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text(text)
    assert needle in caught.value.errors["(document)"]


def test_yaml_booleans_in_quotes_stay_strings_and_are_rejected() -> None:
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text("interaction: streaming\nrealtime: 'true'\n")
    assert "realtime" in caught.value.errors


@given(documents)
def test_generated_documents_are_valid(doc: dict[str, Any]) -> None:
    assert isinstance(parse_usecase(doc), UseCase)


def test_yaml_dates_stay_text_and_merge_keys_are_plain_names() -> None:
    # No implicit timestamps: a title that looks like a date is the text it is.
    assert load_usecase_text("interaction: streaming\ntitle: 2001-12-14\n").title == "2001-12-14"
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text("interaction: streaming\n<<: {realtime: true}\n")
    assert "<<" in caught.value.errors


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("interaction: &x streaming\n", "anchor (&name) is not accepted"),
        ("interaction: *x\n", "alias (*name) is not accepted"),
        ("interaction: !!str streaming\n", "explicit tag (!!str)"),
        ("interaction: ! streaming\n", "explicit tag (!)"),
        ("%TAG !e! tag:example.com,2000:\n---\ninteraction: !e!x streaming\n", "explicit tag"),
        ("interaction: streaming\ntitle: " + "[" * 33 + "]" * 33 + "\n", "deeper than 32"),
    ],
)
def test_the_yaml_loader_refuses_anchors_aliases_tags_and_deep_nesting(
    text: str, needle: str
) -> None:
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text(text)
    message = caught.value.errors["(document)"]
    assert message.startswith("is refused: ") and needle in message
    assert "line " in message


def test_nesting_up_to_the_limit_is_parsed_and_then_judged_by_field() -> None:
    deep = "[" * 31 + "]" * 31
    for text in (
        f"interaction: streaming\ntitle: {deep}\n",
        f'{{"interaction": "streaming", "title": {deep}}}',
    ):
        with pytest.raises(UseCaseError) as caught:
            load_usecase_text(text)
        assert caught.value.errors["title"].startswith("got [[[[")


def test_error_previews_are_bounded_whatever_the_value() -> None:
    # Values json.dumps cannot even render: nesting past the recursion limit and an
    # integer past str()'s 4300 digits; and one that shares a list a billion times.
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    shared: list[Any] = ["lol"] * 10
    for _ in range(8):
        shared = [shared] * 10
    for value in (deep, 10**5000, shared, "x" * 10**6, {"k" * 1000: 1}):
        errors = errors_for({"interaction": "streaming", "title": value})
        assert len(errors["title"]) < 200, errors["title"]
    assert (
        "a whole number of about 5000 digits"
        in errors_for({"interaction": "streaming", "consumers": 10**5000})["consumers"]
    )


def test_a_float_beyond_exact_integers_is_shown_as_written() -> None:
    assert errors_for({"interaction": "streaming", "message_bytes": 1e23})["message_bytes"] == (
        "got 1e+23; accepted: " + ACCEPTED["message_bytes"]
    )


def test_field_names_must_be_text_and_are_quoted_bounded() -> None:
    assert (
        "field names must be text" in errors_for({"interaction": "streaming", 1: 2})["(document)"]
    )
    errors = errors_for({"interaction": "streaming", "n" * 10_000: 1})
    (name,) = errors
    assert len(name) <= 60 and name.startswith('"nnn')


def test_only_so_many_field_errors_are_reported() -> None:
    errors = errors_for({"interaction": "streaming", **{f"f{i}": 1 for i in range(1000)}})
    assert len(errors) == 31 and "970 more fields have errors" in errors["(more)"]


def test_a_document_over_the_size_limit_is_refused() -> None:
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text("interaction: streaming\nnotes: " + "x" * 200_000)
    assert "larger than" in caught.value.errors["(document)"]


def test_yaml_numbers_are_read_as_json_reads_them() -> None:
    doc = load_usecase_text("interaction: streaming\ntitle: 1:30\nmessage_bytes: 1e3\n")
    assert (doc.title, doc.message_bytes) == ("1:30", 1000)  # not base 60, not the text "1e3"
    assert load_usecase_text("interaction: streaming\nconsumers: 1_000\n").consumers == 1000
    for text in ("012", "0x10", "0b11", "0o7"):  # YAML 1.1 octal, hex, binary: just text
        with pytest.raises(UseCaseError) as caught:
            load_usecase_text(f"interaction: streaming\nconsumers: {text}\n")
        assert caught.value.errors["consumers"].startswith(f'got "{text}"')


def test_a_long_base_60_float_is_text_not_an_overflow() -> None:
    # PyYAML's YAML 1.1 resolver read this as a float and raised OverflowError.
    with pytest.raises(UseCaseError) as caught:
        load_usecase_text("interaction: streaming\nlatency_ms: " + ":".join(["59"] * 400) + ".5\n")
    assert caught.value.errors["latency_ms"].startswith('got "59:59:59')


def test_a_preview_shows_no_control_or_bidi_characters() -> None:
    message = errors_for({"interaction": "streaming", "title": ["\x1b[2J\x9b\u202eevil"]})["title"]
    assert message.isascii() and "\\u001b" in message and "\\u202e" in message
