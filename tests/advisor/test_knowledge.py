"""The knowledge base loads, is consistent, and every rule carries its source."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from advisor.knowledge import KNOWLEDGE, KNOWLEDGE_DIR, METHODS, load
from advisor.usecase import INTERACTIONS


def test_knowledge_base_loads_with_every_method_and_interaction() -> None:
    assert tuple(KNOWLEDGE.methods) == METHODS
    assert set(KNOWLEDGE.fit) == set(INTERACTIONS)
    assert len(KNOWLEDGE.rules) >= 30


def test_every_rule_and_effect_cites_a_known_source_with_a_url() -> None:
    cited: set[str] = set()
    for rule in KNOWLEDGE.rules:
        cited.add(rule.source)
        cited.update(e.source for e in rule.effects.values() if e.source)
    for group in (KNOWLEDGE.exclusions, KNOWLEDGE.caveats, KNOWLEDGE.warnings):
        cited.update(item.source for item in group)
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
            "when: {latency_ms: {lte: 10}}",
            "when: {latency_ms: {below: 10}}",
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
