"""The vocabulary: every field has its words, and quantities read and show as people write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from advisor import vocabulary as v
from advisor.usecase import UseCase, UseCaseError, parse_usecase


def test_every_field_of_the_document_has_its_words_and_no_more() -> None:
    assert list(v.FIELDS) == list(UseCase.model_fields)
    for name, words in v.FIELDS.items():
        assert words.question and words.short and words.help and words.accepted, name
        if words.kind == "choice":
            assert v.CHOICES[name], name


@pytest.mark.parametrize("name", sorted(v.NUMBER_FIELDS))
def test_the_bounds_the_words_state_are_the_models(name: str) -> None:
    words = v.FIELDS[name]
    assert words.maximum is not None
    top = int(words.maximum)
    assert f"{top:,}" in words.accepted
    assert getattr(parse_usecase({"interaction": "streaming", name: top}), name) == top
    with pytest.raises(UseCaseError) as caught:
        parse_usecase({"interaction": "streaming", name: top + 1})
    assert name in caught.value.errors


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("20GB", "bytes", 20 * 10**9),
        ("20 GB", "bytes", 20 * 10**9),
        ("20 gigabytes", "bytes", 20 * 10**9),
        ("20 GiB", "bytes", 20 * 2**30),
        ("1.5 MB", "bytes", 1_500_000),
        ("1,024", "bytes", 1024),
        ("512", "bytes", 512),
        ("1 TiB", "bytes", 2**40),
        ("2 h", "duration", 7_200_000),
        ("2h", "duration", 7_200_000),
        ("250 ms", "duration", 250),
        ("1.5 s", "duration", 1500),
        ("3 minutes", "duration", 180_000),
        ("200", "duration", 200),
        ("5 per minute", "rate", 5 / 60),
        ("5/min", "rate", 5 / 60),
        ("once a day", "rate", 1 / 86400),
        ("once a night", "rate", 1 / 86400),
        ("twice per hour", "rate", 2 / 3600),
        ("10 every second", "rate", 10),
        ("300", "rate", 300),
    ],
)
def test_quantities_as_people_write_them(text: str, kind: str, expected: float) -> None:
    got = v.parse_quantity(text, kind)
    assert got == pytest.approx(expected, rel=1e-12)
    if kind == "bytes":
        assert type(got) is int


def test_a_bare_number_takes_the_unit_chosen_beside_it() -> None:
    assert v.parse_quantity("20", "bytes", "GB") == 20 * 10**9
    assert v.parse_quantity("2", "duration", "h") == 7_200_000
    assert v.parse_quantity("1", "rate", "per day") == pytest.approx(1 / 86400)
    # A typed unit wins over the one chosen beside the input.
    assert v.parse_quantity("20 MB", "bytes", "GB") == 20 * 10**6


@pytest.mark.parametrize(
    ("text", "kind", "needle"),
    [
        ("20 parsecs", "bytes", "not a unit"),
        ("20 Gb", "bytes", "bits"),
        ("1,5 MB", "bytes", "decimal point"),
        ("fast", "duration", "not a number"),
        ("2 fortnights", "duration", "not a unit"),
        ("-5 ms", "duration", "not a number"),
        ("", "rate", "not a number"),
        ("5 per week", "rate", "not a unit"),
    ],
)
def test_what_cannot_be_read_is_refused_saying_what_is_accepted(
    text: str, kind: str, needle: str
) -> None:
    with pytest.raises(v.QuantityError) as caught:
        v.parse_quantity(text, kind)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (21_474_836_480, "bytes", ("20", "GiB")),
        (20_000_000_000, "bytes", ("20", "GB")),
        (1024, "bytes", ("1", "KiB")),
        (1500, "bytes", ("1.5", "KB")),
        (1201, "bytes", ("1.201", "KB")),
        (7, "bytes", ("7", "bytes")),
        (1234567, "bytes", ("1,234,567", "bytes")),
        (1 / 86400, "rate", ("1", "per day")),
        (5 / 60, "rate", ("5", "per minute")),
        (200, "rate", ("200", "per second")),
        (0.5, "rate", ("30", "per minute")),
        (7_200_000, "duration", ("2", "h")),
        (1500, "duration", ("1.5", "s")),
        (250, "duration", ("250", "ms")),
    ],
)
def test_values_come_back_in_the_unit_they_were_typed_in(
    value: float, kind: str, shown: tuple[str, str]
) -> None:
    assert v.split_quantity(value, kind) == shown


@given(st.integers(min_value=1, max_value=10**15))
def test_a_size_shown_and_read_back_is_the_same_size(n: int) -> None:
    number, unit = v.split_quantity(n, "bytes")
    assert v.parse_quantity(f"{number} {unit}", "bytes") == n


@given(
    st.integers(min_value=1, max_value=1000),
    st.sampled_from(["per second", "per minute", "per hour", "per day"]),
)
def test_a_rate_shown_and_read_back_is_the_same_rate(n: int, unit: str) -> None:
    rate = v.parse_quantity(f"{n} {unit}", "rate")
    number, shown_unit = v.split_quantity(rate, "rate")
    assert v.parse_quantity(f"{number} {shown_unit}", "rate") == pytest.approx(rate)


def test_values_read_as_sentences() -> None:
    assert v.value_text("message_bytes", 2000) == "2 KB"
    assert v.value_text("file_bytes", None) == "no files"
    assert v.value_text("latency_ms", None) == "no budget"
    assert v.value_text("latency_ms", 7_200_000) == "2 h"
    assert v.value_text("rate_per_second", 1 / 86400) == "1 per day"
    assert v.value_text("consumers", 1_000_000) == "1,000,000"
    assert v.value_text("receiver_may_be_offline", True) == "yes"
    assert v.value_text("peers", "public") == "The public"
    assert v.answer_text("message_bytes", 1_048_576) == "Message size: 1 MiB"
    assert v.bound_text("message_bytes", 1201) == "1,201 bytes"
    assert v.bound_text("message_bytes", 16 * 2**20) == "16 MiB"
    # Never an exponent or a 300-digit number in a sentence.
    assert "e+" not in v.value_text("file_bytes", 10**15)
    assert len(v.value_text("rate_per_second", 10**9)) < 30
