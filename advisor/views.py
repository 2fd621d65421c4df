"""Pages: the questionnaire, the live preview, decisions, share links, accounts.

Views stay thin: they read forms and call :mod:`advisor.services` and
:mod:`advisor.selectors`. Share pages render only what a decision stored; they
never run the engine again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from django_htmx.middleware import HtmxDetails

from advisor import presenting, selectors, services
from advisor.forms import GROUPS, QUESTIONS, ExpiryForm, UseCaseForm, usecase_initial
from advisor.knowledge import KNOWLEDGE, describe
from advisor.madr import answer_text, decision_to_madr
from advisor.models import Decision, ShareLink
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


def _page_context(result: Any) -> dict[str, Any]:
    """What the recommendation templates need, from the stored result only."""
    return presenting.page_context(result)


# --- the questionnaire ---------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    """GET: the questionnaire (optionally prefilled from the gallery). POST: a decision."""
    if request.method == "POST":
        form = UseCaseForm(request.POST)
        if form.is_valid() and form.usecase is not None:
            owner = request.user if request.user.is_authenticated else None
            decision, token = services.decision_create(usecase=form.usecase, owner=owner)
            _remember(request, decision)
            response = redirect("decision", decision_id=decision.pk)
            _set_token_cookie(response, decision, token)
            return response
        return _questionnaire(request, form, status=400)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    example_name = request.GET.get("example")
    example = None
    if example_name is not None:
        example = selectors.example_get(name=example_name)
        if example is None:
            raise Http404("no such example")
    document = example.usecase.model_dump(mode="json") if example else None
    form = UseCaseForm(initial=usecase_initial(document))
    return _questionnaire(request, form, example=example)


def _questionnaire(
    request: HttpRequest, form: UseCaseForm, status: int = 200, example: Any = None
) -> HttpResponse:
    groups = [
        {
            "group": group,
            "basic": [form[name] for name in group.basic],
            "advanced": [form[name] for name in group.advanced],
            "advanced_open": form.advanced_open(group),
        }
        for group in GROUPS
    ]
    # The preview is part of the full page too, so the page without JavaScript is
    # complete; an empty questionnaire has nothing to rank yet.
    preview = _preview_context(form) if form.is_bound or example is not None else None
    context = {
        "form": form,
        "groups": groups,
        "methods": KNOWLEDGE.methods.items(),
        "examples": selectors.example_list(),
        "example": example,
        "preview": preview,
    }
    return render(request, "advisor/questionnaire.html", context, status=status)


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


@require_safe
def decision_detail(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = selectors.decision_get_for_visitor(
        user=request.user, decision_id=decision_id, session_decision_ids=_session_ids(request)
    )
    if decision is None:
        raise Http404("no such decision")
    token = _fresh_token(request, decision)
    is_owner = request.user.is_authenticated and decision.owner_id == request.user.pk
    context = {
        "decision": decision,
        "usecase_rows": _usecase_rows(decision.usecase),
        "share_url": request.build_absolute_uri(services.share_url(token)) if token else None,
        "share_links": list(decision.share_links.all()) if is_owner else [],
        "is_owner": is_owner,
        "expiry_form": ExpiryForm(initial={"expires_in": "never"}),
        **_page_context(decision.result),
    }
    return render(request, "advisor/decision.html", context)


def _usecase_rows(usecase: Any) -> list[dict[str, Any]]:
    if not isinstance(usecase, dict):
        return []
    return [
        {"field": name, "label": q.label, "value": answer_text(name, usecase.get(name))}
        for name, q in QUESTIONS.items()
        if name in usecase and name not in {"version"}
    ]


def _share_or_404(share_id: int) -> ShareLink:
    # Ownership is checked by the service, which answers PermissionDenied (403).
    share = ShareLink.objects.select_related("decision").filter(pk=share_id).first()
    if share is None:
        raise Http404("no such share link")
    return share


def _back(request: HttpRequest, share: ShareLink) -> HttpResponse:
    if request.POST.get("next") == "decisions":
        return redirect("decisions")
    return redirect("decision", decision_id=share.decision_id)


@login_required
@require_POST
def share_revoke(request: HttpRequest, share_id: int) -> HttpResponse:
    share = _share_or_404(share_id)
    services.share_link_revoke(share=share, user=request.user)
    return _back(request, share)


@login_required
@require_POST
def share_expiry(request: HttpRequest, share_id: int) -> HttpResponse:
    share = _share_or_404(share_id)
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
    decision = selectors.decision_get_for_user(user=request.user, decision_id=decision_id)
    if decision is None:
        raise Http404("no such decision")
    _, token = services.share_link_create_for_owner(decision=decision, user=request.user)
    response = redirect("decision", decision_id=decision.pk)
    _set_token_cookie(response, decision, token)
    return response


@login_required
@require_safe
def decision_list(request: HttpRequest) -> HttpResponse:
    decisions = selectors.decision_list_for_user(user=request.user)
    context = {"decisions": decisions, "expiry_form": ExpiryForm(initial={"expires_in": "never"})}
    return render(request, "advisor/decisions.html", context)


# --- share pages ---------------------------------------------------------------------


def _share_headers(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: never pass it on as a referrer, never let it be indexed.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    return response


def share_view(view: Callable[[HttpRequest, ShareLink, str], HttpResponse]) -> Callable[..., Any]:
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
        share = selectors.share_link_get_active(token=token)
        if share is None:
            return _share_headers(render(request, "advisor/share_404.html", status=404))
        return _share_headers(view(request, share, token))

    return wrapped


@share_view
def share_page(request: HttpRequest, share: ShareLink, token: str) -> HttpResponse:
    """The frozen recommendation, read-only, for anyone holding the link."""
    decision = share.decision
    context = {
        "decision": decision,
        "share": share,
        "usecase_rows": _usecase_rows(decision.usecase),
        "token": token,
        **_page_context(decision.result),
    }
    return render(request, "advisor/share.html", context)


@share_view
def share_madr(request: HttpRequest, share: ShareLink, token: str) -> HttpResponse:
    # The record, then the evidence of the decision's probe runs (probes.madr).
    record = decision_to_madr(share.decision) + evidence_markdown(share.decision)
    response = HttpResponse(record, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="decision.md"'
    return response


@share_view
def share_json(request: HttpRequest, share: ShareLink, token: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps(share.decision.result, indent=2, ensure_ascii=False) + "\n",
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="recommendation.json"'
    return response


# --- accounts ------------------------------------------------------------------------


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("decisions")
    form: UserCreationForm[Any] = UserCreationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            user = form.save()
            login(request, user)
            _claim_session_decisions(request)
            return redirect("decisions")
        return render(request, "registration/signup.html", {"form": form}, status=400)
    return render(request, "registration/signup.html", {"form": form})


class SwitchboardLoginView(LoginView):
    """Django's login, plus: decisions made before logging in join the account."""

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
