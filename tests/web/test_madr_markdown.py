"""The MADR export parsed by a real CommonMark parser: what a visitor typed stays text.

markdown-it-py follows CommonMark (with GFM tables and strikethrough enabled here,
as wikis do). Its link check is switched off, as in renderers that let any URL
through, so a ``javascript:`` link would show up as a link node if it were one.
Every link must be one of the knowledge base's source links, there is no image,
HTML or code span from user text, and the text renders as typed.
"""

from __future__ import annotations

from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from advisor import services
from advisor.madr import decision_to_madr, markdown_text
from advisor.models import Decision
from advisor.usecase import FIELDS, parse_usecase

pytestmark = pytest.mark.django_db

HOSTILE = [
    "[x](javascript:alert(1))",
    "[click](https://evil.example/phish)",
    "![pixel](https://evil.example/track.png)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<b>bold</b> <!-- comment --> <?php ?>",
    "<https://evil.example/autolink> <mailto:a@evil.example>",
    "`rm -rf /` and ``double``",
    "**strong** *em* _em_ ~~struck~~",
    "[ref]\n\n[ref]: https://evil.example/ref",
    "&lt;script&gt; &#106;avascript &amp; & co",
    "a | table | row",
    "trailing hashes ##",
    "back\\slash \\[not a link\\](https://evil.example)",
    "https://evil.example/bare and www.evil.example",
]


def parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def walk(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for token in tokens:
        out.append(token)
        if token.children:
            out += walk(token.children)
    return out


def plain(inline: Token) -> str:
    return "".join(t.content for t in inline.children or [] if t.type in {"text", "text_special"})


def source_urls(result: dict[str, Any]) -> set[str]:
    urls: set[str] = set()
    for item in result["ranking"]:
        for reason in item.get("reasons_for", []) + item.get("reasons_against", []):
            urls.add(reason["source"]["url"])
        if item.get("pattern"):
            urls.add(item["pattern"]["source"]["url"])
    return urls


def hostile_decision(title: str, notes: str) -> Decision:
    usecase = parse_usecase(
        {"interaction": "request_response", "title": title[:200], "notes": notes}
    )
    decision = services.decision_create(usecase=usecase, owner=None)[0]
    result = decision.result
    result["evidence"] = [
        {
            "rule": "latency",
            "method": "http",
            "effect": "caveat",
            "text": "p95 was 12 ms",
            "target": f"https://x.example/{title}",
            "vantage_point": notes[:40],
            "measured_at": "2026-12-01T10:00:00Z",
        }
    ]
    decision.result = result
    return decision


def assert_inert(record: str, result: dict[str, Any]) -> None:
    tokens = walk(parser().parse(record))
    kinds = {t.type for t in tokens}
    assert not kinds & {"image", "html_inline", "html_block"}, kinds
    allowed = source_urls(result)
    for token in tokens:
        if token.type == "link_open":
            assert token.attrs["href"] in allowed, token.attrs["href"]
        if token.type == "code_inline":
            assert token.content in FIELDS, token.content  # the drivers name their fields
        if token.type in {"s_open", "em_open", "strong_open"}:
            pytest.fail(f"emphasis from user text: {token.type}")


@pytest.mark.parametrize("typed", HOSTILE)
def test_hostile_titles_and_notes_render_as_the_text_typed(typed: str) -> None:
    decision = hostile_decision(typed, typed)
    record = decision_to_madr(decision)
    assert_inert(record, decision.result)

    tokens = parser().parse(record)
    # (The YAML front matter parses as a setext heading: the title is the h1.)
    opens = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h1"]
    heading = tokens[opens[0] + 1]
    assert plain(heading) == " ".join(typed.split())[:200].strip()
    notes = next(t for t in tokens if t.type == "inline" and t.content.startswith("Notes: "))
    assert plain(notes) == "Notes: " + " ".join(typed.split())


def test_all_the_hostile_texts_at_once() -> None:
    everything = " ".join(HOSTILE)
    decision = hostile_decision(everything[:200], everything)
    assert_inert(decision_to_madr(decision), decision.result)


def test_the_escaping_stays_readable() -> None:
    assert markdown_text("Orders to the warehouse (v2), 50/s!") == (
        "Orders to the warehouse (v2), 50/s!"
    )
    assert markdown_text("[x](javascript:alert(1))") == r"\[x\](javascript:alert(1))"
    assert markdown_text("a <b> & `c`") == r"a &lt;b&gt; &amp; \`c\`"
