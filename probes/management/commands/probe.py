"""``python manage.py probe URL``: probe one target now and print the result.

The interface is section 4 of ``docs/usecase.md``. Exit codes: 0 the
target answered (at least one sample succeeded), 1 it did not (refused, timed
out, wrong protocol, name not resolved), 2 the input is invalid or the target
is not allowed. The reason for 1 and 2 goes to standard error, without a
traceback. Passwords in the URL never reach the output: everything printed
comes from the masked URL.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from probes.base import (
    MAX_COUNT,
    MAX_REDIRECTS,
    MAX_TIMEOUT_S,
    MIN_INTERVAL_MS,
    IPNetwork,
    ProbeConfig,
    ProbeResult,
    Sample,
    Target,
)
from probes.guard import ENV_ALLOWED, GuardError, mask_url, parse_networks
from probes.registry import schemes
from probes.runner import run_probe_sync, summarize

EXIT_ANSWERED = 0
EXIT_NOT_ANSWERED = 1
EXIT_INVALID = 2


class Command(BaseCommand):
    help = (
        "Probe one target now and print latency, loss, jitter, phases and protocol facts. "
        f"Schemes: {', '.join(schemes())}. Exit 0 answered, 1 not answered, 2 invalid or "
        "not allowed (loopback and private targets need PROBE_ALLOWED_NETWORKS)."
    )
    # Probing needs neither the database nor the rest of the project's checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="target URL, e.g. https://example.org/ or udp://host:7")
        parser.add_argument(
            "--count", type=int, default=10, help=f"samples to take, 1-{MAX_COUNT} (default 10)"
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=100.0,
            help=f"milliseconds between sample starts, at least {MIN_INTERVAL_MS:g} (default 100)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            help=f"seconds each sample may take, above 0 and at most {MAX_TIMEOUT_S:g} (default 5)",
        )
        parser.add_argument(
            "--throughput",
            action="store_true",
            help="measure download throughput (http/https, sftp, tcp against the responder)",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            help="accept a certificate that does not verify (still reported in details)",
        )
        parser.add_argument(
            "--follow-redirects",
            action="store_true",
            help=(
                f"http/https: follow up to {MAX_REDIRECTS} redirects, checking every hop like the "
                "target itself (default: report the redirect, do not follow it)"
            ),
        )
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._probe(options)
        except BrokenPipeError:
            # The reader went away (`probe ... | head -3`): stop like ping does,
            # without a traceback. Later writes, the interpreter's final flush
            # included, go to /dev/null.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            self._exit(EXIT_NOT_ANSWERED, "standard output was closed; stopped")

    def _probe(self, options: dict[str, Any]) -> None:
        url = str(options["url"])
        config = self._config(options)
        networks = self._allowed_networks()
        as_json = options["format"] == "json"
        header = self._print_header(config)
        # Kept so that Ctrl-C can still report what was measured, as ping does.
        targets: list[Target] = []
        taken: list[Sample] = []

        def on_target(target: Target) -> None:
            targets.append(target)
            if not as_json:
                header(target)

        def on_sample(index: int, sample: Sample) -> None:
            taken.append(sample)
            if not as_json:
                self._print_sample(index, sample)

        try:
            result = run_probe_sync(
                url, config, allowed_networks=networks, on_sample=on_sample, on_target=on_target
            )
        except GuardError as exc:
            self._exit(EXIT_INVALID, f"{mask_url(url)}: {exc}")
        except KeyboardInterrupt:
            if not targets or not taken:
                self._exit(EXIT_NOT_ANSWERED, "interrupted before any sample completed")
            result = summarize(targets[0], config, taken)
            self.stderr.write(f"probe: interrupted after {len(taken)} of {config.count} samples")
        if as_json:
            self.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2))
        else:
            self.stdout.write(render_summary(result))
        if not result.ok:
            self._exit(EXIT_NOT_ANSWERED, f"{result.target}: {result.error or 'no answer'}")

    def _allowed_networks(self) -> tuple[IPNetwork, ...]:
        """The operator's policy: the environment's PROBE_ALLOWED_NETWORKS when it is
        set (even empty), else Django's setting of that name; the guard reads neither."""
        raw = os.environ.get(ENV_ALLOWED)
        if raw is None:
            raw = str(getattr(settings, ENV_ALLOWED, "") or "")
        try:
            return parse_networks(raw)
        except GuardError as exc:
            self._exit(EXIT_INVALID, str(exc))

    def _config(self, options: dict[str, Any]) -> ProbeConfig:
        count, interval, timeout = options["count"], options["interval"], options["timeout"]
        if not 1 <= count <= MAX_COUNT:
            self._exit(EXIT_INVALID, f"--count must be between 1 and {MAX_COUNT} (got {count})")
        if not math.isfinite(interval) or not MIN_INTERVAL_MS <= interval <= 60_000:
            self._exit(
                EXIT_INVALID,
                f"--interval must be between {MIN_INTERVAL_MS:g} and 60000 ms (got {interval:g})",
            )
        if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT_S:
            self._exit(
                EXIT_INVALID,
                f"--timeout must be above 0 and at most {MAX_TIMEOUT_S:g} s (got {timeout:g})",
            )
        return ProbeConfig(
            count=count,
            interval_ms=interval,
            timeout_s=timeout,
            throughput=bool(options["throughput"]),
            insecure=bool(options["insecure"]),
            follow_redirects=bool(options["follow_redirects"]),
        )

    def _print_header(self, config: ProbeConfig) -> Callable[[Target], None]:
        def header(target: Target) -> None:
            dns = f", resolved in {target.dns_ms:.3f} ms" if target.dns_ms is not None else ""
            self.stdout.write(
                f"PROBE {target.url} ({target.address} port {target.port}{dns}): "
                f"{config.count} samples every {config.interval_ms:g} ms, "
                f"timeout {config.timeout_s:g} s"
            )
            self.stdout.flush()

        return header

    def _print_sample(self, index: int, sample: Sample) -> None:
        self.stdout.write(render_sample(index, sample))
        self.stdout.flush()

    def _exit(self, code: int, message: str) -> NoReturn:
        self.stderr.write(f"probe: {message}")
        self.stderr.flush()
        sys.exit(code)


# --- Text rendering (ping / curl -v style) ------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_sample(index: int, sample: Sample) -> str:
    if not sample.ok:
        return f"seq={index + 1} failed: {sample.error}"
    phases = " ".join(f"{k}={_ms(v)}" for k, v in sample.phases_ms.items() if v is not None)
    line = f"seq={index + 1} ok time={_ms(sample.latency_ms)} ms"
    return f"{line} ({phases})" if phases else line


def format_bps(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bit/s"


def _render_value(key: str, value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = [f"{pad}{key}:"]
        for k, v in value.items():
            lines.extend(_render_value(str(k), v, indent + 1))
        return lines
    if isinstance(value, list | tuple) and any(isinstance(v, dict) for v in value):
        # Records (redirect hops): one line each, "key=value" pairs, in order.
        lines = [f"{pad}{key}:"]
        for index, item in enumerate(value, 1):
            if isinstance(item, dict):
                item = " ".join(f"{k}={v}" for k, v in item.items())
            lines.append(f"{pad}  {index}. {item}")
        return lines
    if isinstance(value, list | tuple):
        return [f"{pad}{key}: {', '.join(str(v) for v in value) or '-'}"]
    return [f"{pad}{key}: {value}"]


def render_summary(result: ProbeResult) -> str:
    loss_pct = result.loss * 100
    lines = [
        "",
        f"--- {result.target} probe statistics ---",
        f"{result.samples} samples, {result.succeeded} answered, {loss_pct:.1f}% loss",
    ]
    stats = result.latency_ms
    if stats is not None:
        lines.append(
            "latency min/p50/p95/p99/max/mean/stdev = "
            f"{stats.min:.3f}/{stats.p50:.3f}/{stats.p95:.3f}/{stats.p99:.3f}/"
            f"{stats.max:.3f}/{stats.mean:.3f}/{stats.stdev:.3f} ms"
        )
    if result.jitter_ms is not None:
        lines.append(f"jitter {result.jitter_ms:.3f} ms")
    phases = "  ".join(f"{name} {_ms(value)}" for name, value in result.phases_ms.items())
    lines.append(f"phases (median ms): {phases}")
    if result.throughput_bps is not None:
        lines.append(f"throughput {format_bps(result.throughput_bps)}")
    if result.details:
        lines.extend(_render_value("details", result.details, 0))
    lines.append(f"result: {'answered' if result.ok else 'NOT answered'}")
    if result.error:
        lines.append(f"error: {result.error}")
    return "\n".join(lines)
