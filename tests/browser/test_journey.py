"""A person's way through Switchboard in a real browser (Debian's chromium).

The expected answers come from the engine itself, called here with the same
answers the test types in, so the pages are checked against what the engine says
rather than against hard-coded method names.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from advisor import plots, selectors, services
from advisor.engine import Recommendation, recommend
from advisor.models import Decision
from advisor.usecase import parse_usecase
from tests.browser.conftest import NewContext, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

TITLE = "Orders from the shop to the warehouse"


def engine_says(**answers: Any) -> Recommendation:
    return recommend(parse_usecase(answers))


def preview_items(page: Page) -> Locator:
    return page.locator("#preview .top3-item")


def expect_preview(page: Page, recommendation: Recommendation) -> None:
    """Wait (with Playwright's deadline) until the live top three is the engine's."""
    items = preview_items(page)
    expect(items).to_have_count(3)
    for index, item in enumerate(recommendation.ranking[:3]):
        expect(items.nth(index)).to_have_attribute("data-method", item.method)


def label_of(recommendation: Recommendation, index: int = 0) -> str:
    item = recommendation.ranking[index]
    return item.label or item.method


def test_questionnaire_live_preview_recommendation_share_and_export(
    page: Page, new_context: NewContext, tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="How should your servers talk?")).to_be_visible()
    expect(page.locator("#preview")).to_contain_text("Choose how the two sides interact")
    screenshot(page, "01-questionnaire-empty")

    page.get_by_label("Name of this use case").fill(TITLE)
    # The preview is fetched by htmx (POST /preview) as answers change: no page load.
    with page.expect_response(lambda r: r.url.endswith("/preview") and r.status == 200):
        page.get_by_role("radio", name=re.compile(r"^Request and response")).check()
    first = engine_says(title=TITLE, interaction="request_response")
    expect_preview(page, first)
    before = [preview_items(page).nth(i).get_attribute("data-method") for i in range(3)]

    # Change the answers so that the engine's top three changes, and watch the preview follow.
    page.get_by_role("radio", name=re.compile(r"^Fire and forget")).check()
    page.get_by_label("Must messages wait while the receiver is down or busy?").check()
    page.get_by_label("Peak messages or requests").fill("200 per second")
    final = engine_says(
        title=TITLE,
        interaction="fire_and_forget",
        receiver_may_be_offline=True,
        rate_per_second=200,
    )
    assert [m.method for m in final.ranking[:3]] != before, "pick answers that change the top"
    expect_preview(page, final)
    assert urlsplit(page.url).path == "/"  # the preview changed in place, no page load

    # A bad answer is reported in the preview, naming the question, and fixing it recovers.
    size = page.get_by_label("Typical size of one message")
    size.fill("0")
    expect(page.locator("#preview .notice.error")).to_contain_text("Typical size of one message")
    # ... and beside the question itself, as it would be after submitting.
    expect(page.locator("#errors-message_bytes")).to_contain_text("accepted: from 1 byte to 1 TB")
    # A size typed with its unit in words is read with it (the chooser says KiB).
    size.fill("1024 bytes")
    expect_preview(page, final)
    expect(page.locator("#errors-message_bytes")).to_be_empty()
    screenshot(page, "02-questionnaire-preview")

    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    decision = Decision.objects.get(title=TITLE)
    assert decision.result["ranking"][0]["method"] == final.ranking[0].method
    expect(page.locator("section.winner")).to_contain_text("Recommended")
    expect(page.locator("#winner-title")).to_contain_text(label_of(final))
    expect(page.locator("table.ranking tbody tr")).to_have_count(11)
    expect_charts(page)
    screenshot(page, "03-recommendation")

    share_url = page.get_by_label("Share link").input_value()
    assert urlsplit(share_url).path.startswith("/s/")

    # Someone else, with no cookies and no account, opens the link.
    stranger = new_context().new_page()
    response = stranger.goto(share_url)
    assert response is not None and response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    expect(stranger.get_by_text("Shared recommendation · read-only")).to_be_visible()
    expect(stranger.locator("#winner-title")).to_contain_text(label_of(final))
    expect(stranger.get_by_role("heading", name="Share this recommendation")).to_have_count(0)
    expect_charts(stranger)
    screenshot(stranger, "04-share-page")

    with stranger.expect_download() as download_info:
        stranger.get_by_role("link", name=re.compile(r"decision record")).click()
    download = download_info.value
    day = decision.created_at.strftime("%Y-%m-%d")
    assert download.suggested_filename == f"orders-from-the-shop-to-the-warehouse-{day}.md"
    madr = Path(download.path()).read_text(encoding="utf-8")
    assert madr.startswith("---\nstatus: proposed\n")
    assert f"# {TITLE}" in madr
    for heading in ("## Context and Problem Statement", "## Considered Options"):
        assert heading in madr
    assert f'Chosen option: "{label_of(final)}' in madr
    options = madr.split("## Considered Options", 1)[1].split("## Decision Outcome", 1)[0]
    for item in final.ranking:  # every method is a considered option, in ranking order
        assert f"* {item.label or item.method}" in options
    positions = [options.index(f"* {item.label or item.method}") for item in final.ranking]
    assert positions == sorted(positions)

    with stranger.expect_download() as download_info:
        stranger.get_by_role("link", name="Download JSON").click()
    assert download_info.value.suggested_filename.endswith(f"-{day}.json")
    exported = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert exported == decision.result


def expect_charts(page: Page) -> None:
    """Plotly drew both figures: an SVG inside each chart div, one bar per method."""
    for chart in ("#chart-ranking", "#chart-contributions"):
        expect(page.locator(f"{chart} svg.main-svg").first).to_be_visible()
    expect(page.locator("#chart-ranking .trace.bars .point")).to_have_count(11)
    # The heatmap as SVG rectangles (a canvas image would break the page's CSP), one
    # per answer and method, each with its number; the no-JavaScript sentence is gone.
    cells = page.locator("#chart-contributions .shapelayer path")
    expect(cells.first).to_be_visible()
    texts = page.locator("#chart-contributions .textpoint")
    expect(texts).to_have_count(cells.count())
    expect(page.locator(".chart-fallback")).to_have_count(0)


def test_without_javascript_the_form_posts_and_errors_sit_next_to_their_fields(
    new_context: NewContext,
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    page.goto("/")
    page.get_by_role("radio", name=re.compile(r"^Publish and subscribe")).check()
    page.get_by_label("How many independent receivers get each message?").fill("0")
    page.get_by_role("button", name="Get the recommendation").click()

    field = page.locator("#q-consumers")
    expect(field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(field).to_contain_text("accepted: a whole number >= 1")
    expect(page.get_by_role("alert")).to_contain_text("Some answers need fixing")
    assert Decision.objects.count() == 0
    screenshot(page, "05-nojs-error")

    page.get_by_label("How many independent receivers get each message?").fill("4")
    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    expected = engine_says(interaction="publish_subscribe", consumers=4)
    expect(page.locator("#winner-title")).to_contain_text(label_of(expected))
    # No JavaScript, no charts: the same numbers are in the tables.
    expect(page.locator("table.ranking tbody tr")).to_have_count(11)
    expect(page.locator("#chart-ranking svg")).to_have_count(0)
    # Each chart box says, in words, where its numbers are instead of staying empty.
    expect(page.locator("#chart-ranking .chart-fallback")).to_contain_text(
        f"{label_of(expected)} leads with +"
    )
    expect(page.locator("#chart-contributions .chart-fallback")).to_contain_text(
        "has the same numbers"
    )
    screenshot(page, "05b-nojs-recommendation")


@pytest.mark.parametrize("index", [0, -1])
def test_gallery_example_prefills_the_form_and_ranks_it(page: Page, index: int) -> None:
    example = selectors.example_list()[index]
    page.goto("/")
    page.get_by_role("link", name=example.title).click()
    page.wait_for_url(re.compile(r"\?example="))
    expect(page.locator(".gallery [aria-current=true]")).to_have_text(example.title)
    # The answers are the example's, and they are ranked on arrival, before any change.
    answers = example.usecase
    interaction = page.locator(f"input[name=interaction][value={answers.interaction}]")
    expect(interaction).to_be_checked()
    expect(page.get_by_label("Name of this use case")).to_have_value(answers.title)
    expect_preview(page, recommend(answers))

    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    assert Decision.objects.get().usecase == answers.model_dump(mode="json")


def test_owner_revokes_the_link_and_the_stranger_gets_404(
    page: Page, new_context: NewContext
) -> None:
    page.goto("/accounts/signup")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password", exact=True).fill("a long enough passphrase 42")
    page.get_by_label("Password confirmation").fill("a long enough passphrase 42")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="My decisions")).to_be_visible()

    page.get_by_role("link", name="New recommendation").click()
    page.get_by_label("Name of this use case").fill("Sensor readings")
    page.get_by_role("radio", name=re.compile(r"^Streaming")).check()
    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    share_url = page.get_by_label("Share link").input_value()

    stranger = new_context().new_page()
    first_visit = stranger.goto(share_url)
    assert first_visit is not None and first_visit.status == 200

    page.get_by_role("link", name="My decisions").click()
    expect(page.get_by_role("link", name="Sensor readings")).to_be_visible()
    page.get_by_role("link", name="Revoke…").click()
    # Revoking cannot be undone: a page asks first, and nothing changed yet.
    expect(page.get_by_role("heading", name="Revoke this share link?")).to_be_visible()
    still = stranger.goto(share_url)
    assert still is not None and still.status == 200
    page.get_by_role("button", name="Revoke the link").click()
    expect(page.get_by_role("heading", name="My decisions")).to_be_visible()
    expect(page.locator(".state-revoked")).to_be_visible()
    screenshot(page, "06-my-decisions-revoked")

    after = stranger.goto(share_url)
    assert after is not None and after.status == 404
    screenshot(stranger, "07-share-revoked-404")


def test_api_docs_render_from_local_assets_only(page: Page, live_server: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/api/docs")
    expect(page.get_by_text("/api/recommendations").first).to_be_visible()
    screenshot(page, "08-api-docs")
    foreign = [url for url in requested if not url.startswith(live_server.url)]
    assert not foreign, f"the docs page loaded assets from elsewhere: {foreign}"


def test_share_page_fits_a_phone_screen(new_context: NewContext) -> None:
    decision, token = services.decision_create(
        # Many answers that count, so the heatmap has many rows to fit.
        usecase=parse_usecase(
            {
                "title": "Phone check",
                "interaction": "fire_and_forget",
                "peers": "partner",
                "firewall": "http_only",
                "delivery": "exactly_once",
                "ordering": "per_key",
                "receiver_may_be_offline": True,
            }
        ),
        owner=None,
    )
    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.goto(services.share_url(token))
    expect(page.locator("#winner-title")).to_contain_text(decision.result["ranking"][0]["label"])
    expect(page.locator("#chart-ranking svg.main-svg").first).to_be_visible()
    # Readable on a phone: nothing forces sideways scrolling of the whole page
    # (wide tables scroll inside their own wrapper).
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    # The heatmap stays legible: every answer keeps its label, rows keep a finger's
    # height, and the colour bar gives its width to the cells.
    heatmap = page.locator("#chart-contributions")
    expect(heatmap.locator("svg.main-svg").first).to_be_visible()
    stored = Recommendation.from_stored(decision.result)
    assert stored is not None
    answers = plots.field_contributions(stored.ranking)["fields"]
    expect(heatmap.locator(".ytick text")).to_have_count(len(answers))
    expect(heatmap.locator(".colorbar")).to_have_count(0)
    rows = sorted(
        heatmap.locator(".ytick text").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().top)"
        )
    )
    gaps = [b - a for a, b in itertools.pairwise(rows)]
    assert gaps and min(gaps) >= 20, f"heatmap rows are {gaps} px apart on a phone"
    screenshot(page, "09-share-page-phone", full_page=False)
    page.locator("#ranking-title").scroll_into_view_if_needed()
    screenshot(page, "10-share-page-phone-ranking", full_page=False)
