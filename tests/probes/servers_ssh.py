"""Real servers for the ssh, sftp, ftp and grpc probe tests, each on 127.0.0.1:0.

Every server runs in its own thread (asyncssh on its own event loop, pyftpdlib
on its own IOLoop, gRPC on its thread pool), so a test can drive the probe with
``asyncio.run`` in the main thread exactly as the runner would, and the
server's work never shares the probe's event loop (which would distort timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from probes.base import Target

T = TypeVar("T")

SSH_USER = "prober"
SSH_PASSWORD = "s3cret-ssh-pw"
FTP_USER = "ftpuser"
FTP_PASSWORD = "s3cret-ftp-pw"


def fd_count() -> int:
    """Open file descriptors of this process (Linux), servers' included."""
    return len(os.listdir("/proc/self/fd"))


def make_target(
    scheme: str,
    port: int,
    *,
    path: str = "/",
    query: str = "",
    username: str | None = None,
    password: str | None = None,
    host: str = "127.0.0.1",
    address: str = "127.0.0.1",
) -> Target:
    """A Target as the guard would hand it over (already resolved and allowed)."""
    user = f"{username}:***@" if username else ""
    return Target.model_validate(
        {
            "url": f"{scheme}://{user}{host}:{port}{path}" + (f"?{query}" if query else ""),
            "scheme": scheme,
            "host": host,
            "port": port,
            "address": address,
            "path": path,
            "query": query,
            "username": username,
            "password": password,
        }
    )


class LoopThread:
    """An asyncio event loop in a daemon thread, for servers written for asyncio."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        self.loop.close()


# -- SSH / SFTP -------------------------------------------------------------------


@functools.cache
def host_key(algorithm: str = "ssh-ed25519") -> asyncssh.SSHKey:
    """One host key per algorithm per test session (generating keys is slow)."""
    return asyncssh.generate_private_key(algorithm)


@dataclass
class SSHCounters:
    """What the server saw; lets a test prove the ssh probe never tried to log in."""

    connections: int = 0
    auth_requests: int = 0
    logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _SSHServer(asyncssh.SSHServer):
    def __init__(self, counters: SSHCounters) -> None:
        self.counters = counters

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        with self.counters.lock:
            self.counters.connections += 1

    def begin_auth(self, username: str) -> bool:
        # Called on the first SSH_MSG_USERAUTH_REQUEST of a connection.
        with self.counters.lock:
            self.counters.auth_requests += 1
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok = username == SSH_USER and password == SSH_PASSWORD
        if ok:
            with self.counters.lock:
                self.counters.logins += 1
        return ok


@dataclass
class SSHServerInfo:
    port: int
    host_key: asyncssh.SSHKey
    root: Path
    counters: SSHCounters


@contextmanager
def ssh_server(
    key: asyncssh.SSHKey, root: Path, kex_algs: tuple[str, ...] = ()
) -> Iterator[SSHServerInfo]:
    """An asyncssh server with password auth and SFTP chrooted to ``root``.

    ``kex_algs`` restricts the key exchanges the server offers.
    """
    counters = SSHCounters()
    runner = LoopThread()

    def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[key],
            kex_algs=list(kex_algs) or (),
            server_factory=lambda: _SSHServer(counters),
            sftp_factory=sftp_factory,
            allow_scp=False,
        )

    acceptor = runner.run(start())
    port = acceptor.sockets[0].getsockname()[1]
    try:
        yield SSHServerInfo(port, key, root, counters)
    finally:

        async def stop() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        runner.run(stop())
        runner.stop()


# -- FTP / FTPS -------------------------------------------------------------------


@dataclass
class FTPServerInfo:
    port: int
    root: Path


@contextmanager
def ftp_server(
    root: Path,
    *,
    certfile: Path | None = None,
    epsv: bool = True,
    masquerade_address: str | None = None,
) -> Iterator[FTPServerInfo]:
    """pyftpdlib with a user and anonymous access; FTPS (explicit TLS) when given a cert.

    ``epsv=False`` removes EPSV so clients must use PASV; ``masquerade_address``
    makes PASV replies advertise another address than the one connected to.
    """
    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elr")
    authorizer.add_anonymous(str(root))
    base: type[FTPHandler] = TLS_FTPHandler if certfile else FTPHandler
    attrs: dict[str, Any] = {
        "authorizer": authorizer,
        "banner": "switchboard test ftpd ready",
        "masquerade_address": masquerade_address,
        # pyftpdlib delays a 530 by 3 s (against guessing); tests need not wait.
        "auth_failed_timeout": 0.05,
    }
    if certfile:
        # A fresh class per server: pyftpdlib caches the SSL context on the class.
        attrs.update(certfile=str(certfile), ssl_context=None)
    if not epsv:
        attrs["proto_cmds"] = {k: v for k, v in base.proto_cmds.items() if k != "EPSV"}
    handler = type("TestFTPHandler", (base,), attrs)
    server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            # One poll of pyftpdlib's IOLoop; serve_forever() would log on every call.
            server.ioloop.loop(0.05, blocking=False)
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield FTPServerInfo(port, root)
    finally:
        stop.set()
        thread.join(5.0)


# -- gRPC -----------------------------------------------------------------------------


@dataclass
class GRPCServerInfo:
    port: int
    servicer: health.HealthServicer | None


@contextmanager
def grpc_server(
    *,
    with_health: bool = True,
    tls: tuple[bytes, bytes] | None = None,
) -> Iterator[GRPCServerInfo]:
    """A gRPC server with the standard health service (or without any service).

    ``tls`` is (private key PEM, certificate chain PEM) for a grpcs server.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer: health.HealthServicer | None = None
    if with_health:
        servicer = health.HealthServicer()
        servicer.set("switchboard.Up", health_pb2.HealthCheckResponse.SERVING)
        servicer.set("switchboard.Down", health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls:
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([tls]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield GRPCServerInfo(port, servicer)
    finally:
        server.stop(grace=None).wait(5.0)


# -- misbehaving peers --------------------------------------------------------------


@contextmanager
def silent_listener() -> Iterator[int]:
    """Accepts connections (the kernel completes the handshake) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nobody can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def _accepting(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose thread hands every connection to ``handle``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5.0)
        sock.close()


@contextmanager
def greeting_listener(greeting: bytes) -> Iterator[int]:
    """Sends ``greeting`` to every client at once, then holds the connection silently."""
    held: list[socket.socket] = []

    def greet(conn: socket.socket) -> None:
        held.append(conn)
        with contextlib.suppress(OSError):
            conn.sendall(greeting)

    try:
        with _accepting(greet) as port:
            yield port
    finally:
        for conn in held:
            conn.close()


@contextmanager
def http_listener() -> Iterator[int]:
    """A minimal HTTP/1.1 server that answers every connection with a 400 and closes."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1.0)
            with contextlib.suppress(OSError):
                conn.recv(4096)  # whatever the client says first, if anything
            with contextlib.suppress(OSError):
                conn.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    with _accepting(answer) as port:
        yield port
