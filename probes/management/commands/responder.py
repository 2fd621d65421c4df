"""``python manage.py responder --udp PORT --tcp PORT [--bind ADDR]``.

Runs the responder (:mod:`probes.responder`) in the foreground until
interrupted: a UDP echo for ``udp://`` probes and a TCP byte source for
``tcp://... --throughput``. Port 0 picks a free port; the ports actually used
are printed on standard output, one line each, as soon as they listen.
Exit 2 on invalid options, 1 when a port cannot be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from probes.responder import SEND_MAX_BYTES, UDP_RATE, start_responder


class Command(BaseCommand):
    help = (
        "Serve a UDP echo (--udp) and a TCP throughput source (--tcp) for Switchboard probes. "
        "See docs/probes.md for the protocol."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--udp", type=int, metavar="PORT", help="UDP echo port (0: any)")
        parser.add_argument("--tcp", type=int, metavar="PORT", help="TCP source port (0: any)")
        parser.add_argument(
            "--bind", default="0.0.0.0", metavar="ADDR", help="address to listen on (0.0.0.0)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        udp, tcp, bind = options["udp"], options["tcp"], str(options["bind"])
        if udp is None and tcp is None:
            self._exit(2, "give --udp PORT, --tcp PORT or both")
        for name, port in (("--udp", udp), ("--tcp", tcp)):
            if port is not None and not 0 <= port <= 65535:
                self._exit(2, f"{name} must be a port between 0 and 65535 (got {port})")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(udp, tcp, bind))

    async def _serve(self, udp: int | None, tcp: int | None, bind: str) -> None:
        try:
            responder = await start_responder(udp, tcp, bind)
        except OSError as exc:
            self._exit(1, f"cannot listen on {bind}: {exc.strerror or exc}")
        # Handlers first: whoever waits for the lines below may signal at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        shown = f"[{bind}]" if ":" in bind else bind
        if responder.udp_port is not None:
            self.stdout.write(
                f"responder: UDP echo on {shown}:{responder.udp_port} "
                f"(at most {UDP_RATE:g} datagrams/s per source)"
            )
        if responder.tcp_port is not None:
            self.stdout.write(
                f"responder: TCP source on {shown}:{responder.tcp_port} "
                f"(SEND <n> up to {SEND_MAX_BYTES} bytes, ECHO)"
            )
        self.stdout.flush()
        try:
            await stop.wait()
        finally:
            await responder.close()
            try:
                self.stdout.write("responder: stopped")
                self.stdout.flush()
            except BrokenPipeError:
                # Nobody reads our output any more; stop quietly, final flush included.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def _exit(self, code: int, message: str) -> NoReturn:
        self.stderr.write(f"responder: {message}")
        self.stderr.flush()
        sys.exit(code)
