"""The collected static files (hashed names, gzipped copies) the pages link to.

Pages name static files through the manifest that ``collectstatic`` writes
(``make install`` runs it); a test run started without it, or after a file in
``static/`` changed, collects them first, so what is tested is what is served.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import call_command


def ensure_collected() -> None:
    root = Path(settings.STATIC_ROOT)
    manifest = root / "staticfiles.json"
    sources = [p for d in settings.STATICFILES_DIRS for p in Path(d).rglob("*") if p.is_file()]
    newest = max((p.stat().st_mtime for p in sources), default=0.0)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        call_command("collectstatic", interactive=False, clear=True, verbosity=0)
