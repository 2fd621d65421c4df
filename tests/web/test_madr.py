"""The MADR export: its sections, and that it is built from the stored result only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils.html import escape

from advisor import services
from advisor.madr import decision_to_madr
from advisor.models import Decision
from advisor.usecase import parse_usecase

pytestmark = pytest.mark.django_db

ORDERS = {
    "title": "Checkout sends order commands to fulfilment",
    "interaction": "fire_and_forget",
    "delivery": "exactly_once",
    "ordering": "per_key",
    "receiver_may_be_offline": True,
    "rate_per_second": 50,
    "notes": "Fulfilment restarts nightly.\n# not a heading",
}


@pytest.fixture
def decision() -> Decision:
    return services.decision_create(usecase=parse_usecase(ORDERS), owner=None)[0]


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def test_madr_has_the_madr_sections_in_order(decision: Decision) -> None:
    text = decision_to_madr(decision)
    assert text.startswith("---\nstatus: proposed\n")
    assert f"date: {decision.created_at:%Y-%m-%d}" in text
    assert "\n# Checkout sends order commands to fulfilment\n" in text
    assert sections(text) == [
        "Context and Problem Statement",
        "Decision Drivers",
        "Considered Options",
        "Decision Outcome",
        "Pros and Cons of the Options",
        "More Information",
    ]
    assert "### Consequences" in text


def test_madr_drivers_come_from_the_answers(decision: Decision) -> None:
    text = decision_to_madr(decision)
    drivers = text.split("## Decision Drivers")[1].split("## ")[0]
    for field in ("interaction", "delivery", "ordering", "receiver_may_be_offline"):
        assert f"(`{field}`)" in drivers
    assert "Exactly once" in drivers and "In order per key" in drivers
    assert "Peak rate: 50 per second (`rate_per_second`)" in drivers  # 50, not 50.0
    # Answers left at their defaults do not crowd the drivers.
    assert "(`encryption`)" not in drivers and "(`consumers`)" not in drivers
    # Free text stays on one line, so it cannot open a heading of its own.
    assert r"Notes: Fulfilment restarts nightly. \# not a heading" in text
    assert "\n# not a heading" not in text


def test_madr_options_are_the_stored_ranking_and_outcome_its_winner(decision: Decision) -> None:
    text = decision_to_madr(decision)
    ranking = decision.result["ranking"]
    options = re.findall(
        r"^\* (.+?): (?:[+-]?[0-9.]+ points|ruled out)$",
        text.split("## Considered Options")[1],
        re.M,
    )
    assert len(options) == len(ranking)
    for option, item in zip(options, ranking, strict=False):
        assert option.startswith(item["label"])
    winner = ranking[0]
    assert f'Chosen option: "{winner["label"]}' in text
    for reason in winner["reasons"]:
        assert " ".join(reason.split()) in text
    # Every option gets a pros-and-cons section with its rules' sources.
    for item in ranking:
        assert f"### {item['label']}" in text
    source_urls = {
        r["source"]["url"]
        for item in ranking
        for r in item["reasons_for"] + item["reasons_against"]
        if r["source"]["url"].startswith("http")
    }
    for url in source_urls:
        assert f"]({url})" in text
    assert f"knowledge base {decision.kb_version}" in text


def test_madr_pros_and_cons_follow_the_reasons_for_and_against(decision: Decision) -> None:
    text = decision_to_madr(decision)
    winner = decision.result["ranking"][0]
    section = text.split(f"### {winner['label']}")[1].split("\n### ")[0]
    sided = [("Good", r) for r in winner["reasons_for"]]
    sided += [("Bad", r) for r in winner["reasons_against"]]
    assert sided
    for kind, reason in sided:
        text = " ".join(reason["text"].split())
        # The text continues the sentence: "because a queue ...", "because RFC ...".
        word = text.split()[0]
        ordinary = len(word) == 1 or word[1:].islower()
        continued = text[0].lower() + text[1:] if ordinary else text
        assert f"* {kind}, because {continued}" in section


@pytest.mark.parametrize(
    ("stored", "continued"),
    [
        ("A queue stores messages.", "a queue stores messages."),
        ("Queues exist to hand off work.", "queues exist to hand off work."),
        ("RFC 9110 says so.", "RFC 9110 says so."),
        ("WebSockets keep one connection.", "WebSockets keep one connection."),
        ("X.509 certificates expire.", "X.509 certificates expire."),
    ],
)
def test_madr_reasons_continue_the_sentence_in_lower_case(
    decision: Decision, stored: str, continued: str
) -> None:
    result = decision.result
    result["ranking"][0]["reasons_for"] = [
        {
            "answer": "Interaction: Fire and forget",
            "weight": 2.0,
            "text": stored,
            "source": {"id": "azure-messaging"},
        }
    ]
    decision.result = result
    assert f"* Good, because {continued} (Interaction" in decision_to_madr(decision)


def test_madr_keeps_what_a_visitor_typed_as_text_not_markup() -> None:
    typed = {**ORDERS, "title": "Orders <b>to</b> the <img src=x onerror=alert(1)>"}
    typed["notes"] = "Ask <script>alert(1)</script> & co"
    decision = services.decision_create(usecase=parse_usecase(typed), owner=None)[0]
    text = decision_to_madr(decision)
    assert "\n# Orders &lt;b&gt;to&lt;/b&gt; the &lt;img src=x onerror=alert(1)&gt;\n" in text
    assert "Notes: Ask &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert "<script>" not in text and "<b>" not in text and "<img" not in text


def test_madr_is_derived_from_the_stored_result(decision: Decision) -> None:
    before = decision_to_madr(decision)
    result = decision.result
    result["ranking"][0]["label"] = "Carrier pigeons"
    result["ranking"][0]["reasons"] = ["pigeons deliver exactly once"]
    result["ranking"][0]["implementation"] = "homing"
    result["ranking"][0]["implementation_label"] = "homing"
    decision.result = result
    decision.save()

    token = services.share_link_create(decision=decision)[1]
    after = Client().get(f"/s/{token}/decision.md").content.decode()
    assert after != before
    assert 'Chosen option: "Carrier pigeons (homing)", because' in after
    assert "* pigeons deliver exactly once" in after


def test_madr_survives_an_empty_or_odd_stored_result(decision: Decision) -> None:
    decision.result = {"ranking": [{"method": "rest", "factors": [{"weight": "x"}]}]}
    text = decision_to_madr(decision)
    assert 'Chosen option: "rest"' in text
    decision.result = {}
    assert "No option was ranked." in decision_to_madr(decision)


@pytest.mark.parametrize(
    ("stored", "table", "record"),
    [
        # Half-way values round half up everywhere (round-half-even would give 2.2, 0.24).
        ({"points": 2.25}, "+2.3", "+2.3 points"),
        ({"points": -2.25}, "-2.3", "-2.3 points"),
        # A result stored before points were kept shows its score, rounded the same way.
        ({"points": None, "score": 0.245}, "0.25", "score 0.25"),
    ],
)
def test_points_read_the_same_in_the_record_the_table_and_the_chart(
    decision: Decision, stored: dict[str, Any], table: str, record: str
) -> None:
    result = decision.result
    for item in result["ranking"]:
        if stored.get("points", 0) is None:
            item.pop("points", None)
    result["ranking"][1].update(stored)
    decision.result = result
    decision.figures = None  # drawn again from the edited ranking
    decision.save()
    token = services.share_link_create(decision=decision)[1]
    label = result["ranking"][1]["label"]
    text = Client().get(f"/s/{token}/decision.md").content.decode()
    assert re.search(rf"^\* {re.escape(label)}( \([^)]*\))?: {re.escape(record)}$", text, re.M)
    page = Client().get(f"/s/{token}").content.decode()
    cells = page.split('<table class="ranking">')[1].split("</table>")[0]
    assert re.findall(r'<td class="num">([-+0-9.]+|ruled out)</td>', cells)[1] == table
    figure = page.split('<script id="fig-ranking" type="application/json">')[1]
    assert f'"{table}"' in figure.split("</script>")[0]


def _with_runner_up_duplicates(decision: Decision) -> list[str]:
    """Store the engine's flips as it lists them: each change that puts the runner-up
    first appears for the winner ("would rank first instead of") and again for the
    runner-up ("would overtake"). Returns the distinct texts a reader should get."""
    result = decision.result
    first, second = (item["method"] for item in result["ranking"][:2])
    mine = [f for f in result["what_would_change"] if f["for_method"] == first]
    assert any(f["winner"] == second for f in mine), "pick answers the runner-up can flip"
    copies = [
        {**f, "for_method": second, "text": f["text"].split(", ")[0] + ", it would overtake."}
        for f in mine
        if f["winner"] == second
    ]
    result["what_would_change"] = mine + copies
    decision.result = result
    decision.save()
    return [f["text"] for f in mine]


WEBHOOKS_OR_QUEUE = {
    **ORDERS,
    "peers": "partner",
    "message_bytes": 2048,
}


def test_each_change_that_would_flip_the_answer_is_listed_once() -> None:
    decision = services.decision_create(usecase=parse_usecase(WEBHOOKS_OR_QUEUE), owner=None)[0]
    expected = _with_runner_up_duplicates(decision)
    token = services.share_link_create(decision=decision)[1]

    record = Client().get(f"/s/{token}/decision.md").content.decode()
    listed = record.split("### What would change this decision")[1].split("\n## ")[0]
    assert re.findall(r"^\* (.+)$", listed, re.M) == expected

    page = Client().get(f"/s/{token}").content.decode()
    section = page.split('id="flips-title"')[1].split("</section>")[0]
    assert re.findall(r"<li>(.+?)</li>", section) == [escape(t) for t in expected]
    # The runner-up's own "why not" names what would put it first.
    runner_up = decision.result["ranking"][1]["method"]
    details = page.split(f'id="m-{runner_up}"')[1].split("</details>")[0]
    assert "What would put it first" in details
    winner = decision.result["ranking"][0]["method"]
    # The winner is shown once, in its own section above the alternatives.
    assert "What would put it first" not in page.split(f'id="m-{winner}"')[1].split("</section>")[0]
