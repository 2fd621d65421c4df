"""Helper servers for the broker and Redis probe tests.

- :class:`Front` / :func:`tls_front`: a listener on ``127.0.0.1:0`` that
  forwards to a real service, optionally terminating TLS with a certificate
  from a throwaway CA, so ``rediss``/``amqps``/``mqtts`` are tested against the
  real servers behind real TLS. It records the SNI names clients sent.
- :func:`mosquitto_with_passwords`, :func:`redis_with_password`: real servers
  that require credentials, started on a unix socket (neither can pick a free
  TCP port) and reached through a :class:`Front` on ``127.0.0.1:0``.
- :class:`BannerServer`: greets every connection with a fixed line and then
  holds it, as servers of other protocols do (SSH, FTP, SMTP).
- :class:`NatsServer`: a real ``nats-server`` on a random port (``-p -1``),
  optionally with a user and password or TLS.
- :func:`trusted_ca`: a CA the probes trust for the test (``PROBE_CA_FILE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
import trustme

from probes import tlsinfo
from probes.base import ProbeConfig, Sample, Target
from probes.guard import resolve_target
from probes.registry import ProbeFn
from tests.probes.conftest import LOOPBACK_NETWORKS, LoopThread, open_fds

ROOT = Path(__file__).resolve().parents[2]
# Daemons live in sbin, which a non-root PATH may leave out.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


class _LoopServer:
    """An asyncio server on its own loop thread; closing it aborts the connections it holds."""

    _server: asyncio.Server
    _loop: LoopThread
    _writers: list[asyncio.StreamWriter]

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()

        with contextlib.suppress(Exception):
            self._loop.run(stop())
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Front(_LoopServer):
    """A listener on 127.0.0.1:0 that forwards every connection to an upstream.

    The upstream is a loopback TCP port or a unix socket (for a Mosquitto or
    Redis the test starts itself: they cannot pick a free TCP port, but they
    can listen on a socket file). With ``context`` the front terminates TLS
    and records the SNI names clients sent. With ``freeze_on``, once a client
    has sent those bytes the front stops passing the server's answers on: a
    server that goes silent in the middle of a sample.
    """

    def __init__(
        self,
        *,
        upstream_port: int | None = None,
        upstream_path: Path | None = None,
        context: ssl.SSLContext | None = None,
        freeze_on: bytes | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.upstream_path = upstream_path
        self.freeze_on = freeze_on
        self.frozen = False
        self.sni: list[str | None] = []
        self.context = context
        if context is not None:
            context.sni_callback = self._record_sni
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = LoopThread()
        self._server = self._loop.run(self._start())
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _record_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream_path is not None:
            return await asyncio.open_unix_connection(str(self.upstream_path))
        return await asyncio.open_connection("127.0.0.1", self.upstream_port)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.append(client_w)
        try:
            up_r, up_w = await self._upstream()
        except OSError:
            client_w.close()
            return
        self._writers.append(up_w)
        await asyncio.gather(
            self._pipe(client_r, up_w, upstream=True),
            self._pipe(up_r, client_w, upstream=False),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if upstream and self.freeze_on is not None and self.freeze_on in data:
                    self.frozen = True
                if not upstream and self.frozen:
                    continue  # swallowed: the server seems to have gone silent
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


def tls_front(ca: trustme.CA, upstream_port: int, names: tuple[str, ...] = ("localhost",)) -> Front:
    """TLS with a certificate for ``names`` from ``ca``, in front of a loopback port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return Front(upstream_port=upstream_port, context=context)


class SocketServer:
    """A real server process listening on a unix socket, reached through a :class:`Front`."""

    def __init__(self, argv: list[str], socket_path: Path, what: str) -> None:
        self.socket_path = socket_path
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + 10
        while not socket_path.exists():
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                pytest.fail(f"{what} exited with {self.process.returncode}: {stderr[-500:]}")
            if time.monotonic() > end:
                self.close()
                pytest.fail(f"{what} did not create {socket_path} in time")
            time.sleep(0.01)
        self.front = Front(upstream_path=socket_path)
        self.port = self.front.port

    def close(self) -> None:
        with contextlib.suppress(AttributeError):
            self.front.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> SocketServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A private directory with a short path: a unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sb-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def mosquitto_with_passwords(users: dict[str, str]) -> Iterator[SocketServer]:
    """A real Mosquitto that refuses anonymous clients and knows only ``users``."""
    binary, passwd = shutil.which("mosquitto", path=SBIN_PATH), shutil.which("mosquitto_passwd")
    if binary is None or passwd is None:
        pytest.skip("mosquitto is not installed")
    with short_dir() as workdir:
        password_file = workdir / "passwords"
        password_file.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run([passwd, "-b", str(password_file), user, password], check=True)
        sock = workdir / "mqtt.sock"
        config = workdir / "mosquitto.conf"
        config.write_text(
            # Started as root, Mosquitto would switch to its own user, which
            # cannot read this private directory.
            f"user {getpass.getuser()}\n"
            f"listener 0 {sock}\n"
            "allow_anonymous false\n"
            f"password_file {password_file}\n"
            "persistence false\n"
        )
        with SocketServer([binary, "-c", str(config)], sock, "mosquitto") as server:
            yield server


@contextlib.contextmanager
def redis_with_password(password: str) -> Iterator[SocketServer]:
    """A real redis-server whose default user needs ``password``."""
    binary = shutil.which("redis-server", path=SBIN_PATH)
    if binary is None:
        pytest.skip("redis-server is not installed")
    with short_dir() as workdir:
        sock = workdir / "redis.sock"
        argv = [binary, "--port", "0", "--unixsocket", str(sock), "--requirepass", password]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        with SocketServer(argv, sock, "redis-server") as server:
            yield server


class BannerServer(_LoopServer):
    """Sends ``banner`` on every accepted connection, then keeps it open silently."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = LoopThread()
        self._server = self._loop.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.banner)
        await writer.drain()
        self._writers.append(writer)


class NatsServer:
    """A real nats-server on 127.0.0.1 and a port it picks itself."""

    def __init__(self, workdir: Path, *args: str) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.skip("nats-server is not installed")
        self.workdir = workdir
        self.process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(workdir), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 10.0) -> int:
        ports_file = self.workdir / f"nats-server_{self.process.pid}.ports"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                pytest.fail(f"nats-server exited with {self.process.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                url = json.loads(ports_file.read_text())["nats"][0]
                return int(url.rsplit(":", 1)[1])
            time.sleep(0.01)
        self.close()
        pytest.fail("nats-server did not write its ports file in time")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def trusted_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[trustme.CA]:
    """A throwaway CA the probes trust inside the block (``PROBE_CA_FILE``)."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with monkeypatch.context() as patch:
        patch.setenv(tlsinfo.ENV_CA_FILE, str(bundle))
        yield ca


async def target_for(url: str) -> Target:
    """The Target the runner would build (the guard must allow loopback)."""
    return await resolve_target(url, allowed_networks=LOOPBACK_NETWORKS)


def take(probe: ProbeFn, url: str, timeout: float = 5.0, insecure: bool = False) -> Sample:
    """One sample of ``probe`` against ``url``, called directly (no runner)."""
    config = ProbeConfig(timeout_s=timeout, insecure=insecure)

    async def one() -> Sample:
        target = await target_for(url)
        return await probe(target, config, time.monotonic() + timeout)

    return asyncio.run(one())


def take_many(probe: ProbeFn, url: str, count: int) -> tuple[list[Sample], set[int]]:
    """``count`` samples in one event loop; also the fds opened and not closed by them."""
    config = ProbeConfig(timeout_s=5.0)

    async def many() -> tuple[list[Sample], set[int]]:
        target = await target_for(url)
        before = set(open_fds())
        samples = [await probe(target, config, time.monotonic() + 5.0) for _ in range(count)]
        # An aborted transport closes its socket on the loop's next turn.
        end = time.monotonic() + 2.0
        while set(open_fds()) - before and time.monotonic() < end:
            await asyncio.sleep(0.001)
        return samples, set(open_fds()) - before

    return asyncio.run(many())


def elapsed_error(probe: ProbeFn, url: str, timeout: float) -> tuple[BaseException, float]:
    """The exception one sample raises, and how long the probe call took to raise it."""
    config = ProbeConfig(timeout_s=timeout)

    async def one() -> tuple[BaseException, float]:
        target = await target_for(url)
        started = time.monotonic()
        try:
            await probe(target, config, started + timeout)
        except Exception as exc:
            return exc, time.monotonic() - started
        pytest.fail(f"{url} answered a probe that should have failed")

    return asyncio.run(one())


def manage_probe(*args: str, allowed: str = LOOPBACK_NETWORKS) -> subprocess.CompletedProcess[str]:
    """``python manage.py probe ARGS`` as a user runs it; ``allowed``: PROBE_ALLOWED_NETWORKS."""
    env = {**os.environ, "PROBE_ALLOWED_NETWORKS": allowed}
    return subprocess.run(
        [sys.executable, "manage.py", "probe", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
