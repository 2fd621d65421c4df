"""The expert cases (tests/scenarios/expert/*.json) and how the engine does on them.

Each case is a use-case document an architect would meet, with the answer the
public guides give (``expect``) and the source of that answer. The cases were
written blind: from the guides, without reading the engine or its knowledge base,
so they measure the engine out of sample.

Run ``python -m tests.advisor.expert_score`` for the score (``-v`` lists every
failed check). ``tests/advisor/test_expert_cases.py`` asserts the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, the project's settings refuse to load without a key; the tests' own
# settings carry one (the engine itself reads no settings).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from advisor.engine import recommend
from advisor.knowledge import KNOWLEDGE
from advisor.knowledge import METHODS as KNOWLEDGE_METHODS
from advisor.recommendation import Recommendation
from advisor.usecase import parse_usecase

CASES_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "expert"

# A case may name only what the engine knows: its method ids and its patterns' ids.
METHODS = frozenset(KNOWLEDGE_METHODS)
PATTERNS = frozenset(pattern.id for pattern in KNOWLEDGE.stages.patterns)
CASE_KEYS = frozenset({"title", "industry", "usecase", "expect", "why", "source"})
EXPECT_KEYS = frozenset({"method", "also_ok", "not_in_top3", "implementation", "pattern"})

# The kinds of check, in the order the report lists them.
CHECKS = ("top1", "blunder", "implementation", "pattern")


@dataclass
class Outcome:
    """One case's result: the engine's top three and every check that failed."""

    name: str
    top3: list[str]
    implementation: str | None
    pattern: str | None
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failed


def case_paths() -> list[Path]:
    return sorted(CASES_DIR.glob("*.json"))


def load_case(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: a case is a JSON object")
    return data


def load_cases() -> dict[str, dict[str, Any]]:
    """Every case by its name (the file name without ``.json``)."""
    return {path.stem: load_case(path) for path in case_paths()}


def shape_problems(name: str, case: dict[str, Any]) -> list[str]:
    """What is wrong with a case file itself (empty when it is well formed)."""
    problems: list[str] = []
    keys = set(case)
    if keys != CASE_KEYS:
        problems.append(f"keys {sorted(keys)} != {sorted(CASE_KEYS)}")
        return problems
    for key in ("title", "industry", "why"):
        if not isinstance(case[key], str) or not case[key].strip():
            problems.append(f"{key} must be a non-empty string")
    if isinstance(case["industry"], str) and not name.startswith(case["industry"] + "-"):
        problems.append(f"file name must start with the industry {case['industry']!r}")
    source = case["source"]
    if not isinstance(source, dict) or set(source) != {"title", "url"}:
        problems.append("source must be {title, url}")
    else:
        if not str(source["title"]).strip():
            problems.append("source.title is empty")
        if not str(source["url"]).startswith("https://"):
            problems.append(f"source.url must be an https URL, got {source['url']!r}")
    expect = case["expect"]
    if not isinstance(expect, dict) or not {"method", "also_ok", "not_in_top3"} <= set(expect):
        problems.append("expect needs method, also_ok and not_in_top3")
        return problems
    if set(expect) - EXPECT_KEYS:
        problems.append(f"unknown expect keys {sorted(set(expect) - EXPECT_KEYS)}")
    acceptable = [expect["method"], *expect["also_ok"]]
    for method in [*acceptable, *expect["not_in_top3"]]:
        if method not in METHODS:
            problems.append(f"unknown method id {method!r}")
    if set(acceptable) & set(expect["not_in_top3"]):
        problems.append("a method cannot be both acceptable first and a blunder in the top 3")
    if expect.get("pattern") is not None and expect["pattern"] not in PATTERNS:
        problems.append(f"unknown pattern id {expect['pattern']!r}")
    impl = expect.get("implementation")
    if impl is not None and (not isinstance(impl, str) or not impl):
        problems.append("implementation must be a non-empty id")
    return problems


def judge(name: str, case: dict[str, Any], result: Recommendation) -> Outcome:
    """Compare the engine's recommendation with the case's expected answer."""
    expect = case["expect"]
    first = result.ranking[0]
    top3 = [r.method for r in result.ranking[:3]]
    outcome = Outcome(
        name=name,
        top3=top3,
        implementation=first.implementation,
        pattern=first.pattern.id if first.pattern else None,
    )
    acceptable = [expect["method"], *expect["also_ok"]]
    if first.method not in acceptable:
        outcome.failed["top1"] = f"first pick {first.method}, expected {' or '.join(acceptable)}"
    blunders = [m for m in expect["not_in_top3"] if m in top3]
    if blunders:
        outcome.failed["blunder"] = f"{', '.join(blunders)} in the top 3 {top3}"
    want_impl = expect.get("implementation")
    if want_impl is not None and first.implementation != want_impl:
        outcome.failed["implementation"] = (
            f"implementation {first.implementation}, expected {want_impl}"
        )
    want_pattern = expect.get("pattern")
    if want_pattern is not None and outcome.pattern != want_pattern:
        outcome.failed["pattern"] = f"pattern {outcome.pattern}, expected {want_pattern}"
    return outcome


def run_case(name: str, case: dict[str, Any]) -> Outcome:
    return judge(name, case, recommend(parse_usecase(case["usecase"])))


def report(outcomes: list[Outcome], cases: dict[str, dict[str, Any]], verbose: bool) -> str:
    n = len(outcomes)
    failed = Counter(check for o in outcomes for check in o.failed)
    with_impl = sum(1 for o in outcomes if cases[o.name]["expect"].get("implementation"))
    with_pattern = sum(1 for o in outcomes if cases[o.name]["expect"].get("pattern"))
    lines = [
        f"expert cases: {n}",
        f"top-1: {n - failed['top1']}/{n}",
        f"blunders (a not_in_top3 method in the top 3): {failed['blunder']} cases",
        f"implementation: {with_impl - failed['implementation']}/{with_impl}",
        f"pattern: {with_pattern - failed['pattern']}/{with_pattern}",
        f"every check: {sum(o.passed for o in outcomes)}/{n}",
    ]
    by_industry = Counter(c["industry"] for c in cases.values())
    lines.append("by industry: " + ", ".join(f"{k} {v}" for k, v in sorted(by_industry.items())))
    if verbose:
        lines.append("")
        for o in outcomes:
            if o.failed:
                lines.append(
                    f"{o.name} (top 3 {', '.join(o.top3)}; "
                    f"implementation {o.implementation}; pattern {o.pattern})"
                )
            for check in CHECKS:
                if check in o.failed:
                    lines.append(f"  {check}: {o.failed[check]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="list every failed check")
    args = parser.parse_args(argv)
    cases = load_cases()
    outcomes = [run_case(name, case) for name, case in cases.items()]
    print(report(outcomes, cases, args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
