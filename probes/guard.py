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

What may not be probed comes from one table, :data:`SPECIAL_BLOCKS`: every row
of the IANA IPv4 and IPv6 Special-Purpose Address Registries (name, RFC and
"Globally Reachable" flag as the registry gives them), IPv4 multicast, and the
IPv6 address space outside ``2000::/3`` (reserved, the deprecated site-local
``fec0::/10``, multicast). An address is judged by the most specific block that
contains it; one whose block is not globally reachable (loopback, private,
link-local, shared ``100.64.0.0/10``, documentation, benchmarking, reserved...)
is refused unless a network the caller allows contains it. Python's
``ipaddress`` flags are not used: their lists differ between Python releases
and lag the registries. Cloud metadata addresses are refused always. The guard
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


@dataclass(frozen=True)
class SpecialBlock:
    """One row of an IANA registry of addresses that are not plain global unicast.

    ``name`` and ``rfc`` are the registry's columns; ``reachable`` is its
    "Globally Reachable" column: True, False, or None where the registry says
    N/A, leaves it blank (a deprecated block) or has no such column (the address
    space and multicast registries). ``kind`` is the word the refusal uses.
    ``embeds_ipv4``: the block stands for the IPv4 address it carries
    (IPv4-mapped, 6to4), so that address alone decides.
    """

    network: IPNetwork
    name: str
    rfc: str
    reachable: bool | None
    registry: str
    kind: str
    embeds_ipv4: bool = False

    @property
    def refused(self) -> bool:
        """Whether an address whose most specific block this is may not be probed
        (unless an allowed network covers it): everything not globally reachable."""
        return self.reachable is not True and not self.embeds_ipv4


V4_SPECIAL = "IANA IPv4 Special-Purpose Address Registry"
V6_SPECIAL = "IANA IPv6 Special-Purpose Address Registry"
V4_MULTICAST = "IANA IPv4 Multicast Address Space Registry"
V6_SPACE = "IANA Internet Protocol Version 6 Address Space"


def _row(
    cidr: str,
    name: str,
    rfc: str,
    reachable: bool | None,
    kind: str,
    registry: str = "",
    *,
    embeds_ipv4: bool = False,
) -> SpecialBlock:
    network = ipaddress.ip_network(cidr)
    registry = registry or (V4_SPECIAL if network.version == 4 else V6_SPECIAL)
    return SpecialBlock(network, name, rfc, reachable, registry, kind, embeds_ipv4)


_RESERVED_V6 = "Reserved by IETF"

# Every IPv4 and IPv6 block the IANA registries set apart from global unicast, as the
# registries list them (special-purpose rows as of the 2025 updates: RFC 9637, 9602,
# 9665, 9780), plus IPv4 multicast and the IPv6 space outside 2000::/3 (reserved,
# deprecated site-local, multicast). An address is judged by the MOST SPECIFIC block
# that contains it (192.0.0.9/32 is globally reachable inside 192.0.0.0/24, which is
# not); an address in no block is global unicast.
SPECIAL_BLOCKS: tuple[SpecialBlock, ...] = (
    # IPv4 Special-Purpose Address Registry
    _row("0.0.0.0/8", '"This network"', "RFC 791, Section 3.2", False, "this-network"),
    _row(
        "0.0.0.0/32",
        '"This host on this network"',
        "RFC 1122, Section 3.2.1.3",
        False,
        "unspecified",
    ),
    _row("10.0.0.0/8", "Private-Use", "RFC 1918", False, "private"),
    _row("100.64.0.0/10", "Shared Address Space", "RFC 6598", False, "shared (CGNAT)"),
    _row("127.0.0.0/8", "Loopback", "RFC 1122, Section 3.2.1.3", False, "loopback"),
    _row("169.254.0.0/16", "Link Local", "RFC 3927", False, "link-local"),
    _row("172.16.0.0/12", "Private-Use", "RFC 1918", False, "private"),
    _row(
        "192.0.0.0/24",
        "IETF Protocol Assignments",
        "RFC 6890, Section 2.1",
        False,
        "IETF protocol assignment",
    ),
    _row(
        "192.0.0.0/29",
        "IPv4 Service Continuity Prefix",
        "RFC 7335",
        False,
        "IETF protocol assignment",
    ),
    _row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False, "dummy"),
    _row("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True, "anycast"),
    _row("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True, "anycast"),
    _row(
        "192.0.0.170/32",
        "NAT64/DNS64 Discovery",
        "RFC 8880, RFC 7050 Section 2.2",
        False,
        "NAT64 discovery",
    ),
    _row(
        "192.0.0.171/32",
        "NAT64/DNS64 Discovery",
        "RFC 8880, RFC 7050 Section 2.2",
        False,
        "NAT64 discovery",
    ),
    _row("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False, "documentation"),
    _row("192.31.196.0/24", "AS112-v4", "RFC 7535", True, "AS112"),
    _row("192.52.193.0/24", "AMT", "RFC 7450", True, "AMT"),
    # Deprecated in 2015: the registry removed the block's flags (none says reachable).
    _row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None, "deprecated"),
    _row("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False, "6a44 relay"),
    _row("192.168.0.0/16", "Private-Use", "RFC 1918", False, "private"),
    _row("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True, "AS112"),
    _row("198.18.0.0/15", "Benchmarking", "RFC 2544", False, "benchmarking"),
    _row("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False, "documentation"),
    _row("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False, "documentation"),
    _row("240.0.0.0/4", "Reserved", "RFC 1112, Section 4", False, "reserved"),
    _row(
        "255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 Section 7", False, "broadcast"
    ),
    # IPv4 Multicast Address Space Registry
    _row("224.0.0.0/4", "Multicast", "RFC 5771", None, "multicast", V4_MULTICAST),
    # IPv6 Special-Purpose Address Registry
    _row("::1/128", "Loopback Address", "RFC 4291", False, "loopback"),
    _row("::/128", "Unspecified Address", "RFC 4291", False, "unspecified"),
    # Judged as the IPv4 host it maps to: a socket given one reaches that host.
    _row(
        "::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False, "IPv4-mapped", embeds_ipv4=True
    ),
    # Reachable, and the IPv4 address inside is judged too (see embedded_ipv4).
    _row("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True, "NAT64"),
    _row("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", False, "private (local-use NAT64)"),
    _row("100::/64", "Discard-Only Address Block", "RFC 6666", False, "discard-only"),
    _row("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False, "dummy"),
    _row("2001::/23", "IETF Protocol Assignments", "RFC 2928", False, "IETF protocol assignment"),
    # N/A in the registry: reached through whichever Teredo relay, so refused.
    _row("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None, "Teredo"),
    _row("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True, "anycast"),
    _row("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True, "anycast"),
    _row(
        "2001:1::3/128",
        "DNS-SD Service Registration Protocol Anycast Address",
        "RFC 9665",
        True,
        "anycast",
    ),
    _row("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", False, "benchmarking"),
    _row("2001:3::/32", "AMT", "RFC 7450", True, "AMT"),
    _row("2001:4:112::/48", "AS112-v6", "RFC 7535", True, "AS112"),
    _row("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None, "deprecated"),
    _row("2001:20::/28", "ORCHIDv2", "RFC 7343", True, "ORCHIDv2"),
    _row(
        "2001:30::/28",
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "RFC 9374",
        True,
        "DET",
    ),
    _row("2001:db8::/32", "Documentation", "RFC 3849", False, "documentation"),
    # N/A in the registry: as reachable as the IPv4 address it carries, which is judged.
    _row("2002::/16", "6to4", "RFC 3056", None, "6to4", embeds_ipv4=True),
    _row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True, "AS112"),
    _row("3fff::/20", "Documentation", "RFC 9637", False, "documentation"),
    _row("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False, "SRv6 SID"),
    _row("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", False, "private (unique-local)"),
    _row("fe80::/10", "Link-Local Unicast", "RFC 4291", False, "link-local"),
    # IPv6 Address Space: all but 2000::/3 (and the rows above) is reserved or special.
    # ::/8 holds the IPv4-compatible ::/96 (deprecated) and IPv4-translated ::ffff:0:0:0/96.
    _row("::/8", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("100::/8", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("200::/7", _RESERVED_V6, "RFC 4048", None, "reserved", V6_SPACE),
    _row("400::/6", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("800::/5", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("1000::/4", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("4000::/3", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("6000::/3", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("8000::/3", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("a000::/3", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("c000::/3", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("e000::/4", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("f000::/5", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("f800::/6", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row("fe00::/9", _RESERVED_V6, "RFC 4291", None, "reserved", V6_SPACE),
    _row(
        "fec0::/10",
        "Reserved by IETF (site-local, deprecated)",
        "RFC 3879",
        None,
        "site-local (deprecated)",
        V6_SPACE,
    ),
    _row("ff00::/8", "Multicast", "RFC 4291", None, "multicast", V6_SPACE),
)

# Most specific first, so the first block that contains an address is its block.
_BY_SPECIFICITY: tuple[SpecialBlock, ...] = tuple(
    sorted(SPECIAL_BLOCKS, key=lambda row: row.network.prefixlen, reverse=True)
)


def special_block(address: IPAddress) -> SpecialBlock | None:
    """The most specific registry block containing ``address``; None for global unicast."""
    for row in _BY_SPECIFICITY:
        if row.network.version == address.version and address in row.network:
            return row
    return None


def _special_reason(address: IPAddress) -> str | None:
    """Why an address may not be probed by default (its registry row), or None."""
    row = special_block(address)
    if row is None or not row.refused:
        return None
    article = "an" if row.kind[0].lower() in "aeiou" else "a"
    return f"{article} {row.kind} address ({row.network} {row.name}, {row.rfc})"


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
        reason = _special_reason(view)
        if reason is None:
            continue
        if any(view.version == net.version and view in net for net in networks):
            continue
        return subject(view), f"{reason}; set {ENV_ALLOWED} to allow such networks"
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
