"""Which target tests which method: proposals from a decision, and the reverse.

The decision page proposes one target per candidate among the top methods,
with the scheme and usual port of the implementation the engine chose
(``message_queue``/``amqp`` -> ``amqp://host:5672/``). A URL given through the
API names no method, so :func:`method_for` reads it back from the scheme,
choosing among the methods a scheme can stand for the one the decision ranks
highest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probes.guard import GuardError, parse_url

# How many of the decision's feasible methods get a proposed target.
TOP_METHODS = 4

# (method, implementation) -> URL template; (method, None) is the method's default.
TEMPLATES: dict[tuple[str, str | None], str] = {
    ("message_queue", "amqp"): "amqp://{host}:5672/",
    ("message_queue", "mqtt"): "mqtt://{host}:1883",
    ("message_queue", "nats"): "nats://{host}:4222",
    ("message_queue", "redis_streams"): "redis://{host}:6379",
    ("message_queue", "kafka"): "tcp://{host}:9092",
    ("message_queue", None): "amqp://{host}:5672/",
    ("rpc", "grpc"): "grpc://{host}:50051",
    ("rpc", "json_rpc"): "https://{host}/",
    ("rpc", None): "grpc://{host}:50051",
    ("rest", None): "https://{host}/",
    ("http", None): "https://{host}/",
    ("graphql", None): "graphql+https://{host}/graphql",
    ("soap", None): "soap+https://{host}/",
    ("websocket", None): "wss://{host}/",
    # The responder (manage.py responder --udp 7007 --tcp 7008) on the user's server.
    ("udp", None): "udp://{host}:7007",
    ("tcp", None): "tcp://{host}:7008",
    ("file_transfer", "ftp"): "ftp://{host}/",
    ("file_transfer", "ftps"): "ftp://{host}/?tls=1",
    ("file_transfer", None): "sftp://{host}/",
    ("ssh", None): "ssh://{host}",
}

# scheme -> the methods a target of that scheme can stand for.
SCHEME_METHODS: dict[str, tuple[str, ...]] = {
    "tcp": ("tcp", "message_queue"),
    "tls": ("tcp",),
    "udp": ("udp",),
    "http": ("rest", "http", "rpc"),
    "https": ("rest", "http", "rpc"),
    "ws": ("websocket",),
    "wss": ("websocket",),
    "ssh": ("ssh",),
    "sftp": ("file_transfer", "ssh"),
    "ftp": ("file_transfer",),
    "amqp": ("message_queue",),
    "amqps": ("message_queue",),
    "mqtt": ("message_queue",),
    "mqtts": ("message_queue",),
    "nats": ("message_queue",),
    "redis": ("message_queue",),
    "rediss": ("message_queue",),
    "grpc": ("rpc",),
    "grpcs": ("rpc",),
    "graphql+http": ("graphql",),
    "graphql+https": ("graphql",),
    "soap+http": ("soap",),
    "soap+https": ("soap",),
}

# (method, scheme) -> the implementation a target of that scheme measures.
SCHEME_IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("message_queue", "amqp"): "amqp",
    ("message_queue", "amqps"): "amqp",
    ("message_queue", "mqtt"): "mqtt",
    ("message_queue", "mqtts"): "mqtt",
    ("message_queue", "nats"): "nats",
    ("message_queue", "redis"): "redis_streams",
    ("message_queue", "rediss"): "redis_streams",
    ("message_queue", "tcp"): "kafka",
    ("rpc", "grpc"): "grpc",
    ("rpc", "grpcs"): "grpc",
    ("rpc", "http"): "json_rpc",
    ("rpc", "https"): "json_rpc",
    ("file_transfer", "sftp"): "sftp",
}

_HOST_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Proposal:
    url: str
    method: str
    label: str
    implementation: str | None


def split_hosts(text: str) -> list[str]:
    """Host names or addresses typed once, separated by commas or spaces.

    Raises ValueError naming the first entry that is not a bare host.
    """
    hosts: list[str] = []
    for raw in _HOST_SPLIT.split(text.strip()):
        if not raw:
            continue
        host = raw
        if "://" in host or "/" in host or "@" in host:
            raise ValueError(
                f"{raw!r} is not a host: type only the name or address "
                "(api.example.com, 203.0.113.7), the targets below carry scheme and port"
            )
        if host.count(":") > 1 and not host.startswith("["):
            host = f"[{host}]"  # a bare IPv6 address
        elif ":" in host and not host.startswith("["):
            raise ValueError(f"{raw!r} has a port: type only the host, edit the ports below")
        try:
            parse_url(f"tcp://{host}:1")
        except GuardError as exc:
            raise ValueError(f"{raw!r}: {exc}") from None
        if host not in hosts:
            hosts.append(host)
    return hosts


def top_methods(
    ranking: Sequence[Mapping[str, Any]], top: int = TOP_METHODS
) -> list[Mapping[str, Any]]:
    """The first ``top`` methods of a stored ranking that are not ruled out."""
    feasible = [m for m in ranking if not m.get("excluded")]
    return feasible[:top]


def proposals(ranking: Sequence[Mapping[str, Any]], hosts: Iterable[str]) -> list[Proposal]:
    """One target per top method per host, with the usual scheme and port."""
    found: list[Proposal] = []
    for host in hosts:
        for item in top_methods(ranking):
            method = str(item.get("method"))
            implementation = item.get("implementation")
            template = TEMPLATES.get((method, implementation)) or TEMPLATES.get((method, None))
            if template is None:
                continue
            url = template.format(host=host)
            impl = SCHEME_IMPLEMENTATIONS.get((method, parse_url(url).scheme), implementation)
            label = str(item.get("label") or method)
            found.append(Proposal(url=url, method=method, label=label, implementation=impl))
    return found


def method_for(
    scheme: str, ranking: Sequence[Mapping[str, Any]], wanted: str | None = None
) -> tuple[str, str | None]:
    """(method, implementation) a target of ``scheme`` measures for this decision.

    ``wanted`` (the page's row says which candidate it was proposed for) is kept
    when the scheme can stand for it; otherwise the decision's best-ranked method
    among those the scheme can stand for.
    """
    candidates = SCHEME_METHODS.get(scheme, ("tcp",))
    if "rpc" in candidates and scheme in ("http", "https"):
        # A plain HTTP URL tests RPC only where the decision's RPC is JSON-RPC.
        rpc = next((m for m in ranking if m.get("method") == "rpc"), None)
        if rpc is None or rpc.get("implementation") != "json_rpc":
            candidates = tuple(c for c in candidates if c != "rpc")
    if wanted in candidates:
        method = str(wanted)
    else:
        order = [str(m.get("method")) for m in ranking]
        method = min(candidates, key=lambda m: order.index(m) if m in order else len(order))
    implementation = SCHEME_IMPLEMENTATIONS.get((method, scheme))
    if implementation is None:
        ranked = next((m for m in ranking if m.get("method") == method), None)
        chosen = ranked.get("implementation") if ranked else None
        implementation = str(chosen) if chosen and method in ("http",) else None
    return method, implementation
