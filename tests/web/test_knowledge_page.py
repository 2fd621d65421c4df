"""/knowledge shows the whole knowledge base, so a user can read why."""

from __future__ import annotations

from html import unescape

from django.test import Client

from advisor import vocabulary
from advisor.knowledge import KNOWLEDGE, describe


def page() -> str:
    response = Client().get("/knowledge")
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_every_method_fact_rule_and_source_is_on_the_page() -> None:
    html = page()
    assert KNOWLEDGE.full_version in html
    for name, method in KNOWLEDGE.methods.items():
        assert f'id="method-{name}"' in html
        for fact in method.facts.values():
            assert fact.text in html
        for limit in method.limits:
            # In the units a person reads, exact: "4 MiB", "1,048,588 bytes".
            shown = vocabulary.format_exact_bytes(limit.max_message_bytes)
            assert f"{limit.name}: {shown}" in html
    for rule in KNOWLEDGE.rules:
        assert f'id="rule-{rule.id}"' in html
        assert rule.text in html
        assert describe(rule.when) in html
    for excl in KNOWLEDGE.exclusions:
        assert excl.text in html
    for sid, source in KNOWLEDGE.sources.items():
        assert f'id="source-{sid}"' in html
        assert source.says in html
    # every source a rule cites is an anchor on the same page
    for rule in KNOWLEDGE.rules:
        assert f'href="#source-{rule.source}"' in html


def test_conditions_read_as_words() -> None:
    assert describe({"latency_ms": {"lte": 10}}) == "latency_ms ≤ 10"
    assert describe({"peers": ["partner", "public"], "inbound_blocked": False}) == (
        "peers is one of partner, public and inbound_blocked = false"
    )
    assert describe({"any": [{"realtime": True}, {"consumers": {"gte": 50}}]}) == (
        "(realtime = true or consumers ≥ 50)"
    )
    assert describe({"file_bytes": {"is_null": True}}) == "file_bytes is null"
    assert describe({}) == "always"


def test_the_page_is_read_only() -> None:
    assert Client().post("/knowledge").status_code == 405
    assert 'href="/knowledge"' in unescape(Client().get("/").content.decode())
