"""What an owner does with decisions over time, in a real browser (Debian's chromium):
units typed in words, exports days later, edit, duplicate, compare, delete, revoke,
the phone layout, pages without JavaScript, focus after a refused submit, copying a
link, and an accessibility scan (axe-core, vendored) of every page on the way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from advisor import services
from advisor.models import Decision
from advisor.usecase import parse_usecase
from tests.browser.conftest import NewContext, axe_violations, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

PASSWORD = "a long enough passphrase 42"


def sign_up(page: Page, username: str) -> None:
    page.goto("/accounts/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="My decisions")).to_be_visible()


def log_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def assert_accessible(page: Page, where: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{where}: {json.dumps(violations, indent=1)}"


def answer_row(page: Page, question: str) -> Any:
    return page.locator("table.answers tr", has_text=question).locator("td")


def test_units_typed_in_words_are_read_and_shown_back_in_them(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Name of this use case").fill("Nightly export")
    page.get_by_role("radio", name=re.compile(r"^File transfer")).check()
    page.get_by_label("Size of one file or batch").fill("20GB")
    page.get_by_label("Peak messages or requests").fill("once a day")
    page.get_by_label("Time budget for one message or request").fill("2 h")
    # A bare number is read in the unit chosen beside it.
    page.get_by_label("Typical size of one message").fill("64")
    page.get_by_label("Message size: unit").select_option("KiB")
    expect(page.locator("#preview .top3-item")).to_have_count(3)
    screenshot(page, "20-units-typed")

    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    decision = Decision.objects.get()
    assert decision.usecase["file_bytes"] == 20_000_000_000
    assert decision.usecase["rate_per_second"] == pytest.approx(1 / 86400)
    assert decision.usecase["latency_ms"] == 7_200_000
    assert decision.usecase["message_bytes"] == 64 * 1024
    # The answers read back in the units they were given in.
    expect(answer_row(page, "Size of one file or batch")).to_have_text("20 GB")
    expect(answer_row(page, "Peak messages or requests")).to_have_text("1 per day")
    expect(answer_row(page, "Time budget")).to_have_text("2 h")
    expect(answer_row(page, "Typical size of one message")).to_have_text("64 KiB")

    # Duplicating shows the same answers in the same units, ready to change one.
    page.get_by_role("link", name="Duplicate and change").click()
    expect(page.get_by_label("Size of one file or batch")).to_have_value("20")
    expect(page.get_by_label("File size: unit")).to_have_value("GB")
    expect(page.get_by_label("Peak messages or requests")).to_have_value("1")
    expect(page.get_by_label("Peak rate: unit")).to_have_value("per day")

    # What cannot be read is refused with a message that says what is accepted.
    page.get_by_label("Size of one file or batch").fill("20 parsecs")
    expect(page.locator("#errors-file_bytes")).to_contain_text("'parsecs' is not a unit here")
    page.get_by_label("Size of one file or batch").fill("10^23")
    expect(page.locator("#errors-file_bytes")).to_contain_text("is not a unit here")
    page.get_by_label("Size of one file or batch").fill("2000 TB")
    expect(page.locator("#errors-file_bytes")).to_contain_text("accepted: from 1 byte to 1,000 TB")
    page.get_by_role("button", name="Get the recommendation").click()
    # After the refused submit the focus is on the summary of what to fix.
    expect(page.locator("#form-errors")).to_be_focused()
    expect(page.locator("#form-errors")).to_contain_text("Size of one file or batch")
    assert Decision.objects.count() == 1
    screenshot(page, "21-units-refused")
    assert_accessible(page, "questionnaire with errors")


def test_owner_later_exports_edits_duplicates_compares_and_deletes(
    new_context: NewContext, tmp_path: Path
) -> None:
    first = new_context().new_page()
    sign_up(first, "ada")
    first.get_by_role("link", name="New recommendation").click()
    first.get_by_label("Name of this use case").fill("Orders to the warehouse")
    first.get_by_role("radio", name=re.compile(r"^Fire and forget")).check()
    first.get_by_label("Must messages wait while the receiver is down or busy?").check()
    first.get_by_role("button", name="Get the recommendation").click()
    first.wait_for_url(re.compile(r"/d/\d+$"))
    version_one = Decision.objects.get()
    share_url = first.get_by_label("Share link").input_value()
    first.context.close()

    # Days later, in a new browser: no share token cookie, only the account.
    page = new_context(accept_downloads=True).new_page()
    missing = page.goto(f"/d/{version_one.pk}")
    # Not logged in, the decision answers 404 like any other number would; the page
    # offers to log in, and logging in returns to the page the owner was going to.
    assert missing is not None and missing.status == 404
    page.get_by_role("main").get_by_role("link", name="log in").click()
    expect(page).to_have_url(re.compile(r"/accounts/login\?next=%2Fd%2F\d+"))
    log_in(page, "ada")
    page.wait_for_url(re.compile(rf"/d/{version_one.pk}$"))
    expect(page.get_by_label("Share link")).to_have_count(0)
    day = version_one.created_at.strftime("%Y-%m-%d")
    with page.expect_download() as madr:
        page.get_by_role("link", name="Download decision record (MADR)").click()
    assert madr.value.suggested_filename == f"orders-to-the-warehouse-{day}.md"
    assert "# Orders to the warehouse" in Path(madr.value.path()).read_text(encoding="utf-8")
    with page.expect_download() as exported:
        page.get_by_role("link", name="Download JSON").click()
    assert exported.value.suggested_filename == f"orders-to-the-warehouse-{day}.json"
    assert json.loads(Path(exported.value.path()).read_text()) == version_one.result
    assert_accessible(page, "decision page")

    # Edit: a new version; the old one and its link stay as they were.
    page.get_by_role("link", name="Edit the answers").click()
    expect(page.get_by_role("heading", name="Edit: Orders to the warehouse")).to_be_visible()
    page.get_by_label("How many independent receivers get each message?").fill("3")
    page.get_by_role("button", name="Save as version 2").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    version_two = Decision.objects.exclude(pk=version_one.pk).get()
    assert version_two.previous_id == version_one.pk and version_two.revision == 2
    expect(page.get_by_text("Version 2", exact=True)).to_be_visible()
    version_one.refresh_from_db()
    assert version_one.usecase["consumers"] == 1
    stranger = new_context().new_page()
    old_link = stranger.goto(share_url)
    assert old_link is not None and old_link.status == 200
    expect(answer_row(stranger, "How many independent receivers")).to_have_text("1")

    # Compare the two versions: the changed answer, and the ranking side by side.
    page.get_by_role("link", name="compare").click()
    expect(page.get_by_role("heading", name="Compare two decisions")).to_be_visible()
    differ = page.locator("table.answers-differ tbody tr")
    expect(differ).to_have_count(1)
    expect(differ.first).to_have_attribute("data-field", "consumers")
    expect(differ.first.locator("td")).to_have_text(["1", "3"])
    expect(page.locator("table.ranking-diff tbody tr")).to_have_count(11)
    winner_two = version_two.ranking[0]["method"]
    expect(page.locator("table.ranking-diff tbody tr").first).to_have_attribute(
        "data-method", winner_two
    )
    screenshot(page, "22-compare")
    assert_accessible(page, "compare page")

    # Duplicate version 2 and change one answer: a separate decision.
    page.goto(f"/d/{version_two.pk}")
    page.get_by_role("link", name="Duplicate and change").click()
    expect(page.get_by_label("Name of this use case")).to_have_value(
        "Orders to the warehouse (copy)"
    )
    expect(page.get_by_label("How many independent receivers get each message?")).to_have_value("3")
    page.get_by_role("radio", name=re.compile(r"^Publish and subscribe")).check()
    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    copy = Decision.objects.get(title="Orders to the warehouse (copy)")
    assert copy.previous_id is None and copy.revision == 1
    assert copy.usecase["interaction"] == "publish_subscribe" and copy.usecase["consumers"] == 3
    copy_link = page.get_by_label("Share link").input_value()

    # The link's real expiry, once set.
    page.get_by_label("Stops working").select_option("7d")
    page.get_by_role("button", name="Set expiry").click()
    expect(page.locator("td.expiry time")).to_be_visible()
    expect(page.locator("td.expiry")).to_contain_text("(in 6 days")
    screenshot(page, "23-expiry")

    # Delete the copy: a page asks first, then its link stops working.
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Delete “Orders"))).to_be_visible()
    expect(page.get_by_text("1 working link")).to_be_visible()
    assert_accessible(page, "delete confirmation")
    screenshot(page, "24-delete-confirm")
    page.get_by_role("button", name="Delete the decision").click()
    expect(page.get_by_role("heading", name="My decisions")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("its share links no longer open")
    assert not Decision.objects.filter(pk=copy.pk).exists()
    gone = stranger.goto(copy_link)
    assert gone is not None and gone.status == 404
    # The versions that were not deleted are still listed.
    expect(page.locator(".decision-item")).to_have_count(2)
    assert_accessible(page, "my decisions")
    screenshot(page, "25-my-decisions")


def test_copy_button_copies_the_share_link(new_context: NewContext) -> None:
    context: BrowserContext = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto("/")
    page.get_by_role("radio", name=re.compile(r"^Streaming")).check()
    page.get_by_role("button", name="Get the recommendation").click()
    page.wait_for_url(re.compile(r"/d/\d+$"))
    link = page.get_by_label("Share link").input_value()
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#share-url-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == link


def test_without_javascript_units_compare_and_chart_words_still_work(
    new_context: NewContext,
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    sign_up(page, "lin")
    for title, size in (("Small messages", "2"), ("Big messages", "200")):
        page.goto("/")
        page.get_by_label("Name of this use case").fill(title)
        page.get_by_role("radio", name=re.compile(r"^Request and response")).check()
        page.get_by_label("Typical size of one message").fill(size)
        page.get_by_label("Message size: unit").select_option("MB")
        page.get_by_role("button", name="Get the recommendation").click()
        page.wait_for_url(re.compile(r"/d/\d+$"))
        expect(answer_row(page, "Typical size of one message")).to_have_text(f"{size} MB")
    small, big = Decision.objects.order_by("pk")
    assert (small.usecase["message_bytes"], big.usecase["message_bytes"]) == (2e6, 2e8)
    # Without the copy script the copy button stays hidden; the link is still there.
    expect(page.get_by_role("button", name="Copy link")).to_be_hidden()
    expect(page.locator("#chart-ranking .chart-fallback")).to_be_visible()

    page.get_by_role("link", name="My decisions").click()
    page.get_by_label("Compare", exact=True).select_option(str(small.pk))
    page.get_by_label("with", exact=True).select_option(str(big.pk))
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("table.answers-differ tbody tr")).to_have_count(2)
    expect(page.locator("tr[data-field=message_bytes] td")).to_have_text(["2 MB", "200 MB"])
    screenshot(page, "26-nojs-compare")


def test_phone_questionnaire_folds_the_top_three(new_context: NewContext) -> None:
    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.goto("/?example=support-chat")
    box = page.locator("#preview-box")
    # Folded to its heading line on arrival: the questions keep the screen.
    expect(box).not_to_have_attribute("open", "")
    height = page.locator("aside.preview").bounding_box()
    assert height is not None and height["height"] < 0.1 * 844, height
    screenshot(page, "27-phone-top3-folded", full_page=False)
    # Among the questions, one tap opens it, with the three best; another folds it.
    page.locator("#group-speed").scroll_into_view_if_needed()
    page.get_by_text("Top three so far").tap()
    expect(page.locator("#preview .top3-item")).to_have_count(3)
    expect(page.locator("#preview .top3-item").first).to_be_in_viewport()
    screenshot(page, "28-phone-top3-open", full_page=False)
    page.get_by_text("Top three so far").tap()
    expect(page.locator("#preview .top3-item").first).to_be_hidden()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the questionnaire is {overflow}px wider than a phone"
    assert_accessible(page, "phone questionnaire")


def test_long_numbers_and_titles_stay_inside_their_boxes(new_context: NewContext) -> None:
    _, token = services.decision_create(
        usecase=parse_usecase(
            {
                "title": "X" * 200,
                "interaction": "file_transfer",
                "file_bytes": 10**15 - 1,
                "message_bytes": 10**12 - 7,
                "rate_per_second": 999_999_999.123,
                "consumers": 10**9,
                "latency_ms": 86_399_999.5,
            }
        ),
        owner=None,
    )
    for width in (390, 1280):
        page = new_context(viewport={"width": width, "height": 900}).new_page()
        page.goto(services.share_url(token))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{width}px: the page is {overflow}px too wide"
        # No cell of the answers table spills out of the table.
        spill = page.locator("table.answers td, table.answers th").evaluate_all(
            "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).length"
        )
        assert spill == 0
        screenshot(page, f"29-long-values-{width}", full_page=False)
    assert_accessible(page, "share page with long values")
