"""The expert cases: realistic use cases with the answer the public guides give.

Each file in tests/scenarios/expert/ was written blind (from the guides, not from
the engine) and names its source. A case passes when the engine's first pick is
the expected method (or one of ``also_ok``), no ``not_in_top3`` method is in its
top three, and the first pick's implementation and pattern are the expected ones
where the case names them.

Cases the engine gets wrong today are listed in KNOWN_FAILURES with the class of
error (issue 8) and run as strict xfails: the suite stays green, and a case that
starts passing fails loudly so it can be taken off the list.
``python -m tests.advisor.expert_score -v`` prints the score and every failure.
"""

from __future__ import annotations

from typing import Any

import pytest

from advisor.usecase import UseCase, parse_usecase
from tests.advisor.expert_score import (
    CASES_DIR,
    case_paths,
    load_case,
    load_cases,
    run_case,
    shape_problems,
)

# The classes of error (issue 8), so a reason reads as a class, not a case.
EXISTING = "issue 8: an existing interface that cannot change is overridden"
INTERACTION = "issue 8: consumers read without the interaction (fan-out on a call or command)"
PUBLIC_BROKER = "issue 8: offline receivers get a broker even when the peers are the public"
INBOUND = "issue 8: inbound_blocked does not rule out what needs an inbound connection"
HARD = "issue 8: a method that breaks a hard constraint ranks in the top 3"
CLIFF = "issue 8: a cliff near the MTU moves loss-tolerant real-time traffic off UDP"
RATE = "issue 8: the rate of many independent callers is read as one connection"
PEERS_FILES = "issue 8: who the peers are barely changes how files move"
IMPLEMENTATION = "issue 8: the implementation is not chosen by its own facts"
NO_PATTERN = "issue 8: the pattern the guides name is not recommended"
SHAPE = "issue 8: a method that does not fit the shape of the exchange ranks in the top 3"


def _both(*reasons: str) -> str:
    return "; ".join(reasons)


KNOWN_FAILURES: dict[str, str] = {
    # Empty: every case passes every check. A case the engine gets wrong goes here with
    # its class of error, as a strict xfail, rather than out of the suite.
}

CASES = load_cases()
INDUSTRIES = {case["industry"] for case in CASES.values()}


def _params() -> list[Any]:
    params = []
    for name in CASES:
        marks = []
        if name in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[name]))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.mark.parametrize("name", _params())
def test_expert_case(name: str) -> None:
    case = CASES[name]
    outcome = run_case(name, case)
    assert outcome.passed, (
        f"{case['title']}: " + "; ".join(outcome.failed.values()) + f" (why: {case['why']})"
    )


@pytest.mark.parametrize("path", case_paths(), ids=lambda p: p.stem)
def test_case_file_is_well_formed(path: Any) -> None:
    case = load_case(path)
    assert shape_problems(path.stem, case) == []
    # The document is a valid use case under the contract (docs/usecase.md).
    assert isinstance(parse_usecase(case["usecase"]), UseCase)


def test_enough_cases_across_industries() -> None:
    assert len(CASES) >= 45, f"{len(CASES)} cases in {CASES_DIR}"
    must = {"payments", "iot", "telemetry", "media", "games", "b2b", "devices", "data", "ops"}
    assert must <= INDUSTRIES, f"missing industries: {sorted(must - INDUSTRIES)}"


def test_known_failures_name_real_cases() -> None:
    assert set(KNOWN_FAILURES) <= set(CASES), sorted(set(KNOWN_FAILURES) - set(CASES))


def test_the_judge_can_fail() -> None:
    """A recommendation that contradicts a case fails every check the case makes."""
    from advisor.engine import recommend
    from tests.advisor.expert_score import judge

    name = "payments-webhooks-to-merchants"
    case = dict(CASES[name])
    # Pretend the case expected the opposite: the real recommendation must then fail it.
    first = recommend(parse_usecase(case["usecase"])).ranking[0]
    case["expect"] = {
        "method": "udp" if first.method != "udp" else "ssh",
        "also_ok": [],
        "not_in_top3": [first.method],
        "implementation": "no-such-implementation",
        "pattern": "claim_check",
    }
    outcome = judge(name, case, recommend(parse_usecase(case["usecase"])))
    assert set(outcome.failed) == {"top1", "blunder", "implementation", "pattern"}
