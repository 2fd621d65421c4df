"""The questionnaire, the live preview and the decision page, through Django's test client."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from advisor import vocabulary
from advisor.forms import FORM_FIELDS, GROUPS, QUANTITY_FIELDS, QUESTIONS
from advisor.models import Decision, ShareLink
from advisor.selectors import example_list

# The questions on the form: every field of the document but its format version.
FIELDS = FORM_FIELDS

pytestmark = pytest.mark.django_db

CHAT = {
    "title": "Support chat",
    "interaction": "bidirectional",
    "realtime": "on",
    "browser_clients": "on",
    "peers": "public",
    "latency_ms": "200",
    "message_bytes": "500",
    "rate_per_second": "2000",
    "consumers": "1",
    "delivery": "at_least_once",
    "ordering": "none",
    "firewall": "open",
    "existing_interface": "none",
    "encryption": "on",
}


# One question's block, up to where the next question or section starts.
FIELD_BLOCK = (
    r'<div class="field [^"]*has-error" id="q-{name}">(.*?)</div>\s*'
    r'(?=<div class="field |</details>|<details|</fieldset>)'
)


def shown_quantity(html: str, name: str) -> tuple[str, str]:
    """(number in the box, unit chosen beside it) for a quantity question."""
    box = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert box is not None, name
    value = re.search(r'value="([^"]*)"', box.group(0))
    select = re.search(rf'<select name="{name}_unit".*?</select>', html, re.S)
    assert select is not None, name
    # None selected (a form posted without it) shows the first: the base unit.
    chosen = re.search(r'<option value="([^"]+)" selected>', select.group(0)) or re.search(
        r'<option value="([^"]+)"', select.group(0)
    )
    assert chosen is not None, name
    return (value.group(1) if value else ""), chosen.group(1)


def shown_value(html: str, name: str) -> float:
    """The quantity a question shows, read back in its base unit as the form reads it."""
    number, unit = shown_quantity(html, name)
    return vocabulary.parse_quantity(number, QUANTITY_FIELDS[name], default_unit=unit)


def form_data(**changes: Any) -> dict[str, Any]:
    data = {**CHAT, **changes}
    return {k: v for k, v in data.items() if v is not None}


def top_methods(html: str) -> list[str]:
    return re.findall(r'class="top3-item[^"]*" data-method="([a-z_]+)"', html)


def test_form_renders_every_field_with_label_and_described_help(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in FIELDS:
        field_id = f"id_{name}"
        question = QUESTIONS[name]
        assert f'name="{name}"' in html, name
        assert unescape(question.help) in unescape(html), name
        assert f'id="{field_id}_helptext"' in html, name
        if name == "interaction":
            # A radio group: its fieldset is described by the help text, each option labelled.
            assert f'aria-describedby="{field_id}_helptext"' in html
            for i in range(7):
                assert f'<label class="choice" for="{field_id}_{i}">' in html
        else:
            assert f'<label for="{field_id}">' in html, name
            tag = re.search(rf'<(input|select|textarea)[^>]*id="{field_id}"[^>]*>', html)
            assert tag is not None, name
            assert f'aria-describedby="{field_id}_helptext"' in tag.group(0), name
        if name in QUANTITY_FIELDS:
            # The unit chooser beside the box has a name a screen reader says.
            short = vocabulary.FIELDS[name].short
            assert f'<label for="{field_id}_unit" class="sr-only">{short}: unit</label>' in html
    # The document format version is the file format's business, not a question.
    assert 'name="version"' not in html
    assert "Document format version" not in html


def test_form_starts_at_the_documents_defaults(client: Client) -> None:
    html = client.get("/").content.decode()
    # 1,024 bytes reads back as exactly 1 KiB; a bare number is read in the chosen unit.
    assert shown_quantity(html, "message_bytes") == ("1", "KiB")
    assert shown_quantity(html, "rate_per_second") == ("1", "per second")
    assert re.search(r'name="consumers"[^>]*value="1"', html)
    assert re.search(r'<input type="checkbox" name="encryption"[^>]*checked', html)
    assert not re.search(r'<input type="checkbox" name="realtime"[^>]*checked', html)
    assert re.search(r'<option value="at_least_once" selected>', html)
    # Nullable numbers are optional and start empty.
    latency = re.search(r'<input[^>]*name="latency_ms"[^>]*>', html)
    assert latency is not None and "value=" not in latency.group(0)


def test_form_has_basic_and_advanced_sections_in_the_five_groups(client: Client) -> None:
    html = client.get("/").content.decode()
    for group in GROUPS:
        assert f'id="group-{group.slug}"' in html
        assert f"<h2>{group.title}</h2>" in html.replace("&#x27;", "'")
    assert html.count('<details class="advanced"') == sum(1 for g in GROUPS if g.advanced)
    # An untouched form keeps the advanced questions folded away.
    assert '<details class="advanced" open>' not in html


def test_valid_post_without_js_creates_a_decision_and_redirects(client: Client) -> None:
    response = client.post("/", form_data())
    assert response.status_code == 302
    decision = Decision.objects.get()
    assert response["Location"] == f"/d/{decision.pk}"
    assert decision.owner is None
    assert decision.usecase["interaction"] == "bidirectional"
    assert decision.usecase["latency_ms"] == 200
    assert decision.usecase["realtime"] is True
    assert decision.usecase["small_team"] is False  # an unticked box is false
    assert decision.result["ranking"][0]["method"] == "websocket"
    assert decision.kb_version
    assert ShareLink.objects.filter(decision=decision).count() == 1

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "WebSockets" in html
    # The creator sees the share link once, and it opens the decision.
    share = re.search(r'id="share-url" type="text" readonly value="([^"]+)"', html)
    assert share is not None
    path = share.group(1).removeprefix("http://testserver")
    assert path.startswith("/s/")
    assert Client().get(path).status_code == 200


def test_invalid_post_shows_errors_next_to_fields_400_and_stores_nothing(client: Client) -> None:
    response = client.post("/", form_data(message_bytes="0", latency_ms="fast", interaction=None))
    assert response.status_code == 400
    assert Decision.objects.count() == 0
    assert ShareLink.objects.count() == 0
    html = unescape(response.content.decode())
    for name, text in [
        ("message_bytes", 'got "0 bytes"; accepted: from 1 byte to 1 TB'),
        ("latency_ms", "got \"fast\": 'fast' is not a number with a unit"),
        ("interaction", "is required; accepted: one of request_response"),
    ]:
        block = re.search(FIELD_BLOCK.format(name=name), html, re.S)
        assert block is not None, name
        assert f'id="id_{name}_error"' in block.group(1), name
        assert text in block.group(1), name
        assert 'aria-invalid="true"' in block.group(1), name
    # The other answers are kept, so the person only fixes what is wrong.
    assert shown_quantity(html, "rate_per_second") == ("2000", "per second")


def test_unknown_choice_value_is_a_field_error_not_a_crash(client: Client) -> None:
    response = client.post("/", form_data(delivery="twice", consumers="1.5"))
    assert response.status_code == 400
    html = unescape(response.content.decode())
    assert 'got "twice"; accepted: one of best_effort, at_least_once, exactly_once' in html
    assert "got 1.5; accepted: a whole number >= 1" in html
    assert Decision.objects.count() == 0


def test_htmx_preview_returns_only_the_partial_and_follows_the_answers(client: Client) -> None:
    headers = {"HX-Request": "true"}
    chat = client.post("/preview", form_data(), headers=headers)
    assert chat.status_code == 200
    html = chat.content.decode()
    assert "<html" not in html and "<form" not in html
    chat_top = top_methods(html)
    assert len(chat_top) == 3
    assert chat_top[0] == "websocket"

    batch = client.post(
        "/preview",
        form_data(
            interaction="file_transfer",
            realtime=None,
            browser_clients=None,
            peers="partner",
            latency_ms="",
            file_bytes="2000000000",
        ),
        headers=headers,
    )
    batch_top = top_methods(batch.content.decode())
    assert len(batch_top) == 3
    assert batch_top[0] == "file_transfer"
    assert batch_top != chat_top
    assert Decision.objects.count() == 0  # a preview stores nothing


def test_htmx_preview_of_invalid_answers_names_the_problem(client: Client) -> None:
    response = client.post("/preview", form_data(consumers="0"), headers={"HX-Request": "true"})
    # 200 so htmx swaps the message in; without htmx the same answer is a 400.
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "got 0; accepted: a whole number >= 1" in html
    assert top_methods(html) == []
    assert client.post("/preview", form_data(consumers="0")).status_code == 400


def test_questionnaire_wires_the_live_preview_with_htmx_from_static(client: Client) -> None:
    html = client.get("/").content.decode()
    assert 'hx-post="/preview"' in html
    assert 'hx-trigger="change, input delay:400ms"' in html
    assert re.search(r'src="/static/vendor/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js"', html)
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[A-Za-z0-9]{64}\"\}'>", html)
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


def test_preview_needs_post(client: Client) -> None:
    assert client.get("/preview").status_code == 405


@pytest.mark.parametrize("example", [e.name for e in example_list()])
def test_gallery_example_prefills_the_form(client: Client, example: str) -> None:
    shipped = next(e for e in example_list() if e.name == example)
    response = client.get("/", {"example": example})
    assert response.status_code == 200
    html = unescape(response.content.decode())
    usecase = shipped.usecase
    assert re.search(
        rf'<input type="radio" name="interaction" value="{usecase.interaction}"[^>]*checked', html
    )
    assert f'value="{usecase.title}"' in html
    assert shown_value(html, "rate_per_second") == pytest.approx(usecase.rate_per_second)
    assert shown_value(html, "message_bytes") == usecase.message_bytes
    # The prefilled answers are ranked right away, so the page is useful without JS.
    assert len(top_methods(html)) == 3


def test_gallery_covers_every_interaction() -> None:
    from advisor.usecase import INTERACTIONS

    assert {e.usecase.interaction for e in example_list()} == set(INTERACTIONS)
    assert len(example_list()) >= 8


def test_gallery_example_submits_to_its_expected_winner(client: Client) -> None:
    html = unescape(client.get("/", {"example": "nightly-batch"}).content.decode())
    data: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None or name.group(1) == "csrfmiddlewaretoken":
            continue
        if 'type="checkbox"' in tag or 'type="radio"' in tag:
            if "checked" in tag:
                data[name.group(1)] = value.group(1) if value else "on"
        else:
            data[name.group(1)] = value.group(1) if value else ""
    for name, options in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', options)
        if chosen:
            data[name] = chosen.group(1)
    response = client.post("/", data)
    assert response.status_code == 302
    assert Decision.objects.get().result["ranking"][0]["method"] == "file_transfer"


@pytest.mark.parametrize(
    "query", ["../../etc/passwd", "nope", "", "support-chat/../x", "A" * 500, "%00"]
)
def test_unknown_example_is_404_not_500(client: Client, query: str) -> None:
    assert client.get("/", {"example": query}).status_code == 404


@pytest.mark.parametrize("path", ["/d/999999", "/d/abc", "/d/-1", "/d/99999999999999999999999"])
def test_bad_decision_ids_are_404(client: Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_decision_page_only_for_its_creator(client: Client) -> None:
    response = client.post("/", form_data())
    location = response["Location"]
    assert client.get(location).status_code == 200
    # Another anonymous visitor (no session) cannot open it by id.
    assert Client().get(location).status_code == 404


def test_decision_page_charts_are_embedded_as_json_for_the_vendored_plotly(
    client: Client,
) -> None:
    location = client.post("/", form_data())["Location"]
    html = client.get(location).content.decode()
    # The cartesian partial bundle and its stylesheet, by hashed name.
    assert re.search(r'src="/static/vendor/plotly-cartesian-4\.1\.1\.min\.[0-9a-f]{12}\.js"', html)
    assert re.search(r'id="plotly.js-style-global" class="no-inline-styles"', html)
    assert re.search(r'src="/static/js/charts\.[0-9a-f]{12}\.js"', html)
    assert '<script id="fig-ranking" type="application/json">' in html
    assert '<script id="fig-contributions" type="application/json">' in html
    assert 'data-figure="fig-ranking"' in html


def test_too_long_title_is_a_field_error(client: Client) -> None:
    response = client.post("/", form_data(title="x" * 201))
    assert response.status_code == 400
    assert "accepted: a string of at most 200 characters" in unescape(response.content.decode())


def test_put_to_the_questionnaire_is_405(client: Client) -> None:
    assert client.put("/").status_code == 405


def test_questionnaire_lists_the_eleven_methods_from_the_knowledge_base(client: Client) -> None:
    from advisor.knowledge import KNOWLEDGE

    html = unescape(client.get("/").content.decode())
    assert len(KNOWLEDGE.methods) == 11
    for method_id, method in KNOWLEDGE.methods.items():
        assert f'{method.label} <code class="muted">{method_id}</code>' in html
        assert method.best_suited_for in html


def test_preview_says_what_each_of_the_top_three_is_best_suited_for(client: Client) -> None:
    from advisor.knowledge import KNOWLEDGE

    html = unescape(
        client.post("/preview", form_data(), headers={"HX-Request": "true"}).content.decode()
    )
    for method in top_methods(html):
        assert f"Best suited for {KNOWLEDGE.methods[method].best_suited_for}." in html


def test_contribution_chart_sums_reason_weights_per_answer_and_method() -> None:
    from advisor import engine, plots
    from advisor.usecase import parse_usecase

    ranking = engine.recommend(
        parse_usecase({"interaction": "streaming", "constrained_devices": True, "peers": "public"})
    ).ranking
    table = plots.field_contributions(ranking)
    assert table["methods"] == [item.label for item in ranking[: plots.TOP_N]]
    for column, item in enumerate(ranking[: plots.TOP_N]):
        reasons = item.reasons_for + item.reasons_against
        total = sum(row[column] for row in table["z"])
        assert total == pytest.approx(sum(r.weight for r in reasons), abs=0.01)
        for reason in reasons:
            for field in reason.fields:
                assert field in table["fields"]
    figure = plots.contribution_figure(ranking)
    assert figure is not None
    heatmap = figure["data"][0]
    assert heatmap["type"] == "heatmap"
    assert heatmap["z"] == table["z"]
    # Long answer labels wrap onto lines of their own, so the cells keep their room.
    assert [label.replace("<br>", " ") for label in heatmap["y"]] == table["labels"]
    assert all(len(line) <= 22 for label in heatmap["y"] for line in label.split("<br>"))


def test_a_reason_resting_on_two_answers_is_split_between_them() -> None:
    from advisor import plots
    from advisor.recommendation import MethodResult

    source = {"id": "azure-api-design"}
    ranking = [
        MethodResult.model_validate(
            {
                "method": "rest",
                "label": "REST",
                "reasons_for": [
                    {"text": "a", "fields": ["latency_ms", "peers"], "weight": 3, "source": source}
                ],
                "reasons_against": [
                    {"text": "b", "fields": ["peers"], "weight": -1, "source": source}
                ],
            }
        )
    ]
    table = plots.field_contributions(ranking)
    assert dict(zip(table["fields"], (row[0] for row in table["z"]), strict=True)) == {
        "latency_ms": 1.5,
        "peers": 0.5,
    }


def test_ranking_chart_shows_the_same_points_as_the_table(client: Client) -> None:
    from advisor import plots

    location = client.post("/", form_data())["Location"]
    decision = Decision.objects.get()
    from advisor.recommendation import Recommendation

    stored = Recommendation.from_stored(decision.result)
    assert stored is not None
    figure = plots.ranking_figure(stored.ranking)
    assert figure is not None
    bars = figure["data"][0]
    assert bars["y"] == [item["label"] for item in decision.result["ranking"]]
    html = client.get(location).content.decode()
    table = html.split('<table class="ranking">')[1].split("</table>")[0]
    cells = re.findall(r'<td class="num">([-+0-9.]+|ruled out)</td>', table)
    assert cells == bars["text"]
    # People read points (for minus against), never the contract's 0..1 score.
    assert [float(x) for x in bars["x"]] == [
        0.0 if item["excluded"] else item["points"] for item in decision.result["ranking"]
    ]
    assert "out of 1" not in html


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_bytes", "9" * 5000),
        ("message_bytes", "1e400"),
        ("latency_ms", "nan"),
        ("latency_ms", "-inf"),
        ("latency_ms", "86400001"),
        ("rate_per_second", "-1"),
        ("consumers", "0x10"),
        ("title", "null\x00byte"),
        ("peers", "everyone"),
    ],
)
def test_hostile_answers_are_field_errors_never_500(client: Client, field: str, value: str) -> None:
    response = client.post("/", form_data(**{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    assert Decision.objects.count() == 0
    preview = client.post("/preview", form_data(**{field: value}), headers={"HX-Request": "true"})
    assert preview.status_code == 200
    assert top_methods(preview.content.decode()) == []


@pytest.mark.parametrize("field", ["message_bytes", "file_bytes", "consumers"])
def test_enormous_numbers_are_refused_naming_the_field_never_a_500(
    client: Client, field: str
) -> None:
    huge = "9" * 400
    preview = client.post("/preview", form_data(**{field: huge}), headers={"HX-Request": "true"})
    assert preview.status_code == 200
    assert top_methods(preview.content.decode()) == []
    response = client.post("/", form_data(**{field: huge}))
    assert response.status_code == 400
    assert f'id="id_{field}_error"' in response.content.decode()
    api = client.post(
        "/api/recommendations",
        data=f'{{"interaction": "streaming", "{field}": {huge}}}',
        content_type="application/json",
    )
    assert api.status_code == 422, api.content
    assert field in api.json()["errors"]
    assert Decision.objects.count() == 0


@pytest.mark.parametrize("path", ["/", "/knowledge", "/accounts/login", "/accounts/signup"])
def test_page_titles_are_plain_text(path: str) -> None:
    html = Client().get(path).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title is not None
    assert "<" not in title.group(1) and len(title.group(1)) < 120


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_checks_answer_head_as_load_balancers_send_it(path: str) -> None:
    get, head = Client().get(path), Client().head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert Client().post(path).status_code == 405


def _live_errors(html: str) -> dict[str, str]:
    """The out-of-band error boxes of a preview answer: field name -> their text."""
    boxes = re.findall(
        r'<div class="field-errors" id="errors-(\w+)" hx-swap-oob="true">(.*?)</div>', html, re.S
    )
    return {name: unescape(re.sub(r"<[^>]+>", "", body)).strip() for name, body in boxes}


def test_live_preview_puts_each_error_beside_its_field_and_clears_the_rest(
    client: Client,
) -> None:
    page = client.get("/").content.decode()
    for name in FIELDS:  # every question has the box the preview refills
        assert f'id="errors-{name}"' in page
    assert "hx-swap-oob" not in page

    bad = client.post("/preview", form_data(consumers="0"), headers={"HX-Request": "true"})
    errors = _live_errors(bad.content.decode())
    assert set(errors) == set(FIELDS)  # one box per question: the empty ones clear old errors
    assert errors["consumers"] == "got 0; accepted: a whole number >= 1 and <= 1,000,000,000"
    assert all(text == "" for name, text in errors.items() if name != "consumers")

    fixed = client.post("/preview", form_data(consumers="3"), headers={"HX-Request": "true"})
    assert set(_live_errors(fixed.content.decode()).values()) == {""}
    # A client without htmx gets the partial alone, no out-of-band boxes.
    assert "hx-swap-oob" not in client.post("/preview", form_data()).content.decode()


def test_a_server_error_gets_our_page_not_djangos_bare_one() -> None:
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert re.search(r"/static/css/app\.[0-9a-f]{12}\.css", html)


def test_live_preview_asks_for_the_interaction_instead_of_flagging_it_until_chosen(
    client: Client,
) -> None:
    started = client.post("/preview", {"title": "Orders"}, headers={"HX-Request": "true"})
    html = started.content.decode()
    assert "Choose how the two sides interact" in html
    assert "need fixing" not in html
    assert set(_live_errors(html).values()) == {""}
    # Other answers that are wrong are still named, the missing interaction is not.
    wrong = client.post("/preview", {"consumers": "0"}, headers={"HX-Request": "true"})
    errors = _live_errors(wrong.content.decode())
    assert errors["consumers"] and errors["interaction"] == ""
    assert "How do the two sides interact?" not in wrong.content.decode()
    # Submitting still reports it as required, beside the question.
    submitted = client.post("/", {"title": "Orders"})
    assert submitted.status_code == 400
    assert 'id="id_interaction_error"' in submitted.content.decode()
