"""The types every probe shares (``docs/usecase.md`` section 4).

One signature for all protocols, as in blackbox_exporter::

    async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample

``target`` is already resolved and checked by :mod:`probes.guard`: a probe
connects to ``target.address`` (never re-resolves ``target.host``) and keeps
``target.host`` for TLS SNI and the Host header. ``deadline`` is a
``time.monotonic()`` instant the sample must finish by; the runner enforces it
too. A probe opens a new connection for every sample, times each phase with
``time.perf_counter_ns()`` around exactly the work of that phase, and returns a
:class:`Sample`. It raises :class:`ProbeError` (or any OSError/TimeoutError,
which the runner records) when the target did not answer correctly.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr

MAX_COUNT = 1000
MIN_INTERVAL_MS = 10.0
MAX_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5
READ_CAP_BYTES = 64 * 1024
THROUGHPUT_READ_CAP_BYTES = 256 * 1024 * 1024
# The most a probe reads of any one protocol message whose length the peer
# announces (a Redis bulk reply, an MQTT packet, a NATS or WebSocket message),
# checked on the announcement, before anything is read. Independent of
# ``--throughput``: its read cap bounds a transfer (a download, a TCP stream),
# and these probes transfer nothing; a peer announcing 200 MB is hostile or
# broken either way.
MESSAGE_CAP_BYTES = READ_CAP_BYTES

PHASES: tuple[str, ...] = ("dns", "connect", "tls", "ttfb", "transfer")


Failure = Literal["refused", "timeout", "wrong_protocol", "tls", "dns", "not_allowed", "other"]
"""Why a probe got no answer, machine-readable: the words of ``advisor.evidence.Failure``.

``refused`` nothing listens (TCP RST, ICMP port unreachable); ``timeout`` no
answer in time; ``wrong_protocol`` something answered, but not this protocol
(or not correctly); ``tls`` the TLS handshake or the certificate failed;
``dns`` the name did not resolve; ``not_allowed`` the guard refused the
address; ``other`` anything else (authentication, a reset, a local error).
"""

FAILURES: tuple[str, ...] = (
    "refused",
    "timeout",
    "wrong_protocol",
    "tls",
    "dns",
    "not_allowed",
    "other",
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProbeError(Exception):
    """The target answered wrongly or not at all; the message says how.

    ``failure`` classifies it (see :data:`Failure`): by default the target
    answered with something that is not the protocol, ``wrong_protocol``.
    """

    def __init__(self, message: str = "", *, failure: Failure = "wrong_protocol") -> None:
        super().__init__(message)
        self.failure: Failure = failure


class Target(BaseModel):
    """A parsed, resolved and allowed probe target."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(description="The URL as given, with any password masked.")
    scheme: str
    host: str = Field(description="Host name (or literal address) from the URL.")
    port: int
    address: str = Field(description="The resolved address that the guard checked.")
    path: str = "/"
    query: str = ""
    username: str | None = None
    password: SecretStr | None = None
    dns_ms: float | None = Field(None, description="Time the single resolution took.")
    allowed_networks: tuple[IPvAnyNetwork, ...] = Field(
        (),
        repr=False,
        exclude=True,
        description="The policy the guard checked this target with; redirect hops reuse it.",
    )

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES

    def secrets(self) -> list[str]:
        """What must never be printed or logged: the password, or a token in the user slot."""
        found: list[str] = []
        if self.password is not None and self.password.get_secret_value():
            found.append(self.password.get_secret_value())
        elif self.scheme in TOKEN_USERINFO_SCHEMES and self.username:
            found.append(self.username)
        return found


# Schemes whose URL convention reads a user name without a password as a
# secret token (``nats://TOKEN@host``): it is masked like a password.
TOKEN_USERINFO_SCHEMES = frozenset({"nats"})


TLS_SCHEMES = frozenset(
    {"tls", "https", "wss", "amqps", "mqtts", "rediss", "grpcs", "graphql+https", "soap+https"}
)


class ProbeConfig(BaseModel):
    """Per-run settings; bounds from the contract and the probe issue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(10, ge=1, le=MAX_COUNT)
    interval_ms: float = Field(100.0, ge=MIN_INTERVAL_MS, le=60_000)
    timeout_s: float = Field(5.0, gt=0, le=MAX_TIMEOUT_S)
    throughput: bool = False
    insecure: bool = False
    # http/https only: follow up to MAX_REDIRECTS redirects, each hop checked by the guard.
    follow_redirects: bool = False

    @property
    def read_cap(self) -> int:
        return THROUGHPUT_READ_CAP_BYTES if self.throughput else READ_CAP_BYTES


class Sample(BaseModel):
    """One timed attempt against the target."""

    ok: bool = True
    latency_ms: float | None = Field(None, description="The sample's round trip / total time.")
    phases_ms: dict[str, float | None] = Field(default_factory=dict)
    transfer_bytes: int = 0
    transfer_s: float | None = None
    error: str | None = None
    failure: Failure | None = Field(None, description="Why it failed; None when ok.")
    details: dict[str, Any] = Field(default_factory=dict)


class LatencyStats(BaseModel):
    min: float
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    stdev: float


class ProbeResult(BaseModel):
    """The section 4 JSON object."""

    kind: str
    target: str
    address: str | None = None
    ok: bool
    samples: int
    succeeded: int
    loss: float
    latency_ms: LatencyStats | None = None
    jitter_ms: float | None = None
    phases_ms: dict[str, float | None] = Field(default_factory=lambda: dict.fromkeys(PHASES))
    throughput_bps: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    failure: Failure | None = Field(
        None, description="Why no sample was answered, machine-readable; null when ok."
    )


Outcome = Literal["answered", "failed", "invalid"]


# --- Secrets in messages --------------------------------------------------------------
# Shared by the runner and the protocol modules that quote a server's words.

# A secret this short also occurs in ordinary words: replacing it there would
# mangle the message and show which letters the password is made of.
SHORT_SECRET = 4
WITHHELD = "failed (the error message is withheld: it contains the password)"


def scrub(text: str | None, target: Target) -> str | None:
    """Remove the target's password (or token) from a message that might quote it."""
    if text is None:
        return text
    for secret in target.secrets():
        if secret not in text:
            continue
        if len(secret) < SHORT_SECRET:
            return WITHHELD
        text = text.replace(secret, "****")
    return text


def scrub_details(value: Any, target: Target) -> Any:
    """``details`` with every string scrubbed: servers' texts end up there too."""
    if isinstance(value, str):
        return scrub(value, target)
    if isinstance(value, dict):
        return {k: scrub_details(v, target) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_details(v, target) for v in value]
    return value
