"""Scheme -> probe module: the single source of truth for what can be probed.

Adding a protocol means adding a module with ``async def probe(target, config,
deadline) -> Sample`` and one line here. A module may also define
``check_target(target) -> None``, raising ProbeError for a URL it can never
probe (a Redis path that is no database number): the runner calls it before
the first sample, so such a URL is invalid input (exit 2) and gets no packet.
Modules are imported lazily, so a probe's client library loads only when that
protocol is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from probes.base import ProbeConfig, Sample, Target

ProbeFn = Callable[[Target, ProbeConfig, float], Awaitable[Sample]]
CheckFn = Callable[[Target], None]


@dataclass(frozen=True)
class Entry:
    module: str
    default_port: int
    kind: str  # the "kind" reported in results


REGISTRY: dict[str, Entry] = {
    "tcp": Entry("probes.tcp", 0, "tcp"),
    "udp": Entry("probes.udp", 7, "udp"),
    "tls": Entry("probes.tls", 443, "tls"),
    "http": Entry("probes.http", 80, "http"),
    "https": Entry("probes.http", 443, "https"),
    "ws": Entry("probes.websocket", 80, "ws"),
    "wss": Entry("probes.websocket", 443, "wss"),
    "ssh": Entry("probes.ssh", 22, "ssh"),
    "sftp": Entry("probes.sftp", 22, "sftp"),
    "ftp": Entry("probes.ftp", 21, "ftp"),
    "amqp": Entry("probes.amqp", 5672, "amqp"),
    "amqps": Entry("probes.amqp", 5671, "amqps"),
    "mqtt": Entry("probes.mqtt", 1883, "mqtt"),
    "mqtts": Entry("probes.mqtt", 8883, "mqtts"),
    "nats": Entry("probes.nats", 4222, "nats"),
    "redis": Entry("probes.redis", 6379, "redis"),
    "rediss": Entry("probes.redis", 6380, "rediss"),
    "grpc": Entry("probes.grpc", 50051, "grpc"),
    "grpcs": Entry("probes.grpc", 443, "grpcs"),
    "graphql+http": Entry("probes.graphql", 80, "graphql+http"),
    "graphql+https": Entry("probes.graphql", 443, "graphql+https"),
    "soap+http": Entry("probes.soap", 80, "soap+http"),
    "soap+https": Entry("probes.soap", 443, "soap+https"),
}


def schemes() -> list[str]:
    return sorted(REGISTRY)


def probe_function(scheme: str) -> ProbeFn:
    """The probe coroutine for a scheme; KeyError for a scheme not registered."""
    entry = REGISTRY[scheme]
    module = importlib.import_module(entry.module)
    fn: ProbeFn = module.probe
    return fn


def target_check(scheme: str) -> CheckFn | None:
    """The module's ``check_target`` for a scheme, when it has one."""
    module = importlib.import_module(REGISTRY[scheme].module)
    check: CheckFn | None = getattr(module, "check_target", None)
    return check
