"""``manage.py advise`` as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
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
