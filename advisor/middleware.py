"""One Content-Security-Policy on every answer the app gives.

The policy is fixed and needs no nonces: no page has an inline script, an inline
style or an event handler attribute (htmx is configured in base.html not to
inject its indicator styles, plotly's styles come from a static file), so a
dozen lines here serve better than a library with per-view policies.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.gzip import GZipMiddleware

POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # A view that sets a stricter policy of its own keeps it.
        if HEADER not in response:
            response[HEADER] = POLICY
        return response


class PublicPageGZipMiddleware(GZipMiddleware):
    """Django's GZipMiddleware, for the pages whose body holds no secret.

    BREACH recovers a secret from the size of compressed answers that also reflect
    text the attacker chose. So only these are compressed: the share page, the
    questionnaire and the knowledge page (``PUBLIC_PAGES``), answered with HTML to a
    GET from a visitor who is not logged in and sends no API token. Their bodies are
    the same for every such visitor (the share page and the questionnaire are served
    from cached HTML) but for the questionnaire's CSRF token, which Django masks
    afresh in every answer so that compression reveals nothing about it; and
    GZipMiddleware pads each answer with random bytes (Heal The Breach). Nothing else
    is compressed: an owner's pages show share links (their tokens are secrets) next
    to text from the address (the login link's ``next``), and API answers carry what
    the caller sent. Static files are compressed ahead, by WhiteNoise.
    """

    PUBLIC_PAGES = frozenset({"share", "home", "knowledge"})

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not self._public(request, response):
            return response
        return super().process_response(request, response)

    def _public(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        match = getattr(request, "resolver_match", None)
        user = getattr(request, "user", None)
        return (
            request.method in ("GET", "HEAD")
            and match is not None
            and match.url_name in self.PUBLIC_PAGES
            and not (user is not None and user.is_authenticated)
            and "HTTP_AUTHORIZATION" not in request.META
            and response.get("Content-Type", "").startswith("text/html")
        )
