"""Pages: the questionnaire, the live preview, decisions, share links, accounts.

Views stay thin: they read forms and call :mod:`advisor.services` and
:mod:`advisor.selectors`. Share pages render only what a decision stored; they
never run the engine again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.middleware import HtmxDetails

from advisor import presenting, ratelimit, selectors, services
from advisor.forms import (
    GROUPS,
    QUANTITY_FIELDS,
    QUESTIONS,
    UNIT_SUFFIX,
    CompareForm,
    ExpiryForm,
    UseCaseForm,
    quantity_text,
    usecase_initial,
)
from advisor.knowledge import KNOWLEDGE, describe
from advisor.madr import answer_text, decision_to_madr
from advisor.models import Decision, ShareLink
from advisor.recommendation import points_text_of
from advisor.vocabulary import MAX_TITLE_CHARS
from probes.madr import evidence_markdown

# Decisions an anonymous visitor made, by id, so they can reopen them and keep
# them when they sign up. Ids only: the share tokens are never put in the session.
SESSION_DECISIONS = "decision_ids"
# A fresh share token travels to the decision page in a signed cookie scoped to
# that page: shown to its creator for an hour, never stored on the server.
TOKEN_COOKIE = "sb_share_token"
TOKEN_COOKIE_AGE = 3600
TOKEN_COOKIE_SALT = "advisor.share-token"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _session_ids(request: HttpRequest) -> list[int]:
    ids = request.session.get(SESSION_DECISIONS, [])
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


def _remember(request: HttpRequest, decision: Decision) -> None:
    ids = _session_ids(request)
    # Keep the session small: the last 50 decisions are plenty to reopen.
    request.session[SESSION_DECISIONS] = [*ids, decision.pk][-50:]


def _claim_session_decisions(request: HttpRequest) -> None:
    if request.user.is_authenticated:
        services.decision_claim(decision_ids=_session_ids(request), user=request.user)


def _page_context(decision: Decision) -> dict[str, Any]:
    """What the recommendation templates need, from the stored decision only: the
    typed recommendation (advisor.presenting) with the charts stored at creation."""
    # The charts stored with the decision; presenting builds them only for a decision
    # stored before charts were kept with it (figures None).
    context = presenting.page_context(decision.result, decision.figures)
    context.update(decision=decision, usecase_rows=_usecase_rows(decision))
    return context


# Templates change with a deploy while a shared cache (Redis) outlives it: the
# fragment key carries a digest of the templates, so a deploy never serves old HTML.
_TEMPLATES_DIGEST = hashlib.sha256(
    b"".join(
        path.read_bytes() for path in sorted((settings.BASE_DIR / "templates").rglob("*.html"))
    )
).hexdigest()[:12]
FRAGMENT_TIMEOUT = 7 * 24 * 3600


def _decision_key(decision: Decision) -> str:
    # The time of its last change too: an edit in the admin, or a test database (or a
    # restored backup) giving a number that was used before to another decision.
    return f"{decision.pk}:{decision.revision}:{decision.updated_at.timestamp():.6f}"


def recommendation_html(decision: Decision) -> str:
    """The rendered recommendation of a decision, rendered once per decision revision.

    What a decision shows is frozen when it is made, so its page fragment is too:
    the owner's page and every share page of it reuse the cached HTML.
    """
    key = f"advisor:rec:{_TEMPLATES_DIGEST}:{_decision_key(decision)}"
    html = cache.get(key)
    if html is None:
        if decision.get_deferred_fields():
            decision.refresh_from_db()
        html = render_to_string("advisor/_recommendation.html", _page_context(decision))
        cache.set(key, html, FRAGMENT_TIMEOUT)
    return mark_safe(html)


# --- the questionnaire ---------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """What the questionnaire is for: a new decision, an edit, or a duplicate."""

    action: str
    heading: str
    intro: str
    submit: str
    source: Decision | None = None
    # A duplicate posts to "/" like a new decision; the form carries the original's
    # id, so a refused submission still says what it duplicates.
    duplicate: bool = False


NEW = Mode(
    action="/",
    heading="How should your servers talk?",
    intro=(
        "Answer in plain words; only the first question is required. The best three "
        "methods update as you go, and submitting gives the full, explained ranking "
        "with a link to share."
    ),
    submit="Get the recommendation",
)


def _edit_mode(decision: Decision) -> Mode:
    return Mode(
        action=reverse("decision_edit", args=[decision.pk]),
        heading=f"Edit: {decision.heading or 'Untitled use case'}",
        intro=(
            f"Change any answer and save: that makes version {decision.revision + 1}, with "
            f"a link of its own. Version {decision.revision} and its links stay as they are."
        ),
        submit=f"Save as version {decision.revision + 1}",
        source=decision,
    )


def _duplicate_mode(decision: Decision) -> Mode:
    return Mode(
        action=reverse("home"),
        heading=f"Duplicate: {decision.heading or 'Untitled use case'}",
        intro=(
            "The answers of that decision, to change as you like: saving makes a new, "
            "separate decision. The original stays as it is."
        ),
        submit="Get the recommendation",
        source=decision,
        duplicate=True,
    )


def _submitted_mode(request: HttpRequest) -> Mode:
    """The mode a refused submission to "/" is shown back in: a duplicate's, when the
    form names a decision this visitor may see (anything else: a new decision)."""
    raw = request.POST.get("duplicate_of", "")
    if not raw.isdigit() or len(raw) > 18:
        return NEW
    source = selectors.decision_get_for_visitor(
        user=request.user, decision_id=int(raw), session_decision_ids=_session_ids(request)
    )
    return NEW if source is None else _duplicate_mode(source)


def home(request: HttpRequest) -> HttpResponse:
    """GET: the questionnaire (optionally prefilled from the gallery). POST: a decision."""
    if request.method == "POST":
        form = UseCaseForm(request.POST)
        if form.is_valid() and form.usecase is not None:
            owner = request.user if request.user.is_authenticated else None
            if owner is None and (limited := ratelimit.anonymous_recommendation(request)):
                return ratelimit.too_many_requests(limited)
            decision, token = services.decision_create(
                usecase=form.usecase, owner=owner, units=form.units
            )
            return _created(request, decision, token)
        return _questionnaire(request, form, status=400, mode=_submitted_mode(request))
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    example_name = request.GET.get("example")
    example = None
    if example_name is not None:
        example = selectors.example_get(name=example_name)
        if example is None:
            raise Http404("no such example")
    if request.user.is_authenticated or set(request.GET) - {"example"}:
        return _questionnaire(request, None, example=example)
    # Not logged in, the page is the same for everyone but for the CSRF token: it is
    # rendered once with a stand-in and each visitor gets their own token put in.
    key = f"advisor:home:{_TEMPLATES_DIGEST}:{KNOWLEDGE.full_version}:{example_name or ''}"
    html = cache.get(key)
    if html is None:
        page = _questionnaire(request, None, example=example, csrf_token=CSRF_STAND_IN)
        html = page.content.decode()
        cache.set(key, html, FRAGMENT_TIMEOUT)
    return HttpResponse(html.replace(CSRF_STAND_IN, get_token(request)))


# Letters only, like a real (masked) token, so it survives the template's escaping.
CSRF_STAND_IN = "csrfstandin" + "x" * 53


def _created(request: HttpRequest, decision: Decision, token: str) -> HttpResponse:
    _remember(request, decision)
    response = redirect("decision", decision_id=decision.pk)
    _set_token_cookie(response, decision, token)
    return response


def _questionnaire(
    request: HttpRequest,
    form: UseCaseForm | None,
    status: int = 200,
    example: Any = None,
    mode: Mode = NEW,
    initial: dict[str, Any] | None = None,
    csrf_token: str | None = None,
) -> HttpResponse:
    """The questionnaire page. An unanswered form (blank, an example, a decision's
    answers) is the same HTML for everyone, so its questions and preview are rendered
    once and cached; only a submitted form with its own answers is rendered each time."""
    context: dict[str, Any] = {
        "mode": mode,
        "examples": selectors.example_list() if mode.source is None else (),
        "example": example,
        "methods": KNOWLEDGE.methods.items(),
        "kb_version": KNOWLEDGE.full_version,
    }
    if csrf_token is not None:
        context["csrf_token"] = csrf_token  # over the context processor's own
    if form is not None:
        context["parts"] = _questionnaire_parts(form)
        context["has_errors"] = bool(form.errors)
        context["error_fields"] = [(f.name, f.label) for f in form if f.errors]
        context["non_field_errors"] = form.non_field_errors()
    else:
        if example is not None:
            document: dict[str, Any] | None = example.usecase.model_dump(mode="json")
            key = f"example:{example.name}"
        elif mode.source is not None:
            document = initial
            # A decision's answers (and their units) never change: keyed by decision.
            key = f"{mode.action}:{_decision_key(mode.source)}"
        else:
            document, key = None, "blank"
        cache_key = f"advisor:questions:{_TEMPLATES_DIGEST}:{KNOWLEDGE.full_version}:{key}"
        parts = cache.get(cache_key)
        if parts is None:
            units = mode.source.units if mode.source is not None else None
            blank = UseCaseForm(initial=usecase_initial(document, units))
            parts = _questionnaire_parts(blank, preview=document is not None)
            cache.set(cache_key, parts, FRAGMENT_TIMEOUT)
        context["parts"] = {k: mark_safe(v) for k, v in parts.items()}
        context.update(has_errors=False, error_fields=[], non_field_errors=[])
    return render(request, "advisor/questionnaire.html", context, status=status)


def _questionnaire_parts(form: UseCaseForm, *, preview: bool | None = None) -> dict[str, str]:
    """The questions and the live preview, rendered (the page around them holds the
    CSRF token, so these two parts are the same for everyone with the same answers)."""
    groups = [
        {
            "group": group,
            "basic": [(form[name], form.unit_field(name)) for name in group.basic],
            "advanced": [(form[name], form.unit_field(name)) for name in group.advanced],
            "advanced_open": form.advanced_open(group),
        }
        for group in GROUPS
    ]
    # The preview is part of the full page too, so the page without JavaScript is
    # complete; an empty questionnaire has nothing to rank yet.
    show_preview = form.is_bound if preview is None else preview
    context = {"preview": _preview_context(form) if show_preview else None}
    return {
        "questions": render_to_string("advisor/_questions.html", {"groups": groups}),
        "preview": render_to_string("partials/preview.html", context),
    }


def _preview_context(form: UseCaseForm) -> dict[str, Any]:
    """The top three for the answers so far, or the problems that stop a ranking."""
    if not form.is_bound:
        # A prefilled (example) form: rank its initial answers.
        bound = UseCaseForm(_initial_as_data(form.initial))
        return _preview_context(bound)
    if form.is_valid() and form.usecase is not None:
        return presenting.preview_context(form.usecase)
    errors = {
        _label(form, name): " ".join(str(m) for m in messages)
        for name, messages in form.errors.items()
        if name not in _not_yet_answered(form)
    }
    return {"top": [], "warnings": [], "errors": errors}


def _not_yet_answered(form: UseCaseForm) -> set[str]:
    """The one required question, while it has no answer at all.

    Someone who starts with the title has not got the interaction wrong, only not
    yet chosen it: the live preview asks for it instead of flagging it in red.
    A submitted form still reports it as required, beside the question.
    """
    return set() if form.data.get("interaction") else {"interaction"}


def _label(form: UseCaseForm, name: str) -> str:
    return str(form.fields[name].label) if name in form.fields else "Answers"


def _initial_as_data(initial: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in initial.items():
        if value is False:
            continue  # an unticked checkbox is absent from a submitted form
        data[key] = "on" if value is True else ("" if value is None else str(value))
    return data


@require_POST
def preview(request: HtmxHttpRequest) -> HttpResponse:
    """The live top three: only the partial, for htmx as the answers change."""
    form = UseCaseForm(request.POST)
    context: dict[str, Any] = {"preview": _preview_context(form)}
    if request.htmx:
        # Every field's errors, out of band, so each shows (or clears) beside its field.
        quiet = _not_yet_answered(form)
        context["field_errors"] = [
            {"name": name, "errors": "" if name in quiet else form[name].errors}
            for name in form.fields
            if not name.endswith(UNIT_SUFFIX)
        ]
    # htmx only swaps 2xx answers in; a plain client learns the answers were invalid.
    status = 200 if form.is_valid() or request.htmx else 400
    return render(request, "partials/preview.html", context, status=status)


# --- decisions -----------------------------------------------------------------------


def _set_token_cookie(response: HttpResponse, decision: Decision, token: str) -> None:
    response.set_signed_cookie(
        TOKEN_COOKIE,
        token,
        salt=TOKEN_COOKIE_SALT + str(decision.pk),
        max_age=TOKEN_COOKIE_AGE,
        path=f"/d/{decision.pk}",
        httponly=True,
        # It carries a working share token: HTTPS-only wherever the session is.
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",
    )


def _fresh_token(request: HttpRequest, decision: Decision) -> str | None:
    token = request.get_signed_cookie(
        TOKEN_COOKIE, default=None, salt=TOKEN_COOKIE_SALT + str(decision.pk)
    )
    # Only a token that still opens this decision is worth showing.
    share = selectors.share_link_get_active(token=token) if token else None
    return token if share is not None and share.decision_id == decision.pk else None


def _visible_decision(request: HttpRequest, decision_id: int) -> Decision:
    """The decision for its owner or the visitor whose session made it; 404 for anyone else."""
    decision = selectors.decision_get_for_visitor(
        user=request.user, decision_id=decision_id, session_decision_ids=_session_ids(request)
    )
    if decision is None:
        raise Http404("no such decision")
    return decision


def _owned_decision(request: HttpRequest, decision_id: int) -> Decision:
    """The user's own decision; another user's answers 404 exactly as a missing one."""
    decision = selectors.decision_get_for_user(user=request.user, decision_id=decision_id)
    if decision is None:
        raise Http404("no such decision")
    return decision


@require_safe
def decision_detail(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = _visible_decision(request, decision_id)
    token = _fresh_token(request, decision)
    is_owner = request.user.is_authenticated and decision.owner_id == request.user.pk
    others = (
        list(selectors.decision_choices_for_user(user=request.user).exclude(pk=decision.pk)[:100])
        if is_owner
        else []
    )
    context = {
        "decision": decision,
        "share_url": request.build_absolute_uri(services.share_url(token)) if token else None,
        "share_links": list(decision.share_links.all()) if is_owner else [],
        "is_owner": is_owner,
        "expiry_form": ExpiryForm(),
        "previous": decision.previous if decision.previous_id else None,
        "revisions": list(decision.revisions.all()) if is_owner else [],
        "others": others,
        "recommendation_html": recommendation_html(decision),
    }
    return render(request, "advisor/decision.html", context)


def _usecase_rows(decision: Decision) -> list[dict[str, Any]]:
    usecase = decision.usecase
    if not isinstance(usecase, dict):
        return []
    units = decision.units if isinstance(decision.units, dict) else {}
    return [
        {"field": name, "label": q.label, "value": _answer(name, usecase.get(name), units)}
        for name, q in QUESTIONS.items()
        if name in usecase and name not in {"version"}
    ]


def _answer(name: str, value: Any, units: dict[str, Any]) -> str:
    symbol = units.get(name)
    if name in QUANTITY_FIELDS and isinstance(symbol, str):
        return quantity_text(name, value, symbol)
    return answer_text(name, value)


@require_http_methods(["GET", "HEAD", "POST"])
def decision_edit(request: HttpRequest, decision_id: int) -> HttpResponse:
    """The questionnaire with a decision's answers; saving makes its next revision."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    decision = _owned_decision(request, decision_id)
    mode = _edit_mode(decision)
    if request.method == "POST":
        form = UseCaseForm(request.POST)
        if form.is_valid() and form.usecase is not None:
            revised, token = services.decision_revise(
                decision=decision, usecase=form.usecase, user=request.user, units=form.units
            )
            return _created(request, revised, token)
        return _questionnaire(request, form, status=400, mode=mode)
    return _questionnaire(request, None, mode=mode, initial=decision.usecase)


@require_safe
def decision_duplicate(request: HttpRequest, decision_id: int) -> HttpResponse:
    """The questionnaire with a copy of a decision's answers, to change one and save anew."""
    decision = _visible_decision(request, decision_id)
    answers = dict(decision.usecase) if isinstance(decision.usecase, dict) else {}
    title = decision.heading or "Untitled use case"
    answers["title"] = (title[: MAX_TITLE_CHARS - 7] + " (copy)").strip()
    return _questionnaire(request, None, mode=_duplicate_mode(decision), initial=answers)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def decision_delete(request: HttpRequest, decision_id: int) -> HttpResponse:
    """GET: what deleting would take away, and a button. POST: delete it."""
    decision = _owned_decision(request, decision_id)
    if request.method == "POST":
        heading = decision.heading or "Untitled use case"
        services.decision_delete(decision=decision, user=request.user)
        messages.success(request, f"Deleted “{heading}”; its share links no longer open.")
        return redirect("decisions")
    links = list(decision.share_links.all())
    context = {
        "decision": decision,
        "active_links": [link for link in links if link.state == "active"],
    }
    return render(request, "advisor/decision_delete.html", context)


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def export_name(decision: Decision, extension: str) -> str:
    """A file name from the title and the date: orders-to-the-warehouse-2026-12-01.md."""
    slug = slugify(decision.heading)[:60].strip("-") or "decision"
    return f"{slug}-{decision.created_at:%Y-%m-%d}.{extension}"


def _madr(decision: Decision) -> HttpResponse:
    # The record, then the evidence of the decision's probe runs (probes.madr).
    record = decision_to_madr(decision) + evidence_markdown(decision)
    return _download(record, "text/markdown; charset=utf-8", export_name(decision, "md"))


def _json(decision: Decision) -> HttpResponse:
    body = json.dumps(decision.result, indent=2, ensure_ascii=False) + "\n"
    return _download(body, "application/json; charset=utf-8", export_name(decision, "json"))


@require_safe
def decision_madr(request: HttpRequest, decision_id: int) -> HttpResponse:
    return _madr(_visible_decision(request, decision_id))


@require_safe
def decision_json(request: HttpRequest, decision_id: int) -> HttpResponse:
    return _json(_visible_decision(request, decision_id))


@login_required
@require_safe
def decision_compare(request: HttpRequest) -> HttpResponse:
    """Two of the user's decisions side by side: the answers that differ, and the ranking."""
    form = CompareForm(request.GET, user=request.user)
    if not form.is_valid():
        context = {"form": form, "comparison": None}
        return render(request, "advisor/compare.html", context, status=400)
    a, b = form.cleaned_data["a"], form.cleaned_data["b"]
    return render(request, "advisor/compare.html", {"form": form, "comparison": _comparison(a, b)})


def _comparison(a: Decision, b: Decision) -> dict[str, Any]:
    answers_a = a.usecase if isinstance(a.usecase, dict) else {}
    answers_b = b.usecase if isinstance(b.usecase, dict) else {}
    units_a = a.units if isinstance(a.units, dict) else {}
    units_b = b.units if isinstance(b.units, dict) else {}
    differ: list[dict[str, Any]] = []
    same: list[dict[str, Any]] = []
    for name, question in QUESTIONS.items():
        if name == "version":
            continue
        value_a, value_b = answers_a.get(name), answers_b.get(name)
        row = {
            "field": name,
            "label": question.label,
            "a": _answer(name, value_a, units_a),
            "b": _answer(name, value_b, units_b),
        }
        (same if value_a == value_b else differ).append(row)
    rank_a = {r.get("method"): (i + 1, r) for i, r in enumerate(a.ranking)}
    rank_b = {r.get("method"): (i + 1, r) for i, r in enumerate(b.ranking)}
    methods = [r.get("method") for r in b.ranking] + [
        m for m in rank_a if m not in {r.get("method") for r in b.ranking}
    ]
    ranking = []
    for method in methods:
        pos_a, item_a = rank_a.get(method, (None, {}))
        pos_b, item_b = rank_b.get(method, (None, {}))
        item = item_b or item_a
        moved = pos_a - pos_b if pos_a is not None and pos_b is not None else 0
        ranking.append(
            {
                "method": method,
                "label": item.get("label") or method,
                "a": _ranked(pos_a, item_a),
                "b": _ranked(pos_b, item_b),
                "moved": moved,
                "moved_abs": abs(moved),
                "changed": moved != 0
                or item_a.get("implementation") != item_b.get("implementation")
                or bool(item_a.get("excluded")) != bool(item_b.get("excluded")),
            }
        )
    return {
        "a": a,
        "b": b,
        "winner_a": a.winner,
        "winner_b": b.winner,
        "same_winner": (a.winner or {}).get("method") == (b.winner or {}).get("method"),
        "differ": differ,
        "same": same,
        "ranking": ranking,
    }


def _ranked(position: int | None, item: dict[str, Any]) -> dict[str, Any] | None:
    if position is None:
        return None
    return {
        "position": position,
        "points": points_text_of(item),  # "ruled out" for a method ruled out
        "implementation": item.get("implementation"),
    }


def _owned_share(request: HttpRequest, share_id: int) -> ShareLink:
    # Another user's link answers exactly as a missing one: 404, never 403.
    share = selectors.share_link_get_for_user(user=request.user, share_id=share_id)
    if share is None:
        raise Http404("no such share link")
    return share


def _back(request: HttpRequest, share: ShareLink) -> HttpResponse:
    if request.POST.get("next") == "decisions":
        return redirect("decisions")
    return redirect("decision", decision_id=share.decision_id)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def share_revoke(request: HttpRequest, share_id: int) -> HttpResponse:
    """GET: confirm (revoking cannot be undone). POST: revoke."""
    share = _owned_share(request, share_id)
    if request.method == "POST":
        services.share_link_revoke(share=share, user=request.user)
        messages.success(request, "The link is revoked: it no longer opens anything.")
        return _back(request, share)
    context = {"share": share, "decision": share.decision, "next": request.GET.get("next", "")}
    return render(request, "advisor/share_revoke.html", context)


@login_required
@require_POST
def share_expiry(request: HttpRequest, share_id: int) -> HttpResponse:
    share = _owned_share(request, share_id)
    form = ExpiryForm(request.POST)
    if not form.is_valid():
        problems = " ".join(str(m) for m in form.errors.get("expires_in", ["is invalid"]))
        return HttpResponse(
            f"expires_in: {problems}\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    services.share_link_set_expiry(share=share, user=request.user, expires_at=form.expires_at())
    return _back(request, share)


@login_required
@require_POST
def share_create(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = _owned_decision(request, decision_id)
    _, token = services.share_link_create_for_owner(decision=decision, user=request.user)
    response = redirect("decision", decision_id=decision.pk)
    _set_token_cookie(response, decision, token)
    return response


@login_required
@require_safe
def decision_list(request: HttpRequest) -> HttpResponse:
    decisions = list(
        selectors.decision_list_for_user(user=request.user).defer("usecase", "figures")
    )
    context = {
        "decisions": decisions,
        "expiry_form": ExpiryForm(),
        "compare_form": CompareForm(user=request.user),
    }
    return render(request, "advisor/decisions.html", context)


# --- share pages ---------------------------------------------------------------------


def _share_headers(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: never pass it on as a referrer, never let it be indexed.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    return response


def share_view(
    view: Callable[[HttpRequest, selectors.LiveShare, str], HttpResponse],
) -> Callable[..., Any]:
    """GET/HEAD only (405 otherwise), one identical 404 for unknown, revoked and expired
    tokens, and the share headers on every answer, the 404 and the 405 included."""

    @csrf_exempt  # read-only: a POST must get 405, not a CSRF 403
    @functools.wraps(view)
    def wrapped(request: HttpRequest, token: str) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse(
                "Share links are read-only.\n",
                status=405,
                content_type="text/plain; charset=utf-8",
            )
            response["Allow"] = "GET, HEAD"
            return _share_headers(response)
        if limited := ratelimit.share_lookup(request):
            return _share_headers(ratelimit.too_many_requests(limited))
        live = selectors.share_link_find_live(token=token)
        if live is None:
            return _share_headers(render(request, "advisor/share_404.html", status=404))
        return _share_headers(view(request, live, token))

    return wrapped


@share_view
def share_page(request: HttpRequest, live: selectors.LiveShare, token: str) -> HttpResponse:
    """The frozen recommendation, read-only, for anyone holding the link.

    For a visitor who is not logged in the whole page depends only on the decision
    and the token, so it is rendered once and served from the cache afterwards; the
    link is still checked in the database on every request (revoking works at once).
    """
    if request.user.is_authenticated:
        return _share_page(request, live, token)  # the page names the user: not cached
    key = ":".join(
        (
            "advisor:share",
            _TEMPLATES_DIGEST,
            selectors.token_hash(token),  # never the token itself in a cache key
            str(live.decision_id),
            str(live.decision_revision),
            live.decision_updated,
        )
    )
    html = cache.get(key)
    if html is None:
        html = _share_page(request, live, token).content.decode()
        cache.set(key, html, FRAGMENT_TIMEOUT)
    return HttpResponse(html)


def _share_page(request: HttpRequest, live: selectors.LiveShare, token: str) -> HttpResponse:
    decision = Decision.objects.defer("result", "usecase", "figures").get(pk=live.decision_id)
    context = {
        "decision": decision,
        "token": token,
        "recommendation_html": recommendation_html(decision),
    }
    return render(request, "advisor/share.html", context)


@share_view
def share_madr(request: HttpRequest, live: selectors.LiveShare, token: str) -> HttpResponse:
    return _madr(Decision.objects.get(pk=live.decision_id))


@share_view
def share_json(request: HttpRequest, live: selectors.LiveShare, token: str) -> HttpResponse:
    return _json(Decision.objects.get(pk=live.decision_id))


# --- accounts ------------------------------------------------------------------------


def _next_url(request: HttpRequest) -> str | None:
    """Where the user was going (``next``), when it is a page of this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def signup(request: HttpRequest) -> HttpResponse:
    target = _next_url(request)
    if request.user.is_authenticated:
        return redirect(target or "decisions")
    form: UserCreationForm[Any] = UserCreationForm(request.POST or None)
    context = {"form": form, "next": target or ""}
    if request.method == "POST":
        if form.is_valid():
            user = form.save()
            login(request, user)
            _claim_session_decisions(request)
            return redirect(target or "decisions")
        return render(request, "registration/signup.html", context, status=400)
    return render(request, "registration/signup.html", context)


def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """The admin's login page, under the same login limits as the site's."""
    from django.contrib import admin

    if limited := ratelimit.login_attempt(request):
        return ratelimit.too_many_requests(limited)
    return admin.site.login(request, extra_context)


class SwitchboardLoginView(LoginView):
    """Django's login, plus: decisions made before logging in join the account, and
    attempts are limited per account and per address (429 with Retry-After)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if limited := ratelimit.login_attempt(request):
            return ratelimit.too_many_requests(limited)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        _claim_session_decisions(self.request)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


FACT_LABELS = {
    "delivery": "delivery",
    "push_pull": "push or pull",
    "browser": "browsers",
    "firewall": "firewalls",
    "latency_floor": "latency floor",
    "message_size": "message size",
    "ordering": "ordering",
    "decoupling": "decoupling",
    "contract": "contract",
    "operations": "operations",
    "security": "security",
}


@require_safe
def knowledge(request: HttpRequest) -> HttpResponse:
    """The knowledge base as a page: every method's facts, every rule, every source."""
    kb = KNOWLEDGE
    rules = [
        {
            "id": rule.id,
            "when": describe(rule.when),
            "text": rule.text,
            "source": rule.source,
            "effects": [
                {
                    "method": m,
                    "label": kb.methods[m].label,
                    "weight": e.weight,
                    "text": e.text or "",
                    "source": e.source or rule.source,
                }
                for m, e in rule.effects.items()
            ],
        }
        for rule in kb.rules
    ]
    context = {
        "kb": kb,
        "kb_version": kb.full_version,
        "methods": [
            (name, method, [(FACT_LABELS[f], fact) for f, fact in method.facts.items()])
            for name, method in kb.methods.items()
        ],
        "fit": [
            {
                "interaction": interaction,
                "text": row.text,
                "source": row.source,
                "weights": [row.effects[m].weight for m in kb.methods],
            }
            for interaction, row in kb.fit.items()
        ],
        "rules": rules,
        "exclusions": [(e, describe(e.when)) for e in kb.exclusions],
        "implementations": [
            (kb.methods[m].label, [(c, describe(c.when)) for c in choices])
            for m, choices in kb.implementations.items()
        ],
        "caveats": [(c, describe(c.when)) for c in kb.caveats],
        "warnings": [(w, describe(w.when)) for w in kb.warnings],
        "sources": sorted(kb.sources.items()),
    }
    return render(request, "advisor/knowledge.html", context)
