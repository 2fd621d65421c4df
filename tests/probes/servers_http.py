"""Real servers for the http, tls, ws, graphql and soap probe tests (and the benches).

Every server listens on ``127.0.0.1`` port 0 in its own event loop on a
background thread, so the probe under test runs in the test's loop and the two
never share a scheduler. Nothing here is a mock: the probes talk to these over
real sockets, with real TLS (certificates from ``trustme`` or generated with
``cryptography``) and a real WebSocket implementation (``websockets``).

Run it directly to serve the HTTP endpoints in the foreground (the benches do)::

    python -m tests.probes.servers_http --host 127.0.0.1 --port 0 [--certfile C --keyfile K]

It prints ``listening <host> <port>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.base import ProbeConfig, Sample, Target
from probes.guard import parse_networks

# --- HTTP ------------------------------------------------------------------------------

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL11 = "http://schemas.xmlsoap.org/wsdl/"

SOAP_RESPONSE = f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="{SOAP11}">
  <soap:Body><PingResponse xmlns="urn:switchboard:test"><ok>true</ok></PingResponse></soap:Body>
</soap:Envelope>"""

SOAP_FAULT = f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="{SOAP11}">
  <soap:Body><soap:Fault><faultcode>soap:Client</faultcode>
  <faultstring>No operation in the request body</faultstring></soap:Fault></soap:Body>
</soap:Envelope>"""

WSDL = f"""<?xml version="1.0" encoding="utf-8"?>
<definitions xmlns="{WSDL11}" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:tns="urn:switchboard:test" targetNamespace="urn:switchboard:test" name="PingService">
  <message name="PingRequest"/>
  <message name="PingResponse"/>
  <portType name="PingPort">
    <operation name="Ping"><input message="tns:PingRequest"/><output message="tns:PingResponse"/>
    </operation>
  </portType>
  <service name="PingService"/>
</definitions>"""

DOCTYPE_XML = f"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>&lol2;</soap:Body></soap:Envelope>"""

HTML = b"<!doctype html><html><head><title>Hello</title></head><body>Hi</body></html>"


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def number(self, name: str, default: int) -> int:
        return int(self.query.get(name, [str(default)])[0])


def response(
    status: int,
    reason: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def handle_http(req: Request, writer: asyncio.StreamWriter) -> None:
    """The endpoints the probe tests and benches use."""
    path = req.path
    if path in ("/", "/ok"):
        writer.write(response(200, "OK", b"hello\n", {"Content-Type": "text/plain"}))
    elif path == "/redirect":
        writer.write(response(302, "Found", b"", {"Location": "/ok"}))
    elif path == "/redirect-to":
        writer.write(response(302, "Found", b"", {"Location": req.query["to"][0]}))
    elif path == "/loop":
        writer.write(response(301, "Moved Permanently", b"", {"Location": "/loop"}))
    elif path == "/unavailable":
        writer.write(response(503, "Service Unavailable", b"down\n"))
    elif path == "/slow":
        # The server's own think time, the delay the ttfb measurement must see.
        await asyncio.sleep(req.number("ms", 20) / 1000.0)
        writer.write(response(200, "OK", b"slow\n"))
    elif path == "/large":
        size = req.number("bytes", 1024 * 1024)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"x" * 65536
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            writer.write(piece)
            sent += len(piece)
            await writer.drain()
    elif path == "/chunked":
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for piece in (b"alpha,", b"beta," * 1000, b"gamma"):
            writer.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\nX-Trailer: done\r\n\r\n")
    elif path == "/close-delimited":
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until close\n" * 10)
    elif path == "/early-hints":
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await writer.drain()
        writer.write(response(200, "OK", b"after hints\n"))
    elif path == "/graphql":
        writer.write(graphql_answer(req))
    elif path == "/graphql-errors":
        body = json.dumps({"errors": [{"message": "not authorised"}]}).encode()
        writer.write(response(200, "OK", body, {"Content-Type": "application/json"}))
    elif path == "/json":
        body = json.dumps({"status": "ok", "items": [1, 2, 3]}).encode()
        writer.write(response(200, "OK", body, {"Content-Type": "application/json"}))
    elif path == "/soap":
        writer.write(soap_answer(req, fault_on_empty=True))
    elif path == "/soap-ok":
        writer.write(soap_answer(req, fault_on_empty=False))
    elif path == "/doctype":
        writer.write(response(200, "OK", DOCTYPE_XML.encode(), {"Content-Type": "text/xml"}))
    elif path == "/rss":
        body = b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>'
        writer.write(response(200, "OK", body, {"Content-Type": "application/rss+xml"}))
    elif path == "/html":
        writer.write(response(200, "OK", HTML, {"Content-Type": "text/html"}))
    else:
        writer.write(response(404, "Not Found", b"no such page\n"))


def graphql_answer(req: Request) -> bytes:
    if req.method != "POST":
        return response(405, "Method Not Allowed", b"", {"Allow": "POST"})
    try:
        query = json.loads(req.body)["query"]
    except (ValueError, KeyError, TypeError):
        body = json.dumps({"errors": [{"message": "expected a JSON body with a query"}]})
        return response(400, "Bad Request", body.encode(), {"Content-Type": "application/json"})
    if "__typename" in query:
        body = json.dumps({"data": {"__typename": "Query"}})
    else:
        body = json.dumps({"errors": [{"message": "unknown field"}]})
    return response(200, "OK", body.encode(), {"Content-Type": "application/graphql-response+json"})


def soap_answer(req: Request, *, fault_on_empty: bool) -> bytes:
    if req.method == "GET" and any(k.lower() == "wsdl" for k in req.query):
        return response(200, "OK", WSDL.encode(), {"Content-Type": "text/xml; charset=utf-8"})
    if req.method != "POST" or "soapaction" not in req.headers:
        return response(400, "Bad Request", b"SOAP endpoint: POST an envelope\n")
    empty = b"<soap:Body/>" in req.body or b"<soap:Body></soap:Body>" in req.body
    if fault_on_empty and empty:
        # SOAP 1.1 section 6.2: a fault comes back with HTTP 500.
        fault = SOAP_FAULT.encode()
        return response(500, "Internal Server Error", fault, {"Content-Type": "text/xml"})
    return response(200, "OK", SOAP_RESPONSE.encode(), {"Content-Type": "text/xml"})


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


# --- A loop on a thread ------------------------------------------------------------------


class LoopThread:
    """An event loop on a daemon thread that servers run in."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(_await(coro), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        self.loop.close()


async def _await(coro: Awaitable[Any]) -> Any:
    return await coro


@dataclass
class Server:
    """A listening server: its port, the requests it saw, the SNI names it was sent."""

    port: int
    requests: list[Request] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    accepted: int = 0


async def _read_request(reader: asyncio.StreamReader, first: bytes = b"") -> Request:
    head = first + await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


async def start_http(
    context: ssl.SSLContext | None = None,
    handler: Handler = handle_http,
    host: str = "127.0.0.1",
    port: int = 0,
) -> tuple[asyncio.Server, Server]:
    state = Server(port=0)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        try:
            first = await reader.readexactly(1)
            if not first.isalpha():
                # Not a request line (a TLS ClientHello, say): answer as real servers do.
                writer.write(response(400, "Bad Request", b"not HTTP\n"))
                return
            req = await _read_request(reader, first)
            state.requests.append(req)
            await handler(req, writer)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    if context is not None:
        _record_sni(context, state)
    server = await asyncio.start_server(on_client, host, port, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    return server, state


def _record_sni(context: ssl.SSLContext, state: Server) -> None:
    def callback(_sock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        state.sni.append(name)

    context.sni_callback = callback


async def start_raw(behaviour: str) -> tuple[asyncio.Server, Server]:
    """Servers that are not HTTP: ``close`` (hang up at once), ``banner``, ``silent``."""
    state = Server(port=0)
    held: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        if behaviour == "close":
            writer.close()
            return
        if behaviour == "banner":
            writer.write(b"SSH-2.0-OpenSSH_9.6 switchboard-test\r\n")
            await writer.drain()
        held.append(writer)
        # Keep the connection open and unanswered until the client leaves.
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    return server, state


async def start_websocket(echo: bool, context: ssl.SSLContext | None = None) -> tuple[Any, Server]:
    from websockets.asyncio.server import ServerConnection, serve

    state = Server(port=0)

    async def handler(ws: ServerConnection) -> None:
        state.accepted += 1
        if echo:
            async for message in ws:
                await ws.send(message)
        else:
            # Talks, but never echoes: a greeting, then it ignores what it gets.
            await ws.send("welcome")
            async for _message in ws:
                pass

    if context is not None:
        _record_sni(context, state)
    server = await serve(handler, "127.0.0.1", 0, ssl=context)
    state.port = next(iter(server.sockets)).getsockname()[1]
    return server, state


@contextlib.contextmanager
def running(start: Awaitable[tuple[Any, Server]]) -> Iterator[Server]:
    """Run a server on its own loop thread for the duration of the block."""
    thread = LoopThread()
    server, state = thread.run(start)
    try:
        yield state
    finally:
        with contextlib.suppress(Exception):
            thread.run(_close(server), timeout=5.0)
        thread.close()


async def _close(server: Any) -> None:
    # asyncio servers are not thread-safe: close them on their own loop.
    server.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await server.wait_closed()


# --- Certificates ----------------------------------------------------------------------


@dataclass
class Certificates:
    """A trusted CA (as a PEM file for PROBE_CA_FILE) and server contexts of each kind."""

    ca_file: Path
    ca: trustme.CA
    directory: Path

    def trusted(self, not_after: dt.datetime | None = None) -> ssl.SSLContext:
        cert = self.ca.issue_cert(
            "localhost", "127.0.0.1", common_name="localhost", not_after=not_after
        )
        return _server_context(cert)

    def expired(self) -> ssl.SSLContext:
        now = dt.datetime.now(dt.UTC)
        cert = self.ca.issue_cert(
            "localhost",
            "127.0.0.1",
            common_name="localhost",
            not_before=now - dt.timedelta(days=30),
            # Expired a day and a half ago: days_to_expiry is -2 (whole days, rounded down).
            not_after=now - dt.timedelta(hours=36),
        )
        return _server_context(cert)

    def self_signed(self) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed.localhost")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256())
        )
        cert_path = self.directory / "self-signed.pem"
        key_path = self.directory / "self-signed.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


@contextlib.contextmanager
def certificates() -> Iterator[Certificates]:
    with tempfile.TemporaryDirectory(prefix="switchboard-certs-") as tmp:
        directory = Path(tmp)
        ca = trustme.CA()
        ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        yield Certificates(ca_file=ca_file, ca=ca, directory=directory)


# --- Helpers for tests ---------------------------------------------------------------------------


def probe_now(
    module: Any,
    url: str,
    config: ProbeConfig | None = None,
    address: str = "127.0.0.1",
    allowed: str = "",
) -> Sample:
    """Call ``module.probe`` once on a fresh loop, as the runner would, deadline included.

    ``allowed`` is the policy the target carries (what redirect hops are checked with).
    """
    config = config or ProbeConfig(timeout_s=5.0)

    async def one() -> Sample:
        sample: Sample = await module.probe(
            target_for(url, address, allowed), config, time.monotonic() + config.timeout_s
        )
        return sample

    return asyncio.run(one())


def target_for(url: str, address: str = "127.0.0.1", allowed: str = "") -> Target:
    """A Target as the guard would build it, for calling ``probe()`` directly."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return Target(
        url=url,
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port,
        address=address,
        path=parts.path or "/",
        query=parts.query,
        allowed_networks=parse_networks(allowed),
    )


# --- Command line (for the benches) -----------------------------------------------------


async def _serve_forever(host: str, port: int, context: ssl.SSLContext | None) -> None:
    server, state = await start_http(context, host=host, port=port)
    print(f"listening {host} {state.port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--certfile", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--keyfile", help="PEM private key for --certfile")
    args = parser.parse_args()
    context = None
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        if os.environ.get("SERVERS_HTTP_TLS_TICKETS"):
            context.num_tickets = int(os.environ["SERVERS_HTTP_TLS_TICKETS"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, context))


if __name__ == "__main__":
    main()
