"""The knowledge base loads, is consistent, and every rule carries its source."""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from advisor.knowledge import KNOWLEDGE, KNOWLEDGE_DIR, METHODS, load
from advisor.usecase import FIELDS, INTERACTIONS


def test_knowledge_base_loads_with_every_method_and_interaction() -> None:
    assert tuple(KNOWLEDGE.methods) == METHODS
    assert set(KNOWLEDGE.fit) == set(INTERACTIONS)
    assert len(KNOWLEDGE.rules) >= 30


def test_every_rule_and_effect_cites_a_known_source_with_a_url() -> None:
    cited: set[str] = set()
    for rule in KNOWLEDGE.rules:
        cited.add(rule.source)
        cited.update(e.source for e in rule.effects.values() if e.source)
    for group in (KNOWLEDGE.exclusions, KNOWLEDGE.caveats):
        cited.update(item.source for item in group)
    # A warning without a source checks two answers against each other, nothing more:
    # it names both answers and asserts no outside fact.
    for warning in KNOWLEDGE.warnings:
        if warning.source is None:
            assert "contradicts" in warning.text, warning.id
        else:
            cited.add(warning.source)
    for row in KNOWLEDGE.fit.values():
        cited.add(row.source)
        cited.update(e.source for e in row.effects.values() if e.source)
    for choices in KNOWLEDGE.implementations.values():
        cited.update(choice.source for choice in choices)
    assert cited <= set(KNOWLEDGE.sources)
    for sid in cited:
        source = KNOWLEDGE.sources[sid]
        assert source.url and source.title and source.says, sid


def test_every_method_has_all_facts_each_with_a_source() -> None:
    for name, method in KNOWLEDGE.methods.items():
        assert len(method.facts) == 11, name
        for fact in method.facts.values():
            assert fact.source in KNOWLEDGE.sources


def test_every_seed_statement_is_in_the_knowledge_base() -> None:
    seed = KNOWLEDGE.sources["seed"].says
    for method in KNOWLEDGE.methods.values():
        assert method.best_suited_for in seed, method.label


def _copy_and_edit(tmp_path: Path, edit: str, old: str, new: str) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = target / edit
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return target


@pytest.mark.parametrize(
    ("edit", "old", "new", "complaint"),
    [
        (
            "rules.yaml",
            "source: rfc8085\n    effects:\n      udp: {weight: 1.5",
            "source: rfc9999\n    effects:\n      udp: {weight: 1.5",
            "unknown source 'rfc9999'",
        ),
        (
            "rules.yaml",
            "when: {realtime: true}",
            "when: {real_time: true}",
            "unknown field 'real_time'",
        ),
        (
            "rules.yaml",
            "when: {latency_ms: {lte: 20}}",
            "when: {latency_ms: {below: 20}}",
            "unknown operator",
        ),
        (
            "rules.yaml",
            '      rpc: {weight: 1.5, text: "gRPC multiplexes',
            '      grpc: {weight: 1.5, text: "gRPC multiplexes',
            "unknown method 'grpc'",
        ),
        ("rules.yaml", "    - impl: kafka", "    - impl: pulsar", "not an implementation"),
        ("rules.yaml", "  - id: latency-sub-ms", "  - id: latency-tight", "duplicate id"),
    ],
)
def test_a_broken_knowledge_base_is_refused_with_the_reason(
    tmp_path: Path, edit: str, old: str, new: str, complaint: str
) -> None:
    directory = _copy_and_edit(tmp_path, edit, old, new)
    with pytest.raises(ValidationError) as caught:
        load(directory)
    assert complaint in str(caught.value)


def test_a_fit_row_missing_a_method_is_refused(tmp_path: Path) -> None:
    directory = _copy_and_edit(
        tmp_path, "rules.yaml", "      ssh: {weight: 5,", "      zzz: {weight: 5,"
    )
    with pytest.raises(ValidationError):
        load(directory)


def test_version_changes_when_the_knowledge_changes(tmp_path: Path) -> None:
    directory = _copy_and_edit(tmp_path, "rules.yaml", "weight: 4.5", "weight: 4")
    assert load(directory).full_version != KNOWLEDGE.full_version
    assert load(KNOWLEDGE_DIR).full_version == KNOWLEDGE.full_version


def test_yaml_files_are_plain_data() -> None:
    for name in ("sources.yaml", "methods.yaml", "rules.yaml"):
        assert isinstance(yaml.safe_load((KNOWLEDGE_DIR / name).read_text()), dict)


# --- Every claim cites a real source that says it (issue 8, item 6) -------------------------


def _citations() -> list[tuple[str, str, str]]:
    """(where, text, source id) for every text in the knowledge base that cites a source."""
    out: list[tuple[str, str, str]] = []
    for interaction, row in KNOWLEDGE.fit.items():
        out.append((f"fit.{interaction}", row.text, row.source))
        for m, e in row.effects.items():
            if e.text or e.source:
                out.append((f"fit.{interaction}.{m}", e.text or row.text, e.source or row.source))
    for rule in KNOWLEDGE.rules:
        out.append((f"rule {rule.id}", rule.text, rule.source))
        for m, e in rule.effects.items():
            if e.text or e.source:
                out.append((f"rule {rule.id}.{m}", e.text or rule.text, e.source or rule.source))
    for group in (KNOWLEDGE.exclusions, KNOWLEDGE.caveats, KNOWLEDGE.warnings, KNOWLEDGE.evidence):
        out.extend(
            (f"{type(item).__name__} {item.id}", item.text, item.source)
            for item in group
            if item.source is not None  # a warning that checks two answers against each other
        )
    for method_id, choices in KNOWLEDGE.implementations.items():
        out.extend((f"impl {method_id}.{c.impl}", c.text, c.source) for c in choices)
    for name, method in KNOWLEDGE.methods.items():
        for fact_name, fact in method.facts.items():
            out.append((f"methods.{name}.{fact_name}", fact.text, fact.source))
        for limit in method.limits:
            out.append((f"methods.{name}.limits", limit.name, limit.source))
    return out


def test_every_citation_names_a_source_that_exists() -> None:
    unknown = [(where, sid) for where, _, sid in _citations() if sid not in KNOWLEDGE.sources]
    assert not unknown


def test_nothing_rests_on_the_products_own_seed_summary() -> None:
    # The seed is the product's summary of what each method suits; it is the origin of the
    # best_suited_for statements, never a source for a claim or a number.
    on_seed = [where for where, _, sid in _citations() if sid == "seed"]
    assert not on_seed


def test_no_claim_with_a_number_cites_a_repository_page() -> None:
    local = {sid for sid, s in KNOWLEDGE.sources.items() if not s.url.startswith("https://")}
    numeric = [
        (where, text)
        for where, text, sid in _citations()
        if sid in local and any(ch.isdigit() for ch in text)
    ]
    assert not numeric


def test_every_source_has_a_title_a_public_url_a_checked_date_and_what_it_says() -> None:
    for sid, source in KNOWLEDGE.sources.items():
        assert source.title.strip() and len(source.says.split()) >= 6, sid
        assert isinstance(source.checked, datetime.date), (sid, source.checked)
        assert datetime.date(2026, 11, 1) <= source.checked <= datetime.date.today(), sid
        if sid == "seed":
            assert source.url.startswith("docs/"), "the seed is the product's own page"
            continue
        parts = urlsplit(source.url)
        assert parts.scheme == "https" and "." in parts.netloc, (sid, source.url)


# --- Texts are for people -------------------------------------------------------------------

_SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


def _rule_texts() -> list[tuple[str, str]]:
    """Texts from rules.yaml that reach a reader as reasons, caveats or warnings."""
    return [
        (where, text)
        for where, text, _ in _citations()
        if not where.startswith(("methods.", "EvidenceRule"))
    ]


def test_reasons_use_words_not_field_names() -> None:
    # Field names (message_bytes) and answer values (at_least_once) are snake_case; placeholders
    # such as {latency_ms} are filled with values before anyone reads them.
    assert all(_SNAKE.fullmatch(field) for field in FIELDS if "_" in field)
    offenders = []
    for where, text in _rule_texts():
        words = _SNAKE.findall(re.sub(r"\{[a-z_0-9]+\}", "", text))
        if words:
            offenders.append((where, words))
    assert not offenders


def test_no_reason_is_a_bare_restatement_of_its_answer() -> None:
    # The tautologies found in review; each now says why the answer matters.
    bare = {
        "A partner runs the other end.",
        "Both ends are ours.",
        "Anyone may run the other end.",
        "Best effort delivery is enough.",
        "Fifty or more receivers per message.",
        "A hundred thousand or more messages a second.",
        "Files move as part of this exchange.",
        "Web browsers connect directly.",
    }
    assert not {text for _, text in _rule_texts()} & bare


# --- The facts corrected in review (issue 8; shared/SOURCES.md "Limits to re-check") --------


def _limits(method: str) -> dict[str, tuple[int, str]]:
    return {
        lim.name: (lim.max_message_bytes, lim.source) for lim in KNOWLEDGE.methods[method].limits
    }


def _says(sid: str) -> str:
    return " ".join(KNOWLEDGE.sources[sid].says.split())


def test_broker_limits_are_the_vendors_current_ones() -> None:
    limits = _limits("message_queue")
    by_size = {size: source for size, source in limits.values()}
    # RabbitMQ: 16 MiB by default since 4.0, configurable up to 512 MiB.
    assert by_size[16 * 1024 * 1024] == "rabbitmq-limits"
    assert by_size[512 * 1024 * 1024] == "rabbitmq-limits"
    assert "16 MiB" in _says("rabbitmq-limits") and "512 MiB" in _says("rabbitmq-limits")
    assert KNOWLEDGE.sources["rabbitmq-limits"].url.startswith("https://www.rabbitmq.com/")
    # Google Pub/Sub 10 MB; Service Bus 256 KB standard and 100 MB premium; MQTT about 256 MB.
    assert by_size[10_000_000] == "gcp-pubsub-limits"
    assert by_size[256 * 1024] == "azure-service-bus-quotas"
    assert by_size[100 * 1024 * 1024] == "azure-service-bus-quotas"
    assert by_size[268_435_455] == "mqtt-311" and "268,435,455" in _says("mqtt-311")
    # Kafka, NATS and SQS stay near 1 MB, each from its own documentation.
    assert by_size[1_048_588] == "kafka-limits"
    assert {limits[n][1] for n in limits if "NATS" in n or "SQS" in n} == {"nats-faq", "sqs-limits"}
    # Amazon's own page for SQS, not a third party's.
    assert urlsplit(KNOWLEDGE.sources["sqs-limits"].url).netloc == "aws.amazon.com"


def test_no_text_says_brokers_cap_near_1_mb_or_none_carries_100_mb() -> None:
    wrong = ("cap messages near 1 MB", "No broker carries", "near 1 MB", "about 1 MB (Kafka")
    for where, text, _ in _citations():
        assert not any(w in text for w in wrong), (where, text)


def test_websocket_limits_name_the_gateway_and_the_sender_splits_frames() -> None:
    limits = _limits("websocket")
    assert limits["Amazon API Gateway WebSocket message"] == (128 * 1024, "apigw-websocket")
    assert (1024 * 1024, "azure-web-pubsub-limits") in limits.values()
    says = _says("apigw-websocket")
    assert "split into frames of 32 KB or less" in says and "1009" in says
    texts = {where: text for where, text, _ in _citations()}
    caveat = texts["Caveat websocket-gateway-limits"]
    assert "send frames of 32 KB or less" in caveat and "1009" in caveat and "API Gateway" in caveat
    for where, text in texts.items():
        assert "Managed gateways split" not in text, where
        assert "gateways cap messages at 128 KB" not in text, where
        assert "Managed WebSocket gateways cap" not in text, where


def test_the_misattributed_sources_are_gone() -> None:
    cites = {where: sid for where, _, sid in _citations()}
    assert cites["rule firewall-http-only"] != "rfc6455"
    assert cites["Exclusion http-only-firewall"] != "rfc6455"
    assert cites["rule browser-clients"] != "chrome-ftp"
    assert cites["Exclusion browser-no-raw-sockets"] != "chrome-ftp"
    assert cites["rule rate-very-high"] != "rfc8085"
    assert cites["rule small-team"] != "azure-interservice"
    assert cites["rule small-team.message_queue"] != "azure-interservice"
    # Chrome's FTP page says nothing about raw sockets: only FTP facts may cite it.
    for where, text, sid in _citations():
        if sid == "chrome-ftp":
            assert "FTP" in text, where


def test_the_fibre_warning_says_what_distance_fits_not_one_data_centre() -> None:
    text = next(w.text for w in KNOWLEDGE.warnings if w.id == "sub-ms-across-wan")
    assert "100 km" in text and "data centre" not in text
    assert "204,000 km/s" in _says("fibre-speed-dwdm")


def test_every_source_is_in_the_docs_sources_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "knowledge.md").read_text()
    table = doc.split("## Sources", 1)[1]
    missing = [sid for sid in KNOWLEDGE.sources if f"`{sid}`" not in table]
    assert not missing
