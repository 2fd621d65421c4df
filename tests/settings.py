"""The test suite's settings: production's (advisor/settings.py), with what tests on
plain-http loopback need put in the environment first, so that the processes tests
start (servers, workers, management commands) inherit it as well.

That is a key of the tests' own (DEBUG is off by default and the settings refuse to
start without one), no redirect to https, and cookies over http.
tests/test_production.py checks the production defaults themselves, in fresh
processes without these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

TEST_ENVIRONMENT = {
    "DJANGO_SECRET_KEY": "switchboard-tests-only-secret-key-3f9c2a7e51b84d06a9e1c7b2d4f8",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_COOKIES": "false",
}
for _name, _value in TEST_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

if TYPE_CHECKING:
    from advisor.settings import *  # noqa: F403
else:
    # Run the production file in this module rather than import it: importing
    # advisor.settings imports the advisor package first, whose Celery app reads the
    # settings, which are this module, not yet loaded.
    _PRODUCTION = Path(__file__).resolve().parents[1] / "advisor" / "settings.py"
    _namespace = {"__file__": str(_PRODUCTION), "__name__": "advisor.settings"}
    exec(compile(_PRODUCTION.read_text(), str(_PRODUCTION), "exec"), _namespace)
    globals().update({k: v for k, v in _namespace.items() if k.isupper()})
