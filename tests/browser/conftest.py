"""Browser fixtures: Debian's chromium driven by Playwright against a live server.

The app runs in pytest-django's ``live_server`` (a real HTTP server in a thread of
this process) on the test database, so tests use ``transactional_db`` to make
their rows visible to it. Playwright is never allowed to download a browser: the
suite uses ``/usr/bin/chromium``; when it is missing the suite fails under
``CI=true`` and skips elsewhere, like the loopback services in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)
from pytest_django.live_server_helper import LiveServer

from tests.conftest import in_ci

CHROMIUM = Path(os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous deadlines (Playwright waits on conditions, never a fixed time): a slow CI
# machine must not turn into a flaky failure.
TIMEOUT_MS = (
    45_000  # generous: a loaded 2-core CI machine serves slowly; a pass costs nothing extra
)
expect.set_options(timeout=TIMEOUT_MS)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


# Module scope, not session: while Playwright's sync API is open, an asyncio loop
# counts as running in this thread, which would break every later test in the run
# that calls asyncio.run(). Ending it with the module keeps that inside this folder.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"{message}; CI=true: a missing browser is a failure")
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as patch:
        # Django refuses ORM calls from a thread with a running loop unless told the
        # caller knows better; the ORM calls here are the tests' own (and the test
        # database's flush), made between browser steps, never inside the loop.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield launched
            finally:
                launched.close()


NewContext = Callable[..., BrowserContext]


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """pytest-django's live server, but serving static files as production does.

    pytest-django puts Django's StaticFilesHandler in front, which finds files by
    their plain names and cannot serve the hashed names the pages link to; here
    WhiteNoise (in the middleware) serves them from STATIC_ROOT, compressed and with
    their cache headers, as behind gunicorn.
    """
    from tests.staticfiles import ensure_collected

    ensure_collected()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.contrib.staticfiles.handlers.StaticFilesHandler", lambda app: app)
        server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def new_context(browser: Browser, live_server: LiveServer) -> Iterator[NewContext]:
    """A factory of fresh browser contexts: each has its own cookies, like another person."""
    contexts: list[BrowserContext] = []
    refused: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        # Chromium reports every blocked script, style, image or connection as a
        # console error naming the Content-Security-Policy.
        if message.type == "error" and "Content Security Policy" in message.text:
            refused.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("console", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    # Every page of every journey ran under the policy without anything refused.
    assert refused == [], "the Content-Security-Policy refused:\n" + "\n".join(refused)


@pytest.fixture
def page(new_context: NewContext) -> Page:
    return new_context().new_page()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot to test-artifacts/ for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core-4.10.3.min.js"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core (vendored) finds on the page as it is now: WCAG 2.1 A and AA rules.

    Evaluated through the browser's debugging protocol, which the page's
    Content-Security-Policy does not govern, so the page is scanned as served.
    """
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """() => axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            resultTypes: ["violations"],
        })"""
    )
    return [
        {
            "id": v["id"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]
