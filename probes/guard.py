"""Target resolution and the allow/deny decision (the SSRF guard).

Every probe goes through :func:`resolve_target` before a single packet is sent:

1. The URL is parsed with :mod:`urllib.parse`; its scheme must be in
   :data:`probes.registry.REGISTRY`, and the port comes from the URL or the
   registry's default (``tcp`` has none, so it needs an explicit port).
2. A host that *looks* numeric is parsed here, not by the C library, so every
   spelling an attacker might use for ``127.0.0.1`` (``2130706433``,
   ``0x7f000001``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``127.1``) is recognised and
   checked as the address it really is. The rules are the WHATWG URL
   standard's IPv4 parser, which is also what ``inet_aton`` accepts.
3. A name is resolved exactly once, and *every* A and AAAA answer is checked: a
   name with one public and one private answer is refused, because the
   connection could go to either.
4. IPv6 addresses that carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96``,
   IPv4-translated ``::ffff:0:0:0/96``, IPv4-compatible ``::/96``, NAT64
   ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo
   ``2001::/32``, ISATAP interface ids) are checked for the embedded address too.
5. The probe connects to :attr:`Target.address`, the address that was checked,
   so a second resolution can never swap it (DNS rebinding).

Loopback, private, link-local, shared (CGNAT ``100.64.0.0/10``), multicast,
reserved and unspecified addresses are refused unless a network the caller
allows contains them; cloud metadata addresses are refused always. The guard
reads no settings and no environment: its caller passes the allowed networks
(the ``probe`` command reads ``PROBE_ALLOWED_NETWORKS`` and passes them).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from pydantic import SecretStr

from probes.base import TOKEN_USERINFO_SCHEMES, IPNetwork, Target
from probes.registry import REGISTRY, schemes

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ENV_ALLOWED = "PROBE_ALLOWED_NETWORKS"
MASK = "****"

# Refused even when PROBE_ALLOWED_NETWORKS covers them: the instance metadata
# services of AWS (IPv4 and IPv6), GCP and Azure (169.254.169.254) and Alibaba.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated by RFC 4291, still routable by SIT
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT, RFC 2765
# ISATAP interface identifiers (RFC 5214): 0000:5efe or 0200:5efe, then the IPv4 address.
ISATAP_IDS = frozenset({bytes.fromhex("00005efe"), bytes.fromhex("02005efe")})

# WHATWG: a host whose last label is a number is an IPv4 address or invalid.
_NUMBER_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


class GuardError(ValueError):
    """The URL is invalid or its target is not allowed; the message says why."""


class NotAllowedError(GuardError):
    """The URL is valid but its address is one probes may not reach."""


class ResolveError(OSError):
    """The name did not resolve: the target did not answer (exit 1, not 2)."""


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str
    port: int
    path: str
    query: str
    username: str | None
    password: str | None
    masked_url: str
    literal: IPAddress | None


# --- URL parsing --------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with any password (or NATS token) replaced by ``****``, safe to print and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if parts.password is not None:
        masked = f"{userinfo.split(':', 1)[0]}:{MASK}"
    elif at and parts.scheme.lower() in TOKEN_USERINFO_SCHEMES:
        masked = MASK  # nats://TOKEN@host: the user slot holds the secret
    else:
        return url
    return SplitResult(
        parts.scheme, f"{masked}@{hostport}", parts.path, parts.query, parts.fragment
    ).geturl()


_HEX_LABEL = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL_LABEL = re.compile(r"0[0-7]+")
_DECIMAL_LABEL = re.compile(r"0|[1-9][0-9]*")


def _parse_ipv4_number(label: str) -> int | None:
    """One label of a WHATWG IPv4 host: decimal, ``0x`` hex or ``0``-led octal.

    Matched strictly first: ``int()`` alone would also take signs, spaces and
    underscores (``+1``, ``0x7_f``), which no resolver reads as a number.
    """
    if _HEX_LABEL.fullmatch(label):
        return int(label[2:] or "0", 16)
    if _OCTAL_LABEL.fullmatch(label):
        return int(label[1:], 8)
    if _DECIMAL_LABEL.fullmatch(label):
        return int(label)
    return None


def parse_ipv4_host(host: str) -> ipaddress.IPv4Address | None:
    """Parse the IPv4 spellings ``inet_aton`` and browsers accept.

    Returns None when the host is a name. Raises GuardError when it ends in a
    number but is not a valid address (``1.2.3.4.5``, ``256.1``, ``08.1``):
    the C library or a proxy might read such a host differently than we do.
    """
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]  # one trailing dot is allowed, as in DNS
    if not labels or not _NUMBER_LABEL.fullmatch(labels[-1]):
        return None
    if len(labels) > 4:
        raise GuardError(f"host {host!r} looks like an IPv4 address but has too many parts")
    numbers: list[int] = []
    for label in labels:
        number = _parse_ipv4_number(label) if label else None
        if number is None:
            raise GuardError(f"host {host!r} looks like an IPv4 address but {label!r} is no number")
        numbers.append(number)
    # All but the last part are single bytes; the last fills the remaining bytes.
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise GuardError(f"host {host!r} looks like an IPv4 address but a part is out of range")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is a literal, else None (a name)."""
    if ":" in host:
        if "%" in host:
            raise GuardError("IPv6 zone identifiers are not supported in probe targets")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise GuardError(f"host {host!r} is not a valid IPv6 address") from exc
    if "%" in host:
        raise GuardError(f"host {host!r} is percent-encoded; write it plainly")
    return parse_ipv4_host(host)


def parse_url(url: str) -> ParsedURL:
    """Split and validate a probe URL without resolving anything."""
    if not isinstance(url, str) or not url.strip():
        raise GuardError("the URL is empty")
    url = url.strip()
    masked = mask_url(url)
    try:
        parts = urlsplit(url)
        port_text = parts.port
    except ValueError as exc:
        hostport = urlsplit(url).netloc.rpartition("@")[2] if "[" not in url else ""
        if hostport.count(":") > 1:
            raise GuardError(
                "an IPv6 address needs brackets in a URL, e.g. tcp://[2001:db8::1]:443"
            ) from exc
        raise GuardError(f"invalid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in REGISTRY:
        known = ", ".join(schemes())
        raise GuardError(f"unknown scheme {scheme or '(none)'!r}; known schemes: {known}")
    host = parts.hostname
    if not host:
        raise GuardError("the URL has no host")
    if any(ch.isspace() or not ch.isprintable() for ch in host) or "\\" in host:
        raise GuardError(f"the host {host!r} contains invalid characters")
    if port_text == 0:
        raise GuardError("port 0 cannot be probed; give a port from 1 to 65535")
    port = port_text if port_text is not None else REGISTRY[scheme].default_port
    if port == 0:
        raise GuardError(f"a {scheme}:// URL needs an explicit port (1-65535)")
    literal = parse_host(host)
    if literal is None:
        try:
            # The codec the resolver will use: a name it cannot encode (an
            # empty or over-long label) is invalid input, not a silent target.
            host.encode("idna")
        except UnicodeError as exc:
            raise GuardError(f"host {host!r} is not a valid host name ({exc})") from exc
    # A numeric host is named by its canonical spelling from here on, so the
    # Host header and logs show the address that was actually checked.
    host_name = str(literal) if literal is not None else host.rstrip(".").lower()
    return ParsedURL(
        scheme=scheme,
        host=host_name,
        port=port,
        path=parts.path or "/",
        query=parts.query,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        masked_url=masked,
        literal=literal,
    )


# --- The address policy -------------------------------------------------------


AllowedNetworks = str | Iterable[str | IPNetwork]
"""What a caller passes as the policy: ``"10.0.0.0/8,::1/128"``, or CIDR strings or networks."""


def parse_networks(value: AllowedNetworks) -> tuple[IPNetwork, ...]:
    """The allowed networks a caller gave, as networks; GuardError for a malformed entry.

    The guard never reads the environment or Django's settings: the caller
    (the ``probe`` command, a Celery task) decides the policy and passes it.
    A string is split at commas (the ``PROBE_ALLOWED_NETWORKS`` format); an
    empty string or sequence allows nothing beyond public addresses.
    """
    items: Iterable[str | IPNetwork] = value.split(",") if isinstance(value, str) else value
    networks: list[IPNetwork] = []
    for item in items:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise GuardError(f"{ENV_ALLOWED}: {text!r} is not a CIDR network") from exc
    return tuple(dict.fromkeys(networks))


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries.

    IPv4-mapped and IPv4-translated (SIIT), the deprecated IPv4-compatible
    ``::a.b.c.d``, NAT64 (at the /96 position), 6to4, Teredo and ISATAP. Each
    of these can deliver packets to the IPv4 host inside on some network, so
    the guard judges that host too.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    value = int(address)
    packed = address.packed
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in IPV4_TRANSLATED or (address in IPV4_COMPATIBLE and value > 1):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in NAT64_WELL_KNOWN or address in NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if packed[8:12] in ISATAP_IDS:
        found.append(ipaddress.IPv4Address(packed[12:]))
    return list(dict.fromkeys(found))


def metadata_candidates(address: IPAddress) -> list[IPAddress]:
    """Every address ``address`` might reach, for the always-refused metadata check.

    Beyond :func:`embedded_ipv4`: a local-use NAT64 prefix (``64:ff9b:1::/48``)
    may be a /48, /56, /64 or /96 of the operator's choosing, and RFC 6052
    puts the IPv4 bytes in a different place for each. Which one applies is
    unknowable here, so a metadata address in any of them refuses.
    """
    found: list[IPAddress] = [address, *embedded_ipv4(address)]
    if isinstance(address, ipaddress.IPv6Address) and address in NAT64_LOCAL:
        packed = address.packed
        # RFC 6052 section 2.2: bytes around the reserved byte 8 for /48 and /56,
        # bytes 9-12 for /64 (bytes 12-15 for /96 are in embedded_ipv4 already).
        for indices in ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12)):
            found.append(ipaddress.IPv4Address(bytes(packed[i] for i in indices)))
    return found


def _special_reason(address: IPAddress) -> str | None:
    """Why an address is not a public one, or None when it is public."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "shared (CGNAT 100.64.0.0/10)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if isinstance(address, ipaddress.IPv6Address) and address in NAT64_LOCAL:
        return "private (local-use NAT64)"
    if not address.is_global:
        return "not globally routable"
    return None


def refusal(address: IPAddress, networks: Sequence[IPNetwork]) -> tuple[str, str] | None:
    """Why a probe may not send packets to ``address``, or None when it may.

    The address and every IPv4 address embedded in it must each be public or
    inside an allowed network; metadata addresses are refused regardless.
    Returns ``(subject, reason)``, e.g. ``("127.0.0.1", "a loopback address; ...")``.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # An IPv4-mapped address reaches the IPv4 host itself: judge that one.
        address = address.ipv4_mapped
    views: list[IPAddress] = [address, *embedded_ipv4(address)]

    def subject(view: IPAddress) -> str:
        return str(address) if view == address else f"{address} (which embeds {view})"

    for view in metadata_candidates(address):
        if view in METADATA_ADDRESSES:
            return subject(view), "a cloud metadata address; probes never go there"
    for view in views:
        # A well-known NAT64 address is a translator's way to reach the IPv4
        # address it embeds (Python calls the prefix reserved): judge that one.
        if isinstance(view, ipaddress.IPv6Address) and view in NAT64_WELL_KNOWN:
            continue
        reason = _special_reason(view)
        if reason is None:
            continue
        if any(view.version == net.version and view in net for net in networks):
            continue
        article = "an" if reason[0] in "aeiou" else "a"
        allow = f"set {ENV_ALLOWED} to allow such networks"
        return subject(view), f"{article} {reason} address; {allow}"
    return None


def check_address(address: IPAddress, networks: Sequence[IPNetwork]) -> None:
    """Raise NotAllowedError unless a probe may send packets to ``address``."""
    refused = refusal(address, networks)
    if refused is not None:
        raise NotAllowedError(f"{refused[0]} is {refused[1]}")


# --- Resolution ---------------------------------------------------------------


async def _resolve(host: str, port: int, timeout_s: float) -> tuple[list[IPAddress], float]:
    loop = asyncio.get_running_loop()
    started = time.perf_counter_ns()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise ResolveError(f"resolving {host!r} timed out after {timeout_s:g} s") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"could not resolve {host!r}: {exc}") from exc
    dns_ms = (time.perf_counter_ns() - started) / 1e6
    answers: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if address not in answers:
            answers.append(address)
    if not answers:
        raise ResolveError(f"{host!r} has no A or AAAA records")
    return answers, dns_ms


def choose_answer(host: str, answers: list[IPAddress], networks: Sequence[IPNetwork]) -> IPAddress:
    """The address to connect to, once every answer for ``host`` passed.

    One refused answer refuses the name: a connection could go to any of
    them (and a later resolution could prefer that one).
    """
    if not answers:
        raise ResolveError(f"{host!r} has no A or AAAA records")
    for answer in answers:
        refused = refusal(answer, networks)
        if refused is not None:
            raise NotAllowedError(f"{host} resolves to {refused[0]}, {refused[1]}")
    address = answers[0]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address


async def resolve_target(
    url: str, *, allowed_networks: AllowedNetworks, timeout_s: float = 5.0
) -> Target:
    """Parse, resolve once and check ``url``; the Target to connect to.

    ``allowed_networks`` is the caller's policy (:func:`parse_networks`): the
    networks beyond public addresses that probes may reach. Raises GuardError
    (invalid), NotAllowedError (not allowed) or ResolveError (no answer).
    """
    parsed = parse_url(url)
    networks = parse_networks(allowed_networks)
    if parsed.literal is not None:
        address = parsed.literal
        check_address(address, networks)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        dns_ms: float | None = None
    else:
        answers, dns_ms = await _resolve(parsed.host, parsed.port, timeout_s)
        address = choose_answer(parsed.host, answers, networks)
    return Target(
        url=parsed.masked_url,
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        address=str(address),
        path=parsed.path,
        query=parsed.query,
        username=parsed.username,
        password=SecretStr(parsed.password) if parsed.password is not None else None,
        dns_ms=dns_ms,
        allowed_networks=networks,
    )


async def check_redirect(location: str, current: Target, timeout_s: float = 5.0) -> Target:
    """Check one redirect hop: ``location`` relative to ``current``.

    Only http and https hops are followed; the hop is resolved and checked
    like a fresh target, with the policy ``current`` was checked with, and
    credentials are never carried to it.
    """
    base_scheme = "https" if current.tls else "http"
    host = f"[{current.host}]" if ":" in current.host else current.host
    base = f"{base_scheme}://{host}:{current.port}{current.path}"
    if current.query:
        base += f"?{current.query}"
    joined = urljoin(base, location.strip())
    scheme = urlsplit(joined).scheme.lower()
    if scheme not in ("http", "https"):
        raise GuardError(f"redirect to {mask_url(joined)!r} leaves http(s); not followed")
    parts = urlsplit(joined)
    if parts.password is not None or parts.username is not None:
        hostport = parts.netloc.rpartition("@")[2]
        joined = SplitResult(parts.scheme, hostport, parts.path, parts.query, "").geturl()
    return await resolve_target(
        joined, allowed_networks=current.allowed_networks, timeout_s=timeout_s
    )
