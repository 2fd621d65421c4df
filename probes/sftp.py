"""sftp://user:password@host:port/path -- log in, list a directory, optionally time a download.

The connection is made as in :mod:`probes.ssh` (own TCP socket to
``target.address``, nothing read from ``~/.ssh``, host key reported rather
than checked), but the asyncssh connection waits for the login this time. Only
password (and keyboard-interactive answered with the same password) is
offered; keys and agents are never used, so the URL's credentials are the only
ones sent.

The path follows the SFTP URI draft (draft-ietf-secsh-scp-sftp-ssh-uri):
``/dir`` is absolute, ``/~`` and ``/~/dir`` are relative to the login
directory. A directory is listed (``.`` and ``..`` are not counted, and the
listing stops once the names read exceed the sample's read cap); a file is
stat-ed. With ``config.throughput`` the file named by the path, or the largest
regular file in the directory, is read up to the read cap; that read alone is
the transfer phase and gives ``Sample.transfer_bytes`` / ``transfer_s``.

Phases: ``connect`` is the TCP handshake, ``tls`` is null, ``ttfb`` is the
server's identification line (as in :mod:`probes.ssh`), ``transfer`` is the
download. ``details`` has ``login_ms`` (key exchange plus authentication),
``sftp_ms`` (opening the SFTP subsystem) and ``list_ms``. ``latency_ms`` is
everything up to the listing, without the download.

A wrong password fails the sample with "authentication failed"; no message
this module produces contains the password (server text is scrubbed too).
"""

from __future__ import annotations

import contextlib
import stat as stat_module
import time
from collections.abc import AsyncGenerator
from typing import Any, cast
from urllib.parse import unquote

import asyncssh

from probes.base import ProbeConfig, ProbeError, Sample, Target
from probes.base import scrub as scrub_secrets
from probes.ssh import (
    Handshake,
    algorithm_details,
    client_options,
    close_session,
    fingerprint_sha256,
    printable,
    sample_timeout,
)

CHUNK = 1024 * 1024


def sftp_path(url_path: str) -> str:
    """URL path -> SFTP path: ``/~`` means the login directory."""
    path = unquote(url_path or "/")
    if path == "/~" or path.startswith("/~/"):
        rest = path[3:]
        return rest or "."
    return path


def scrub(text: str, target: Target) -> str:
    """Server or library text with the password removed, made printable."""
    return printable(scrub_secrets(text, target) or "")


def _is_regular(attrs: asyncssh.SFTPAttrs) -> bool:
    if attrs.permissions is not None:
        return stat_module.S_ISREG(attrs.permissions)
    return attrs.type == asyncssh.FILEXFER_TYPE_REGULAR


def _is_dir(attrs: asyncssh.SFTPAttrs) -> bool:
    if attrs.permissions is not None:
        return stat_module.S_ISDIR(attrs.permissions)
    return attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY


async def _listing(
    sftp: asyncssh.SFTPClient, path: str, cap: int
) -> tuple[int, bool, str | None, int]:
    """Entry count, whether it was cut at the cap, and the largest regular file with its size."""
    count = 0
    names_bytes = 0
    truncated = False
    largest: str | None = None
    largest_size = -1
    # aclosing: stopping at the cap must still close the remote directory handle.
    scan = cast(AsyncGenerator[asyncssh.SFTPName, None], sftp.scandir(path))
    async with contextlib.aclosing(scan) as entries:
        async for entry in entries:
            name = str(entry.filename)
            if name in (".", ".."):
                continue
            count += 1
            names_bytes += len(name) + len(str(entry.longname or ""))
            size = entry.attrs.size or 0
            if _is_regular(entry.attrs) and size > largest_size:
                largest, largest_size = name, size
            if names_bytes > cap:
                truncated = True
                break
    return count, truncated, largest, max(largest_size, 0)


def _join(directory: str, name: str) -> str:
    return name if directory == "." else directory.rstrip("/") + "/" + name


async def _download(sftp: asyncssh.SFTPClient, path: str, cap: int) -> tuple[int, int]:
    """Read up to ``cap`` bytes of ``path``; return bytes read and the ns the reads took."""
    async with sftp.open(path, "rb") as handle:
        total = 0
        start = time.perf_counter_ns()
        while total < cap:
            chunk = await handle.read(min(CHUNK, cap - total))
            if not chunk:
                break
            total += len(chunk)
        elapsed = time.perf_counter_ns() - start
    return total, elapsed


def check_target(target: Target) -> None:
    """Refuse, before any packet, a URL without the user to log in as."""
    if not target.username:
        raise ProbeError("sftp needs a user name in the URL (sftp://user:password@host/path)")


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    check_target(target)
    password = target.password.get_secret_value() if target.password else None
    options = await client_options(
        target,
        username=target.username,
        password=password,
        preferred_auth="password,keyboard-interactive",
    )
    path = sftp_path(target.path)
    attempt = Handshake()
    session = None
    try:
        async with sample_timeout(deadline):
            session = await attempt.open(target, options, wait="auth")
            conn = session.conn
            start = time.perf_counter_ns()
            async with conn.start_sftp_client() as sftp:
                opened = time.perf_counter_ns()
                attrs = await sftp.stat(path)
                details: dict[str, Any] = {"path": path}
                if _is_dir(attrs):
                    count, truncated, largest, largest_size = await _listing(
                        sftp, path, config.read_cap
                    )
                    details.update(kind="directory", entries=count, truncated=truncated)
                    download = _join(path, largest) if largest is not None else None
                    download_size = largest_size
                else:
                    details.update(kind="file", size=attrs.size)
                    download = path if _is_regular(attrs) else None
                    download_size = attrs.size or 0
                listed = time.perf_counter_ns()
                transfer_bytes, transfer_ns = 0, None
                if config.throughput:
                    if download is None:
                        raise ProbeError(f"no regular file to download at {path!r}")
                    details.update(download=download, download_size=download_size)
                    transfer_bytes, transfer_ns = await _download(sftp, download, config.read_cap)
    except TimeoutError:
        reason = attempt.not_ssh_reason()
        if reason:
            raise ProbeError(reason) from None
        raise
    except asyncssh.PermissionDenied:
        raise ProbeError("authentication failed", failure="other") from None
    except asyncssh.SFTPNoSuchFile:
        raise ProbeError(f"no such file or directory: {scrub(path, target)!r}") from None
    except asyncssh.SFTPPermissionDenied:
        raise ProbeError(f"permission denied: {scrub(path, target)!r}") from None
    except asyncssh.SFTPError as exc:
        raise ProbeError(f"SFTP error: {scrub(str(exc.reason), target)}") from None
    except asyncssh.ChannelOpenError as exc:
        raise ProbeError(f"SFTP subsystem not available: {scrub(exc.reason, target)}") from None
    except (asyncssh.Error, ValueError) as exc:
        reason = attempt.not_ssh_reason()
        raise ProbeError(reason or f"SSH failed: {scrub(str(exc), target)}") from None
    finally:
        if session is not None:
            await close_session(session.conn)

    ident_ns = session.ident_ns
    connected_at = attempt.connected_at or 0
    ttfb_ns = None if ident_ns is None else ident_ns - connected_at
    login_ns = session.ready_ns - (ttfb_ns or 0)
    key = session.conn.get_server_host_key()
    details.update(
        banner=printable(session.tap.received.ident or ""),
        login_ms=login_ns / 1e6,
        sftp_ms=(opened - start) / 1e6,
        list_ms=(listed - opened) / 1e6,
        **algorithm_details(session.tap),
    )
    if key is not None:
        details["host_key_fingerprint"] = fingerprint_sha256(key.public_data)
    total_ns = session.connect_ns + session.ready_ns + (listed - start)
    return Sample(
        ok=True,
        latency_ms=total_ns / 1e6,
        phases_ms={
            "connect": session.connect_ns / 1e6,
            "tls": None,
            "ttfb": None if ttfb_ns is None else ttfb_ns / 1e6,
            "transfer": None if transfer_ns is None else transfer_ns / 1e6,
        },
        transfer_bytes=transfer_bytes,
        transfer_s=None if transfer_ns is None else transfer_ns / 1e9,
        details=details,
    )
