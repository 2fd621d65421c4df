"""A person tests the options on their servers, in Debian's chromium (Playwright).

The whole stack runs as processes (web, a worker, beat, the machine's Redis),
as in production: the test logs in, makes a decision, types a host once,
adjusts the proposed targets, runs them, watches the progress move, reads the
results, the charts and the advice with the evidence, and opens the share link
in a fresh anonymous browser context, where the evidence shows too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, screenshot
from tests.conftest import in_ci, require_service
from tests.probes.servers_http import Server
from tests.runs.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.services]
PASSWORD = "a-long-test-password-1"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"{message}; CI=true: a missing browser is a failure")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _row(page: Page, label: str) -> Any:
    return page.locator(".probe-row").filter(has=page.get_by_text(label, exact=False))


def test_test_my_servers_from_the_decision_page_to_the_shared_evidence(
    chromium: Browser,
    redis_stack: Stack,
    http_target: Server,
    responder: Any,
    tmp_path: Path,
) -> None:
    mosquitto = require_service("mosquitto")
    stack = redis_stack
    stack.worker(concurrency=4)
    stack.beat()
    stack.user("erin", PASSWORD)

    context = chromium.new_context(base_url=stack.web_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/accounts/login")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()

    page.goto("/?example=truck-telemetry")
    page.get_by_role("button", name="Get the recommendation").click()
    expect(page).to_have_url(re.compile(r"/d/\d+$"))
    page.wait_for_load_state("load")  # htmx is loaded: the panel works in place
    decision_url = page.url
    share_url = page.locator("#share-url").input_value()
    panel = page.locator("#probe-panel")
    expect(panel.get_by_role("heading", name="Test these options on your servers")).to_be_visible()

    # The host, typed once: one target per leading candidate, usual scheme and port.
    panel.get_by_label("Host name(s) or address(es)").fill("127.0.0.1")
    panel.get_by_role("button", name="Propose targets").click()
    urls = panel.locator('input[name="url"]')
    expect(urls).to_have_count(4)
    assert urls.nth(0).input_value() == f"mqtt://127.0.0.1:{mosquitto}"
    proposed = [urls.nth(i).input_value() for i in range(4)]
    assert "grpc://127.0.0.1:50051" in proposed and "tcp://127.0.0.1:7008" in proposed
    assert page.url == decision_url  # htmx swapped the panel in place
    screenshot(page, "runs-01-proposed")

    # Edit one (the responder listens elsewhere), remove one, add two.
    tcp = panel.locator('input[name="url"][value="tcp://127.0.0.1:7008"]')
    tcp.fill(f"tcp://127.0.0.1:{responder.tcp_port}")
    grpc_index = proposed.index("grpc://127.0.0.1:50051")
    panel.get_by_role("button", name=f"Remove target {grpc_index + 1}").click()
    expect(urls).to_have_count(3)
    added = [f"udp://127.0.0.1:{responder.udp_port}", f"http://127.0.0.1:{http_target.port}/"]
    for count, url in enumerate(added, start=4):
        panel.get_by_role("button", name="Add a target").click()
        expect(urls).to_have_count(count)
        expect(urls.last).to_have_value("")
        urls.last.fill(url)
    # The edit to the tcp row survived the removals and additions (they post the form).
    values = [urls.nth(i).input_value() for i in range(5)]
    assert f"tcp://127.0.0.1:{responder.tcp_port}" in values
    panel.get_by_text("Samples, interval and timeout").click()
    panel.get_by_label("Samples per target (1 to 100)").fill("20")
    panel.get_by_label("Interval between samples (ms)").fill("150")
    expect(panel.get_by_label(re.compile(stack.name))).to_be_checked()
    panel.get_by_role("button", name="Run", exact=True).click()

    # The run page: the progress moves while the workers probe.
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    summary = page.locator("#run-summary")
    expect(summary).to_contain_text("of 5 targets")
    seen = {summary.inner_text()}
    page.wait_for_function(
        "() => /[1-9][0-9]* of 100 samples/"
        ".test(document.querySelector('#run-summary').textContent)"
        " && !document.querySelector('.run-summary .state-done')"
    )
    seen.add(summary.inner_text())
    screenshot(page, "runs-02-progress")
    expect(page.locator(".run-summary .state-done")).to_be_visible(timeout=120_000)
    seen.add(summary.inner_text())
    assert len(seen) >= 2, f"the progress never moved: {seen}"
    expect(summary).to_have_text("5 of 5 targets, 100 of 100 samples")

    # Results in words and numbers, per target.
    results = page.locator("table.run-results tbody tr")
    expect(results).to_have_count(5)
    http_row = results.filter(has_text=f"http://127.0.0.1:{http_target.port}/")
    expect(http_row.locator(".state")).to_have_text("ok")
    wss_row = results.filter(has_text="wss://127.0.0.1/")
    expect(wss_row).to_contain_text("connection refused")
    expect(results.filter(has_text="udp://")).to_contain_text("answered")
    # Charts, drawn by plotly from the figures stored when the run ended.
    figures = page.locator(".run-charts figure")
    expect(figures).to_have_count(3)
    for index in range(3):
        expect(figures.nth(index).locator(".chart .main-svg").first).to_be_visible()
    # The advice with the evidence, beside the advice as decided.
    expect(page.get_by_role("heading", name="What the measurements changed")).to_be_visible()
    notes = page.locator("ul.evidence-notes li")
    expect(notes.filter(has_text="wss://127.0.0.1/ refused the connection")).to_have_count(1)
    compare = page.locator("table.advice-compare")
    expect(compare).to_contain_text("The advice before and after the evidence")
    expect(compare.locator("tbody tr")).to_have_count(5)
    # WebSockets were among the leaders as decided; refused here, they are ruled out
    # and leave the top five.
    expect(compare.locator("tr.changed").first).to_be_visible()
    rows = compare.locator("tbody tr")
    before = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(5)]
    after = [rows.nth(i).locator("td").nth(3).inner_text() for i in range(5)]
    assert "WebSockets" in before and "WebSockets" not in after, (before, after)
    screenshot(page, "runs-03-results")

    # The share link, in a fresh context: someone without an account sees the evidence.
    anonymous = chromium.new_context(base_url=stack.web_url)
    anonymous.set_default_timeout(TIMEOUT_MS)
    shared = anonymous.new_page()
    shared.goto(share_url)
    evidence = shared.locator(".shared-evidence")
    expect(
        evidence.get_by_role("heading", name="Evidence: measurements of the servers")
    ).to_be_visible()
    expect(evidence.locator("table.run-results tbody tr")).to_have_count(5)
    expect(evidence).to_contain_text("connection refused")
    expect(evidence.locator("table.advice-compare")).to_be_visible()
    expect(evidence.locator("ul.evidence-notes")).to_contain_text("wss://127.0.0.1/ refused")
    expect(evidence.locator(".main-svg").first).to_be_visible()
    screenshot(shared, "runs-04-shared-evidence")
    assert "Test these options" not in shared.content() or "Log in" in shared.content()
    anonymous.close()
    context.close()
