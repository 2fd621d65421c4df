"""Rate limits that hold across processes: counters in Django's cache.

One small mechanism for every limit in the product (logins, anonymous
recommendations, share-token lookups, probe runs per user and per
destination). Each limit is a fixed window counted with ``cache.add`` and
``cache.incr``, which Redis does atomically, so several web processes and
machines share one count when ``REDIS_URL`` is set. The embedded default
(local-memory cache) counts per process, which is exact for ``make run``'s
single web process.

``RATE_LIMIT_SCALE`` (a setting, from the environment) multiplies every
limit: benchmarks raise it instead of changing code; 0 turns limits off.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits per ``window_s`` seconds for one key."""

    name: str
    count: int
    window_s: int


class RateLimited(Exception):
    """Raised by :func:`check`; ``retry_after`` is whole seconds until the window ends."""

    def __init__(self, limit: Limit, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"{limit.name}: too many requests; retry after {retry_after} s")


def _scale() -> float:
    return float(getattr(settings, "RATE_LIMIT_SCALE", 1.0))


def _key(limit: Limit, subject: str, window: int) -> str:
    # Subjects are user ids, addresses or token hashes; hashed so no raw token or
    # address ends up as a cache key, and keys stay short.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"rl:{limit.name}:{digest}:{window}"


def hit(limit: Limit, subject: str, *, now: float | None = None) -> int | None:
    """Count one hit; return the seconds to wait when it is over the limit, else None.

    A cache that fails (down, hung past its timeout) lets the request through and
    logs it: a limit must not take the site down with the cache.
    """
    scale = _scale()
    if scale <= 0:
        return None
    allowed = max(1, math.floor(limit.count * scale))
    now = time.time() if now is None else now
    window = int(now // limit.window_s)
    key = _key(limit, subject, window)
    try:
        # add() creates the counter only if absent, so concurrent first hits agree.
        cache.add(key, 0, timeout=limit.window_s + 1)
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: this hit starts the window
        cache.set(key, 1, timeout=limit.window_s + 1)
        count = 1
    except Exception:  # any cache failure: fail open, loudly
        log.warning("rate limit %s not counted: the cache failed", limit.name, exc_info=True)
        return None
    if count <= allowed:
        return None
    return max(1, math.ceil((window + 1) * limit.window_s - now))


def check(limit: Limit, subject: str) -> None:
    """:func:`hit`, raising :class:`RateLimited` when over the limit."""
    retry_after = hit(limit, subject)
    if retry_after is not None:
        raise RateLimited(limit, retry_after)


def _trusted(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def client_address(request: HttpRequest) -> str:
    """The address a request came from, for counting.

    ``REMOTE_ADDR``, unless it is one of ``TRUSTED_PROXIES`` (settings, from
    ``DJANGO_TRUSTED_PROXIES``: the TLS proxy's addresses): then the last address in
    ``X-Forwarded-For`` that is not a trusted proxy, which is the one the nearest
    proxy saw. Anything a client writes further left is never believed, and without
    trusted proxies the header is ignored altogether.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "unknown")
    proxies: list[str] = list(getattr(settings, "TRUSTED_PROXIES", []))
    if not proxies or not _trusted(remote, proxies):
        return remote
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _trusted(hop, proxies):
            return hop
    return remote


def retry_message(exc: RateLimited) -> str:
    return f"Too many requests: try again in {exc.retry_after} s."


def too_many_requests(exc: RateLimited, *, json: bool = False) -> HttpResponse:
    """A 429 answer with ``Retry-After``, as JSON for the API or plain text for pages."""
    message = retry_message(exc)
    response: HttpResponse
    if json:
        response = JsonResponse({"detail": message, "retry_after": exc.retry_after}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(exc.retry_after)
    return response


# --- the web app's limits ---------------------------------------------------------
# Every attempt counts (right or wrong): a person logs in a few times an hour, a
# guesser thousands. The account's limit holds whatever address guesses (a botnet);
# the address's limit holds whatever accounts one address tries (spraying).
LOGIN_PER_ACCOUNT = Limit("login-account", 10, 900)
LOGIN_PER_ADDRESS = Limit("login-address", 30, 900)
# Recommendations stored without an account (the questionnaire and the API).
ANONYMOUS_RECOMMENDATIONS = Limit("recommendations-anonymous", 30, 3600)
# Share links opened, found or not (tokens are 256-bit: this bounds scraping and
# guessing alike, and leaves room for a team behind one address).
SHARE_LOOKUPS = Limit("share-lookups", 120, 60)


def _over(*hits: tuple[Limit, str]) -> RateLimited | None:
    """Count a hit on every limit; the longest wait among those over, if any."""
    worst: RateLimited | None = None
    for limit, subject in hits:
        retry_after = hit(limit, subject)
        if retry_after is not None and (worst is None or retry_after > worst.retry_after):
            worst = RateLimited(limit, retry_after)
    return worst


def login_attempt(request: HttpRequest) -> RateLimited | None:
    """A POST to a login form (the site's or the admin's), counted per address and account."""
    if request.method != "POST":
        return None
    hits = [(LOGIN_PER_ADDRESS, client_address(request))]
    username = str(request.POST.get("username", "")).strip().casefold()[:150]
    if username:
        hits.append((LOGIN_PER_ACCOUNT, username))
    return _over(*hits)


def anonymous_recommendation(request: HttpRequest) -> RateLimited | None:
    """A recommendation about to be stored without an owner, counted per address."""
    return _over((ANONYMOUS_RECOMMENDATIONS, client_address(request)))


def share_lookup(request: HttpRequest) -> RateLimited | None:
    """A share token about to be looked up, counted per address."""
    return _over((SHARE_LOOKUPS, client_address(request)))
