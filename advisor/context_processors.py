"""Template context every page needs."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest

# Pages a login should not return to: the account pages themselves, and share
# pages, whose token would otherwise travel on in the login page's address.
_NO_RETURN = ("/accounts/", "/s/")


def login_next(request: HttpRequest) -> dict[str, str]:
    """``?next=<this page>`` for the "Log in" and "Sign up" links, so logging in
    returns the person to the page they were on."""
    path = request.get_full_path()
    if request.method != "GET" or path == "/" or path.startswith(_NO_RETURN):
        return {"login_next": ""}
    return {"login_next": "?" + urlencode({"next": path})}
