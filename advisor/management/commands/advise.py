"""``python manage.py advise PATH [--format text|json]`` (usecase-v1.md section 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advisor.engine import recommend
from advisor.report import text_report
from advisor.usecase import MAX_DOCUMENT_CHARS, UseCaseError, load_usecase_text

# A use case is a few hundred bytes; refuse anything absurd before decoding it.
MAX_DOCUMENT_BYTES = MAX_DOCUMENT_CHARS


class Command(BaseCommand):
    help = (
        "Recommend how two servers should talk for the use case in PATH (JSON or YAML; "
        "'-' reads standard input). Exit 0 on success, 2 on an invalid document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="use-case document, or - for stdin")
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help="text: a readable report (default); json: the contract's JSON object",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = self._read(options["path"])
        try:
            usecase = load_usecase_text(text)
        except UseCaseError as exc:
            raise CommandError(
                "invalid use-case document:\n  " + "\n  ".join(exc.lines()), returncode=2
            ) from None
        recommendation = recommend(usecase)
        if options["format"] == "json":
            self.stdout.write(
                json.dumps(recommendation.contract_json(), indent=2, ensure_ascii=False)
            )
        else:
            self.stdout.write(text_report(recommendation, usecase.title), ending="")

    def _read(self, path: str) -> str:
        try:
            if path == "-":
                data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
            else:
                with Path(path).open("rb") as handle:
                    data = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=2) from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise CommandError(
                f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes; a use-case document is small",
                returncode=2,
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not UTF-8 text", returncode=2) from None
