"""``manage.py advise`` as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.knowledge import METHODS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"


def advise(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "advise", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


# Hostile documents run in a child with at most this much address space, so a
# regression (an alias bomb expanding) fails the test instead of hurting the machine.
MEMORY_LIMIT = 512 * 1024 * 1024


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def advise_bounded(stdin: str) -> subprocess.CompletedProcess[str]:
    """``advise -`` on a hostile document: memory-capped, and killed after 60 s."""
    return subprocess.run(
        [sys.executable, "manage.py", "advise", "-"],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    # At most MAX_REPORTED_ERRORS lines of a few hundred characters each.
    assert len(done.stderr) < 16_000, f"an unbounded message: {len(done.stderr)} characters"
    assert "invalid use-case document" in done.stderr or "larger than" in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def _alias_bomb() -> str:
    # The billion laughs: under 1 KB, 9**9 (387 million) strings once expanded.
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("interaction: streaming")
    lines.append("title: *a8")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    bomb = _alias_bomb()
    assert len(bomb.encode()) < 1024
    assert_refused(advise_bounded(bomb), "anchor", "line 1")


def test_an_alias_is_refused_even_where_it_would_be_harmless() -> None:
    done = advise_bounded("interaction: &i streaming\ntitle: x\n")
    assert_refused(done, "anchor (&name) is not accepted")
    done = advise_bounded("interaction: streaming\ntitle: *nothing\n")
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("stdin", "tag"),
    [
        ("interaction: streaming\ntitle: !!timestamp 2001-12-14\n", "!!timestamp"),
        ("interaction: streaming\nrealtime: !!bool yes\n", "!!bool"),
        ("interaction: streaming\nrealtime: !!bool maybe\n", "!!bool"),  # KeyError before
        ("interaction: !!python/object/apply:os.system ['true']\n", "!!python/object/apply"),
        ("interaction: !!python/name:os.system\n", "!!python/name"),
        ("interaction: streaming\ntitle: !!binary aGVsbG8=\n", "!!binary"),
        ("interaction: streaming\ntitle: !!set {a, b}\n", "!!set"),
        ("interaction: streaming\nmessage_bytes: !!float 1e400\n", "!!float"),
        ("interaction: streaming\ntitle: !!str x\n", "!!str"),
        ("interaction: streaming\ntitle: !local x\n", "!local"),
        ("!!map {interaction: streaming}\n", "!!map"),
    ],
)
def test_explicit_yaml_tags_are_refused_with_a_clear_message(stdin: str, tag: str) -> None:
    assert_refused(advise_bounded(stdin), "explicit tag", tag)


@pytest.mark.parametrize(
    "stdin",
    [
        "interaction: streaming\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "interaction: streaming\ntitle: " + "{a: " * 20_000 + "b" + "}" * 20_000 + "\n",
        "interaction: streaming\ntitle:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        '{"interaction": "streaming", "title": ' + "[" * 60_000 + "]" * 60_000 + "}",
        '{"interaction": "streaming", "title": ' + "[" * 500 + "]" * 500 + "}",
    ],
    ids=["yaml-flow-lists", "yaml-flow-maps", "yaml-block", "json-deep", "json-500"],
)
def test_deep_nesting_is_refused_not_a_recursion_error(stdin: str) -> None:
    assert_refused(advise_bounded(stdin), "nest deeper than 32 levels")


@pytest.mark.parametrize(
    ("stdin", "needles"),
    [
        ('{"interaction": "streaming", "message_bytes": 1e23}', ["message_bytes", "got 1e+23"]),
        (
            '{"interaction": "streaming", "message_bytes": 100000000000000000000000}',
            ["message_bytes", "got 100000000000000000000000;"],
        ),
        ('{"interaction": "streaming", "file_bytes": 1e400}', ["file_bytes", "Infinity"]),
        (
            '{"interaction": "streaming", "consumers": 9' + "9" * 4000 + "}",
            ["consumers", "a whole number of about"],
        ),
        ("interaction: streaming\nconsumers: 0x" + "f" * 20_000 + "\n", ["consumers"]),
        ('{"interaction": "streaming", "title": "' + "t" * 100_000 + '"}', ["title", "..."]),
        (
            '{"interaction": "streaming", "' + "k" * 100_000 + '": 1}',
            ["is not a field", "kkk..."],
        ),
        (
            "interaction: streaming\n" + "".join(f"unknown{i}: 1\n" for i in range(5000)),
            ["unknown0", "more fields have errors"],
        ),
        ("interaction: streaming\n2001-12-14: x\n", ["2001-12-14: is not a field"]),
        ("interaction: streaming\n1: x\n", ["field names must be text, got 1 (int)"]),
    ],
    ids=[
        "float-1e23",
        "int-1e23",
        "infinity",
        "4000-digits",
        "huge-hex",
        "long-string",
        "long-name",
        "many-fields",
        "date-key",
        "int-key",
    ],
)
def test_hostile_values_get_a_bounded_message_naming_the_field(
    stdin: str, needles: list[str]
) -> None:
    assert_refused(advise_bounded(stdin), *needles)


def test_a_document_over_the_size_limit_is_refused_before_parsing() -> None:
    done = advise_bounded("interaction: streaming\nnotes: " + "x" * 200_000 + "\n")
    assert_refused(done, "larger than")


def test_json_format_is_the_contract_object(tmp_path: Path) -> None:
    doc = tmp_path / "uc.json"
    doc.write_text(json.dumps({"interaction": "remote_execution", "peers": "internal"}))
    done = advise(str(doc), "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == 1
    assert next(r["method"] for r in result["ranking"]) == "ssh"
    assert sorted(r["method"] for r in result["ranking"]) == sorted(METHODS)
    for r in result["ranking"]:
        assert set(r) >= {"method", "implementation", "score", "reasons", "caveats"}
    assert all(r["reasons"] for r in result["ranking"][:3])
    assert isinstance(result["warnings"], list)


def test_yaml_from_standard_input_and_text_report() -> None:
    done = advise(
        "-",
        stdin="title: Game relay\ninteraction: streaming\nlatency_ms: 20\n"
        "delivery: best_effort\nloss_tolerant: true\n",
    )
    assert done.returncode == 0, done.stderr
    report = done.stdout
    assert "Switchboard recommendation: Game relay" in report
    assert "Recommended: UDP datagrams (udp)" in report
    for heading in ("Ranking", "Why, method by method", "What would change the answer"):
        assert heading in report
    assert "An occasional lost message is acceptable: yes" in report
    assert "RFC 8085" in report


def test_warnings_appear_in_the_text_report() -> None:
    done = advise(
        "-", stdin='{"interaction": "request_response", "latency_ms": 1, "peers": "public"}'
    )
    assert done.returncode == 0
    assert "Warnings" in done.stdout and "200 km" in done.stdout


@pytest.mark.parametrize(
    ("stdin", "needles"),
    [
        ('{"interaction": "telepathy"}', ["interaction", "request_response"]),
        (
            '{"interaction": "streaming", "latency_ms": -5, "colour": "red"}',
            ["latency_ms", "colour", "not a field"],
        ),
        ("{broken", ["not valid JSON"]),
        ("", ["empty"]),
        ("[1, 2]", ["must be an object"]),
    ],
)
def test_invalid_documents_exit_2_with_field_errors_on_stderr(
    stdin: str, needles: list[str]
) -> None:
    done = advise("-", stdin=stdin)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr


def test_missing_file_and_bad_option_exit_2(tmp_path: Path) -> None:
    missing = advise(str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad_format = advise(str(tmp_path / "nope.json"), "--format", "xml")
    assert bad_format.returncode == 2 and "invalid choice" in bad_format.stderr


def test_binary_input_is_refused_cleanly(tmp_path: Path) -> None:
    blob = tmp_path / "blob.json"
    blob.write_bytes(b"\xff\xfe\x00garbage")
    done = advise(str(blob))
    assert done.returncode == 2 and "not UTF-8" in done.stderr


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.json")), ids=lambda p: p.stem)
def test_scenario_files_are_accepted_as_they_are(path: Path) -> None:
    # The scenarios wrap the document under "usecase"; advise accepts that too.
    done = advise(str(path), "--format", "json")
    assert done.returncode == 0, done.stderr
    expected = json.loads(path.read_text())["expected"]["top1"]
    assert json.loads(done.stdout)["ranking"][0]["method"] in expected
