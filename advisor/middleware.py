"""One Content-Security-Policy on every answer the app gives.

The policy is fixed and needs no nonces: no page has an inline script, an inline
style or an event handler attribute (htmx is configured in base.html not to
inject its indicator styles, plotly's styles come from a static file), so a
dozen lines here serve better than a library with per-view policies.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
