"""The SSRF guard: every spelling of an address, every answer, nothing sent."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from probes.base import ProbeConfig, Target
from probes.guard import (
    SPECIAL_BLOCKS,
    GuardError,
    IPAddress,
    NotAllowedError,
    ResolveError,
    SpecialBlock,
    check_address,
    check_redirect,
    choose_answer,
    embedded_ipv4,
    mask_url,
    parse_host,
    parse_ipv4_host,
    parse_networks,
    parse_url,
    resolve_target,
    special_block,
)
from probes.runner import run_probe


def resolve(url: str, allowed: str = "") -> Target:
    """The guard's Target for ``url`` under the policy ``allowed`` (CIDRs, comma-separated)."""
    return asyncio.run(resolve_target(url, allowed_networks=allowed, timeout_s=5.0))


# --- Spellings of one address ----------------------------------------------------

LOOPBACK_SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # one decimal number
    ("0x7f000001", "127.0.0.1"),  # one hex number
    ("0X7F000001", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),  # hex first part
    ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),  # octal first part
    ("0177.0.0.01", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),  # one octal number
    ("127.1", "127.0.0.1"),  # short form: last part fills three bytes
    ("127.0.1", "127.0.0.1"),  # short form: last part fills two bytes
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("0x7f.1", "127.0.0.1"),
]


@pytest.mark.parametrize(("host", "canonical"), LOOPBACK_SPELLINGS)
def test_ipv4_spellings_parse_to_the_real_address(host: str, canonical: str) -> None:
    assert parse_host(host) == ipaddress.ip_address(canonical)


@pytest.mark.parametrize(("host", "canonical"), LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_is_refused_by_default(
    default_policy: str, host: str, canonical: str
) -> None:
    with pytest.raises(GuardError, match="loopback"):
        resolve(f"http://{host}/", default_policy)


@pytest.mark.parametrize(("host", "canonical"), LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_is_allowed_by_the_env_and_connects_to_the_canonical_address(
    allow_loopback: str, host: str, canonical: str
) -> None:
    target = resolve(f"http://{host}:8080/x", allow_loopback)
    assert target.address == canonical
    assert target.host == canonical  # the Host header names what was checked
    assert target.dns_ms is None  # a literal is not resolved


@pytest.mark.parametrize(
    ("host", "canonical"),
    [("10.1", "10.0.0.1"), ("10.0x10.1", "10.16.0.1"), ("192.168.257", "192.168.1.1")],
)
def test_short_private_forms(default_policy: str, host: str, canonical: str) -> None:
    assert parse_host(host) == ipaddress.ip_address(canonical)
    with pytest.raises(GuardError, match="private"):
        resolve(f"tcp://{host}:80", default_policy)


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",
        "256.0.0.1",
        "1.256.1",
        "4294967296",
        "08.0.0.1",
        "0x7g.0.0.1",
        "1..2.3",
        "foo.123",
        "+1.0.0.1",  # int() would take the sign
        "0x7_f.0.0.1",  # and underscores
        "1_0.0.0.1",
    ],
)
def test_hosts_that_end_in_a_number_but_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(GuardError, match="IPv4"):
        parse_url(f"http://{host}/")


def test_percent_encoded_host_is_refused() -> None:
    with pytest.raises(GuardError, match="percent"):
        parse_url("http://%31%32%37.0.0.1/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
        ("http://[::ffff:7f00:1]/", "loopback"),  # IPv4-mapped, hex
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64 of 127.0.0.1
        ("http://[64:ff9b::10.1.2.3]/", "private"),  # NAT64 of 10.1.2.3
        ("http://[2002:7f00:1::1]/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://[2002:c0a8:101::1]/", "private"),  # 6to4 of 192.168.1.1
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::]/", "unspecified"),
        ("http://[::127.0.0.1]/", "reserved"),  # deprecated IPv4-compatible
        ("http://0/", "unspecified"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://169.254.1.1/", "link-local"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://100.127.255.254/", "CGNAT"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://239.255.255.250/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "broadcast"),
        (
            "http://192.0.2.1/",
            r"documentation address \(192\.0\.2\.0/24 Documentation \(TEST-NET-1",
        ),
        ("http://198.18.0.1/", "benchmarking address"),
    ],
)
def test_special_addresses_are_refused_by_default(
    default_policy: str, url: str, reason: str
) -> None:
    with pytest.raises(GuardError, match=reason):
        resolve(url, default_policy)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://8.8.8.8/", "8.8.8.8"),
        ("http://134744072/", "8.8.8.8"),  # decimal spelling of a public address
        ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("http://[::ffff:8.8.8.8]/", "8.8.8.8"),  # mapped: connect to the IPv4 host
        ("http://[64:ff9b::808:808]/", "64:ff9b::808:808"),  # NAT64 of a public address
        ("http://[2002:808:808::1]/", "2002:808:808::1"),  # 6to4 of a public address
    ],
)
def test_public_addresses_pass_without_any_allowance(
    default_policy: str, url: str, address: str
) -> None:
    # Only the guard runs here: nothing is sent to these addresses.
    assert resolve(url, default_policy).address == address


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[fd00:ec2::254]/",
        "http://[fd00:ec2:0:0:0:0:0:254]/",
        "http://[FD00:EC2::0254]/",
        "http://100.100.100.200/",
        "http://169.254.43518/",  # short forms
        "http://169.16689662/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://169.254.169.254./",
        "http://1684301000/",  # 100.100.100.200 as one number
        "http://0x646464c8/",
        "http://0144.0144.0144.0310/",
        "http://100.6579400/",
        "http://[::ffff:100.100.100.200]/",
        "http://[64:ff9b::6464:64c8]/",
        "http://[2002:6464:64c8::1]/",
        "http://[::169.254.169.254]/",  # deprecated IPv4-compatible
        "http://[::6464:64c8]/",
        "http://[::ffff:0:169.254.169.254]/",  # IPv4-translated (SIIT)
        "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64, /96 position
        "http://[64:ff9b:1:a9fe:a9:fe00::]/",  # local-use NAT64, /48 position
        "http://[64:ff9b:1:a9:fe:a9fe::]/",  # /56 position
        "http://[64:ff9b:1:0:a9:fea9:fe00:0]/",  # /64 position
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo client 169.254.169.254
        "http://[2001:db8::5efe:169.254.169.254]/",  # ISATAP
        "http://[fe80::200:5efe:a9fe:a9fe]/",
    ],
)
def test_metadata_addresses_are_refused_even_when_allowed(url: str) -> None:
    allowed = "0.0.0.0/0,::/0"
    with pytest.raises(GuardError, match="metadata"):
        resolve(url, allowed)


def test_allowance_is_per_network() -> None:
    allowed = " 10.0.0.0/8 , "
    assert resolve("tcp://10.9.8.7:22", allowed).address == "10.9.8.7"
    with pytest.raises(GuardError, match="private"):
        resolve("tcp://192.168.1.1:22", allowed)
    with pytest.raises(GuardError, match="loopback"):
        resolve("tcp://127.0.0.1:22", allowed)


def test_nat64_needs_the_embedded_address_allowed() -> None:
    allowed = "127.0.0.0/8"
    assert resolve("http://[64:ff9b::7f00:1]/", allowed).address == "64:ff9b::7f00:1"
    allowed = "64:ff9b::/96"
    with pytest.raises(GuardError, match=r"which embeds 127\.0\.0\.1"):
        resolve("http://[64:ff9b::7f00:1]/", allowed)


@pytest.mark.parametrize(
    "host",
    ["::10.0.0.1", "::ffff:0:10.0.0.1", "2001:db8::5efe:10.0.0.1", "2606:4700::200:5efe:a00:1"],
)
def test_allowing_all_ipv6_does_not_allow_the_private_ipv4_inside(host: str) -> None:
    # IPv4-compatible, IPv4-translated and ISATAP addresses can carry packets
    # to the IPv4 host inside, so that host must be allowed too.
    allowed = "::/0"
    with pytest.raises(GuardError, match=r"which embeds 10\.0\.0\.1\) is a private"):
        resolve(f"http://[{host}]/", allowed)
    allowed = "::/0,10.0.0.0/8"
    assert resolve(f"http://[{host}]/", allowed).address == str(ipaddress.ip_address(host))


def test_the_policy_is_the_callers_alone(monkeypatch: pytest.MonkeyPatch, settings: object) -> None:
    # Neither the environment nor Django's settings widen what the caller allowed.
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    settings.PROBE_ALLOWED_NETWORKS = "127.0.0.0/8"  # type: ignore[attr-defined]
    with pytest.raises(GuardError, match="loopback"):
        resolve("tcp://127.0.0.1:9", "")
    assert resolve("tcp://127.0.0.1:9", "127.0.0.1/32").address == "127.0.0.1"
    networks = (ipaddress.ip_network("127.0.0.0/8"),)
    assert asyncio.run(resolve_target("tcp://127.0.0.1:9", allowed_networks=networks)).port == 9


def test_the_policy_travels_with_the_target_for_redirect_hops() -> None:
    target = resolve("tcp://127.0.0.1:9", "127.0.0.0/8, ::1/128")
    assert [str(n) for n in target.allowed_networks] == ["127.0.0.0/8", "::1/128"]
    assert "allowed_networks" not in target.model_dump()


def test_a_malformed_allowance_is_an_error_not_ignored() -> None:
    allowed = "127.0.0.0/8,not-a-net"
    with pytest.raises(GuardError, match="not-a-net"):
        resolve("tcp://127.0.0.1:9", allowed)


# --- Names: resolved once, every answer checked -------------------------------


def test_a_name_resolving_to_loopback_is_refused_by_default(default_policy: str) -> None:
    with pytest.raises(GuardError, match="loopback"):
        resolve("http://localhost:8000/", default_policy)


def test_a_name_resolving_to_loopback_is_allowed_by_the_env(allow_loopback: str) -> None:
    target = resolve("http://LocalHost.:8000/path?q=1", allow_loopback)
    answers = {info[4][0] for info in socket.getaddrinfo("localhost", 8000)}
    assert target.address in answers
    assert target.host == "localhost"  # the name stays for SNI and Host
    assert target.dns_ms is not None and target.dns_ms >= 0
    assert (target.path, target.query, target.port) == ("/path", "q=1", 8000)


def test_every_answer_must_be_allowed() -> None:
    answers = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo("localhost", 80)}
    # Allow only one of localhost's answers when it has several; with one
    # answer, allow a network that does not contain it.
    allowed = "127.0.0.0/8" if any(a.version == 6 for a in answers) else "10.0.0.0/8"
    with pytest.raises(GuardError, match="loopback"):
        resolve("tcp://localhost:80", allowed)


@pytest.mark.parametrize(
    "answers",
    [
        ["93.184.215.14", "10.0.0.5"],
        ["10.0.0.5", "93.184.215.14"],
        ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"],
        ["93.184.215.14", "::ffff:169.254.169.254"],
    ],
)
def test_one_refused_answer_refuses_the_name(default_policy: str, answers: list[str]) -> None:
    addresses = [ipaddress.ip_address(a) for a in answers]
    with pytest.raises(GuardError, match=r"^example\.org resolves to "):
        choose_answer("example.org", addresses, parse_networks(default_policy))


def test_the_first_answer_is_used_when_all_pass() -> None:
    allowed = "10.0.0.0/8"
    addresses = [ipaddress.ip_address(a) for a in ("10.0.0.5", "93.184.215.14")]
    assert choose_answer("example.org", addresses, parse_networks(allowed)) == addresses[0]
    mapped = [ipaddress.ip_address("::ffff:93.184.215.14")]
    assert str(choose_answer("example.org", mapped, [])) == "93.184.215.14"


def test_check_address_judges_each_answer_alone() -> None:
    networks = [ipaddress.ip_network("127.0.0.0/8")]
    check_address(ipaddress.ip_address("127.0.0.5"), networks)
    with pytest.raises(GuardError, match="loopback"):
        check_address(ipaddress.ip_address("::1"), networks)


def test_an_unresolvable_name_is_not_a_guard_refusal(default_policy: str) -> None:
    # .invalid never resolves (RFC 6761); the target did not answer: exit 1, not 2.
    with pytest.raises(ResolveError):
        resolve("tcp://no-such-host.invalid:80", default_policy)


# --- URL validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gopher://example.org/", "unknown scheme 'gopher'"),
        ("file:///etc/passwd", "unknown scheme 'file'"),
        ("example.org:80", "unknown scheme"),
        ("", "empty"),
        ("tcp://example.org", "explicit port"),
        ("tcp://example.org:0", "port 0 cannot be probed"),
        ("http://127.0.0.1:0/", "port 0 cannot be probed"),
        ("tcp://::1:6379", "IPv6 address needs brackets"),
        ("http://fe80::1/", "IPv6 address needs brackets"),
        ("http://user:pw@2001:db8::1/", "IPv6 address needs brackets"),
        ("redis://user:pw@:6379", "no host"),
        ("redis://user:pw@", "no host"),
        ("http://a..b/", "not a valid host name"),
        (f"http://{'a' * 64}.example/", "not a valid host name"),
        ("http://a\x00b/", "invalid characters"),
        ("http://a\x7fb/", "invalid characters"),
        ("http://example.org:99999/", "invalid URL"),
        ("http://example.org:http/", "invalid URL"),
        ("http:///path", "no host"),
        ("http://[::1/", "invalid URL"),
        ("http://[fe80::1%25eth0]/", "zone"),
    ],
)
def test_invalid_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(GuardError, match=message):
        parse_url(url)


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://example.org/", 80),
        ("https://example.org/", 443),
        ("ssh://h/", 22),
        ("redis://h", 6379),
        ("udp://h", 7),
        ("graphql+https://h/q", 443),
        ("HTTP://h/", 80),
    ],
)
def test_default_ports_come_from_the_registry(url: str, port: int) -> None:
    assert parse_url(url).port == port


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("nats://s3cr3tt0ken@h:4222", "nats://****@h:4222"),  # NATS: a user alone is a token
        ("NATS://s3cr3tt0ken@h", "nats://****@h"),
        ("nats://alice:pw@h", "nats://alice:****@h"),
        ("nats://h:4222", "nats://h:4222"),
        ("redis://alice@h", "redis://alice@h"),  # elsewhere a user name is no secret
        ("redis://:pw@h", "redis://:****@h"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_passwords_are_masked_but_kept_for_the_probe(allow_loopback: str) -> None:
    url = "sftp://alice:s3cr%40t@127.0.0.1:2222/home"
    assert mask_url(url) == "sftp://alice:****@127.0.0.1:2222/home"
    target = resolve(url, allow_loopback)
    assert target.url == "sftp://alice:****@127.0.0.1:2222/home"
    assert "s3cr" not in target.model_dump_json() and "s3cr" not in repr(target)
    assert target.username == "alice"
    assert target.password is not None and target.password.get_secret_value() == "s3cr@t"


# --- Redirect hops ---------------------------------------------------------------------


def test_redirect_hops_are_checked_like_targets() -> None:
    allowed = "127.0.0.0/8"
    current = resolve("http://user:pw@127.0.0.1:8080/a/b?x=1", allowed)
    hop = asyncio.run(check_redirect("../c", current))
    assert (hop.address, hop.port, hop.path, hop.username) == ("127.0.0.1", 8080, "/c", None)
    hop = asyncio.run(check_redirect("https://127.0.0.2/z", current))
    assert (hop.scheme, hop.port) == ("https", 443)
    with pytest.raises(GuardError, match="metadata"):
        asyncio.run(check_redirect("http://169.254.169.254/latest", current))
    with pytest.raises(GuardError, match="private"):
        asyncio.run(check_redirect("http://0xa000001/", current))
    with pytest.raises(GuardError, match="leaves http"):
        asyncio.run(check_redirect("ftp://127.0.0.1/", current))


# --- Not one packet goes to a refused address ----------------------------------------


def test_no_connection_reaches_a_refused_tcp_address(default_policy: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for host in ("127.0.0.1", "2130706433", "0x7f.1", "localhost", "[::ffff:127.0.0.1]"):
            with pytest.raises(GuardError):
                asyncio.run(
                    run_probe(
                        f"tcp://{host}:{port}",
                        ProbeConfig(count=2),
                        allowed_networks=default_policy,
                    )
                )
        # The kernel would have queued any completed handshake for accept().
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_no_datagram_reaches_a_refused_udp_address(default_policy: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        with pytest.raises(GuardError):
            asyncio.run(
                run_probe(
                    f"udp://127.1:{port}", ProbeConfig(count=3), allowed_networks=default_policy
                )
            )
        with pytest.raises(BlockingIOError):
            receiver.recvfrom(2048)


# --- Property tests: our IPv4 reading agrees with the C library's -----------------------


def spell(value: int, parts: int, bases: list[int]) -> str:
    """``value`` written in ``parts`` labels (the last one wide), each in its base."""
    widths = [1] * (parts - 1) + [4 - (parts - 1)]
    labels: list[str] = []
    shift = 32
    for width, base in zip(widths, bases, strict=False):
        shift -= 8 * width
        number = (value >> shift) & ((1 << (8 * width)) - 1)
        labels.append({10: str(number), 16: hex(number), 8: "0" + oct(number)[2:]}[base])
    return ".".join(labels)


@given(
    value=st.integers(0, 2**32 - 1),
    parts=st.integers(1, 4),
    bases=st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
)
def test_every_spelling_of_every_address_is_read_as_that_address(
    value: int, parts: int, bases: list[int]
) -> None:
    host = spell(value, parts, bases)
    expected = ipaddress.IPv4Address(value)
    assert parse_ipv4_host(host) == expected
    assert ipaddress.IPv4Address(socket.inet_aton(host)) == expected  # and libc agrees


@hypothesis_settings(max_examples=1000)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
@example("0x7f.1")
@example("017700000001")
@example("1.0x10.3")
@example("0xA.0.0.010")
def test_whatever_inet_aton_reads_as_an_address_we_read_the_same(host: str) -> None:
    try:
        theirs: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        theirs = None
    try:
        ours: ipaddress.IPv4Address | str | None = parse_ipv4_host(host)
    except GuardError:
        ours = "refused"
    if theirs is not None:
        # A host libc would connect to as an address is never taken for a name.
        assert ours == theirs


# --- The registry table: every row, and an independent list typed from the registries ---
#
# SPECIAL_BLOCKS is the one table the guard decides from. Each row is tested for what it
# says; then REGISTRY_BY_HAND and BOUNDARIES, written out separately from the IANA pages
# (iana-ipv4-special-registry, iana-ipv6-special-registry, ipv6-address-space,
# multicast-addresses), pin the table to the registries: a typo in a prefix, an RFC or a
# flag fails one of them.

ALLOW_ALL = parse_networks("0.0.0.0/0,::/0")


def representative(row: SpecialBlock) -> IPAddress:
    """An address whose most specific block is ``row``, found from the table's networks alone
    (the middle of the block first: its first address is often a more specific block's)."""
    network = row.network
    for candidate in (network[network.num_addresses // 2], network[-1], network[0]):
        inside = [
            other
            for other in SPECIAL_BLOCKS
            if other is not row
            and other.network.version == network.version
            and other.network.prefixlen > network.prefixlen
            and candidate in other.network
        ]
        if not inside:
            return candidate
    raise AssertionError(f"no address of {network} is its own")


def row_id(row: SpecialBlock) -> str:
    return str(row.network)


@pytest.mark.parametrize("row", SPECIAL_BLOCKS, ids=row_id)
def test_every_table_row_decides_its_addresses(row: SpecialBlock) -> None:
    address = representative(row)
    assert special_block(address) is row
    embedded = [ipaddress.ip_network(e) for e in embedded_ipv4(address)]
    if row.refused:
        with pytest.raises(NotAllowedError) as caught:
            check_address(address, ())
        # The refusal names the registry row that decided it.
        assert f"({row.network} {row.name}, {row.rfc})" in str(caught.value)
        assert f"is {'an' if row.kind[0].lower() in 'aeiou' else 'a'} {row.kind} address" in str(
            caught.value
        )
        # Allowed when the operator's networks include the block (and what it carries).
        check_address(address, (row.network, *embedded))
    elif not embedded or all(special_block(e.network_address) is None for e in embedded):
        check_address(address, ())  # globally reachable: no allowance needed
    check_address(address, ALLOW_ALL)  # allow-all allows every row (metadata aside)


@pytest.mark.parametrize("row", [r for r in SPECIAL_BLOCKS if r.network.version == 4], ids=row_id)
def test_ipv4_mapped_spellings_of_every_ipv4_row_are_judged_as_the_ipv4_address(
    row: SpecialBlock,
) -> None:
    address = representative(row)
    packed = address.packed
    spellings = [
        f"::ffff:{address}",
        f"::ffff:{packed[:2].hex()}:{packed[2:].hex()}",
        f"0:0:0:0:0:ffff:{address}",
        f"::FFFF:{packed[:2].hex().upper()}:{packed[2:].hex().upper()}",
    ]
    for spelling in spellings:
        mapped = ipaddress.IPv6Address(spelling)
        assert mapped.ipv4_mapped == address
        if row.refused:
            with pytest.raises(NotAllowedError, match=re.escape(f"({row.network} {row.name}")):
                check_address(mapped, ())
            with pytest.raises(GuardError, match=re.escape(f"{address} is ")):
                resolve(f"http://[{spelling}]/", "")
            # Allowing the IPv6 side does not allow the IPv4 host it maps to.
            with pytest.raises(NotAllowedError):
                check_address(mapped, parse_networks("::/0"))
            check_address(mapped, (row.network,))
            assert resolve(f"http://[{spelling}]/", str(row.network)).address == str(address)
        else:
            check_address(mapped, ())


# (address, the block it is in or None for global unicast, "refused" or "passes" with
# no allowance). Written by hand from the registries, first and last addresses of each
# block and the addresses just outside it.
REGISTRY_ADDRESSES: list[tuple[str, str | None, str]] = [
    # IPv4 Special-Purpose Address Registry
    ("0.0.0.0", "0.0.0.0/32", "refused"),
    ("0.0.0.1", "0.0.0.0/8", "refused"),
    ("0.255.255.255", "0.0.0.0/8", "refused"),
    ("1.0.0.0", None, "passes"),
    ("9.255.255.255", None, "passes"),
    ("10.0.0.0", "10.0.0.0/8", "refused"),
    ("10.255.255.255", "10.0.0.0/8", "refused"),
    ("11.0.0.0", None, "passes"),
    ("100.63.255.255", None, "passes"),
    ("100.64.0.0", "100.64.0.0/10", "refused"),
    ("100.127.255.255", "100.64.0.0/10", "refused"),
    ("100.128.0.0", None, "passes"),
    ("126.255.255.255", None, "passes"),
    ("127.0.0.0", "127.0.0.0/8", "refused"),
    ("127.255.255.255", "127.0.0.0/8", "refused"),
    ("128.0.0.0", None, "passes"),
    ("169.253.255.255", None, "passes"),
    ("169.254.0.0", "169.254.0.0/16", "refused"),
    ("169.254.255.255", "169.254.0.0/16", "refused"),
    ("169.255.0.0", None, "passes"),
    ("172.15.255.255", None, "passes"),
    ("172.16.0.0", "172.16.0.0/12", "refused"),
    ("172.31.255.255", "172.16.0.0/12", "refused"),
    ("172.32.0.0", None, "passes"),
    ("191.255.255.255", None, "passes"),
    ("192.0.0.0", "192.0.0.0/29", "refused"),
    ("192.0.0.7", "192.0.0.0/29", "refused"),
    ("192.0.0.8", "192.0.0.8/32", "refused"),
    ("192.0.0.9", "192.0.0.9/32", "passes"),
    ("192.0.0.10", "192.0.0.10/32", "passes"),
    ("192.0.0.11", "192.0.0.0/24", "refused"),
    ("192.0.0.169", "192.0.0.0/24", "refused"),
    ("192.0.0.170", "192.0.0.170/32", "refused"),
    ("192.0.0.171", "192.0.0.171/32", "refused"),
    ("192.0.0.172", "192.0.0.0/24", "refused"),
    ("192.0.0.255", "192.0.0.0/24", "refused"),
    ("192.0.1.0", None, "passes"),
    ("192.0.2.0", "192.0.2.0/24", "refused"),
    ("192.0.2.255", "192.0.2.0/24", "refused"),
    ("192.0.3.0", None, "passes"),
    ("192.31.196.0", "192.31.196.0/24", "passes"),
    ("192.31.196.255", "192.31.196.0/24", "passes"),
    ("192.52.193.0", "192.52.193.0/24", "passes"),
    ("192.52.193.255", "192.52.193.0/24", "passes"),
    ("192.88.98.255", None, "passes"),
    ("192.88.99.0", "192.88.99.0/24", "refused"),
    ("192.88.99.1", "192.88.99.0/24", "refused"),
    ("192.88.99.2", "192.88.99.2/32", "refused"),
    ("192.88.99.3", "192.88.99.0/24", "refused"),
    ("192.88.99.255", "192.88.99.0/24", "refused"),
    ("192.88.100.0", None, "passes"),
    ("192.167.255.255", None, "passes"),
    ("192.168.0.0", "192.168.0.0/16", "refused"),
    ("192.168.255.255", "192.168.0.0/16", "refused"),
    ("192.169.0.0", None, "passes"),
    ("192.175.48.0", "192.175.48.0/24", "passes"),
    ("192.175.48.255", "192.175.48.0/24", "passes"),
    ("198.17.255.255", None, "passes"),
    ("198.18.0.0", "198.18.0.0/15", "refused"),
    ("198.19.255.255", "198.18.0.0/15", "refused"),
    ("198.20.0.0", None, "passes"),
    ("198.51.99.255", None, "passes"),
    ("198.51.100.0", "198.51.100.0/24", "refused"),
    ("198.51.100.255", "198.51.100.0/24", "refused"),
    ("198.51.101.0", None, "passes"),
    ("203.0.112.255", None, "passes"),
    ("203.0.113.0", "203.0.113.0/24", "refused"),
    ("203.0.113.255", "203.0.113.0/24", "refused"),
    ("203.0.114.0", None, "passes"),
    ("223.255.255.255", None, "passes"),
    # IPv4 multicast (RFC 5771)
    ("224.0.0.0", "224.0.0.0/4", "refused"),
    ("239.255.255.255", "224.0.0.0/4", "refused"),
    ("240.0.0.0", "240.0.0.0/4", "refused"),
    ("255.255.255.254", "240.0.0.0/4", "refused"),
    ("255.255.255.255", "255.255.255.255/32", "refused"),
    # IPv6 Special-Purpose Address Registry
    ("::", "::/128", "refused"),
    ("::1", "::1/128", "refused"),
    ("::2", "::/8", "refused"),
    ("64:ff9b::808:808", "64:ff9b::/96", "passes"),
    ("64:ff9b::ffff:ffff", "64:ff9b::/96", "refused"),  # embeds 255.255.255.255
    ("64:ff9b::1:0:0:0", "::/8", "refused"),  # just past the /96
    ("64:ff9b:1::", "64:ff9b:1::/48", "refused"),
    ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::/48", "refused"),
    ("64:ff9b:2::", "::/8", "refused"),
    ("100::", "100::/64", "refused"),
    ("100::ffff:ffff:ffff:ffff", "100::/64", "refused"),
    ("100:0:0:1::", "100:0:0:1::/64", "refused"),
    ("100:0:0:1:ffff:ffff:ffff:ffff", "100:0:0:1::/64", "refused"),
    ("100:0:0:2::", "100::/8", "refused"),
    ("2001::", "2001::/32", "refused"),
    ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/32", "refused"),
    ("2001:1::", "2001::/23", "refused"),
    ("2001:1::1", "2001:1::1/128", "passes"),
    ("2001:1::2", "2001:1::2/128", "passes"),
    ("2001:1::3", "2001:1::3/128", "passes"),
    ("2001:1::4", "2001::/23", "refused"),
    ("2001:2::", "2001:2::/48", "refused"),
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", "2001:2::/48", "refused"),
    ("2001:2:1::", "2001::/23", "refused"),
    ("2001:3::", "2001:3::/32", "passes"),
    ("2001:3:ffff:ffff:ffff:ffff:ffff:ffff", "2001:3::/32", "passes"),
    ("2001:4::", "2001::/23", "refused"),
    ("2001:4:112::", "2001:4:112::/48", "passes"),
    ("2001:4:112:ffff:ffff:ffff:ffff:ffff", "2001:4:112::/48", "passes"),
    ("2001:4:113::", "2001::/23", "refused"),
    ("2001:10::", "2001:10::/28", "refused"),
    ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:10::/28", "refused"),
    ("2001:20::", "2001:20::/28", "passes"),
    ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:20::/28", "passes"),
    ("2001:30::", "2001:30::/28", "passes"),
    ("2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", "2001:30::/28", "passes"),
    ("2001:40::", "2001::/23", "refused"),
    ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23", "refused"),
    ("2001:200::", None, "passes"),
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None, "passes"),
    ("2001:db8::", "2001:db8::/32", "refused"),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32", "refused"),
    ("2001:db9::", None, "passes"),
    ("2002:808:808::1", "2002::/16", "passes"),  # 6to4 of 8.8.8.8
    ("2002:a00:1::", "2002::/16", "refused"),  # 6to4 of 10.0.0.1
    ("2003::", None, "passes"),
    ("2620:4f:8000::", "2620:4f:8000::/48", "passes"),
    ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None, "passes"),
    ("3fff::", "3fff::/20", "refused"),
    ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::/20", "refused"),
    ("3fff:1000::", None, "passes"),
    ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None, "passes"),
    ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "4000::/3", "refused"),
    ("5f00::", "5f00::/16", "refused"),
    ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "5f00::/16", "refused"),
    ("5f01::", "4000::/3", "refused"),
    ("fc00::", "fc00::/7", "refused"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7", "refused"),
    ("fe80::", "fe80::/10", "refused"),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10", "refused"),
    # IPv6 Address Space: outside 2000::/3, all reserved, deprecated or multicast
    ("::ffff:0:0:1", "::/8", "refused"),  # IPv4-translated
    ("::a00:1", "::/8", "refused"),  # IPv4-compatible (deprecated)
    ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/8", "refused"),
    ("1ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "100::/8", "refused"),
    ("200::", "200::/7", "refused"),
    ("3ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "200::/7", "refused"),
    ("400::", "400::/6", "refused"),
    ("800::", "800::/5", "refused"),
    ("1000::", "1000::/4", "refused"),
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1000::/4", "refused"),
    ("2000::", None, "passes"),
    ("4000::", "4000::/3", "refused"),
    ("6000::", "6000::/3", "refused"),
    ("8000::", "8000::/3", "refused"),
    ("a000::", "a000::/3", "refused"),
    ("c000::", "c000::/3", "refused"),
    ("e000::", "e000::/4", "refused"),
    ("f000::", "f000::/5", "refused"),
    ("f800::", "f800::/6", "refused"),
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "f800::/6", "refused"),
    ("fe00::", "fe00::/9", "refused"),
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::/9", "refused"),
    ("fec0::", "fec0::/10", "refused"),
    ("fec0::1", "fec0::/10", "refused"),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::/10", "refused"),
    ("ff00::", "ff00::/8", "refused"),
    ("ff02::1", "ff00::/8", "refused"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8", "refused"),
]


@pytest.mark.parametrize(("text", "block", "verdict"), REGISTRY_ADDRESSES)
def test_addresses_typed_from_the_registries_land_in_their_block(
    text: str, block: str | None, verdict: str
) -> None:
    address = ipaddress.ip_address(text)
    row = special_block(address)
    assert (str(row.network) if row else None) == block
    if verdict == "refused":
        with pytest.raises(NotAllowedError):
            check_address(address, ())
    else:
        check_address(address, ())
    check_address(address, ALLOW_ALL)


# Every row of the registries, typed by hand: block -> (RFC it names first, Globally
# Reachable: True, False or None for N/A, blank or a registry without the column).
REGISTRY_BY_HAND: dict[str, tuple[str, bool | None]] = {
    "0.0.0.0/8": ("RFC 791", False),
    "0.0.0.0/32": ("RFC 1122", False),
    "10.0.0.0/8": ("RFC 1918", False),
    "100.64.0.0/10": ("RFC 6598", False),
    "127.0.0.0/8": ("RFC 1122", False),
    "169.254.0.0/16": ("RFC 3927", False),
    "172.16.0.0/12": ("RFC 1918", False),
    "192.0.0.0/24": ("RFC 6890", False),
    "192.0.0.0/29": ("RFC 7335", False),
    "192.0.0.8/32": ("RFC 7600", False),
    "192.0.0.9/32": ("RFC 7723", True),
    "192.0.0.10/32": ("RFC 8155", True),
    "192.0.0.170/32": ("RFC 8880", False),
    "192.0.0.171/32": ("RFC 8880", False),
    "192.0.2.0/24": ("RFC 5737", False),
    "192.31.196.0/24": ("RFC 7535", True),
    "192.52.193.0/24": ("RFC 7450", True),
    "192.88.99.0/24": ("RFC 7526", None),
    "192.88.99.2/32": ("RFC 6751", False),
    "192.168.0.0/16": ("RFC 1918", False),
    "192.175.48.0/24": ("RFC 7534", True),
    "198.18.0.0/15": ("RFC 2544", False),
    "198.51.100.0/24": ("RFC 5737", False),
    "203.0.113.0/24": ("RFC 5737", False),
    "240.0.0.0/4": ("RFC 1112", False),
    "255.255.255.255/32": ("RFC 8190", False),
    "224.0.0.0/4": ("RFC 5771", None),
    "::1/128": ("RFC 4291", False),
    "::/128": ("RFC 4291", False),
    "::ffff:0:0/96": ("RFC 4291", False),
    "64:ff9b::/96": ("RFC 6052", True),
    "64:ff9b:1::/48": ("RFC 8215", False),
    "100::/64": ("RFC 6666", False),
    "100:0:0:1::/64": ("RFC 9780", False),
    "2001::/23": ("RFC 2928", False),
    "2001::/32": ("RFC 4380", None),
    "2001:1::1/128": ("RFC 7723", True),
    "2001:1::2/128": ("RFC 8155", True),
    "2001:1::3/128": ("RFC 9665", True),
    "2001:2::/48": ("RFC 5180", False),
    "2001:3::/32": ("RFC 7450", True),
    "2001:4:112::/48": ("RFC 7535", True),
    "2001:10::/28": ("RFC 4843", None),
    "2001:20::/28": ("RFC 7343", True),
    "2001:30::/28": ("RFC 9374", True),
    "2001:db8::/32": ("RFC 3849", False),
    "2002::/16": ("RFC 3056", None),
    "2620:4f:8000::/48": ("RFC 7534", True),
    "3fff::/20": ("RFC 9637", False),
    "5f00::/16": ("RFC 9602", False),
    "fc00::/7": ("RFC 4193", False),
    "fe80::/10": ("RFC 4291", False),
    "::/8": ("RFC 4291", None),
    "100::/8": ("RFC 4291", None),
    "200::/7": ("RFC 4048", None),
    "400::/6": ("RFC 4291", None),
    "800::/5": ("RFC 4291", None),
    "1000::/4": ("RFC 4291", None),
    "4000::/3": ("RFC 4291", None),
    "6000::/3": ("RFC 4291", None),
    "8000::/3": ("RFC 4291", None),
    "a000::/3": ("RFC 4291", None),
    "c000::/3": ("RFC 4291", None),
    "e000::/4": ("RFC 4291", None),
    "f000::/5": ("RFC 4291", None),
    "f800::/6": ("RFC 4291", None),
    "fe00::/9": ("RFC 4291", None),
    "fec0::/10": ("RFC 3879", None),
    "ff00::/8": ("RFC 4291", None),
}


def test_the_table_holds_exactly_the_registry_rows_typed_by_hand() -> None:
    table = {str(row.network): row for row in SPECIAL_BLOCKS}
    assert len(table) == len(SPECIAL_BLOCKS), "a block is listed twice"
    assert sorted(table) == sorted(REGISTRY_BY_HAND)
    for cidr, (rfc, reachable) in REGISTRY_BY_HAND.items():
        row = table[cidr]
        assert row.rfc.startswith(rfc), cidr
        assert row.reachable is reachable, cidr
        assert row.name and row.kind and row.registry.startswith("IANA "), cidr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://192.0.0.8/", "dummy address (192.0.0.8/32 IPv4 dummy address, RFC 7600)"),
        ("http://3221225480/", "192.0.0.8 is a dummy address"),  # one decimal number
        ("http://0xc0.0.0.8/", "192.0.0.8 is a dummy address"),
        ("http://[::ffff:192.0.0.8]/", "192.0.0.8 is a dummy address"),
        ("http://[::ffff:c000:8]/", "192.0.0.8 is a dummy address"),
        ("http://192.0.0.100/", "IETF protocol assignment address (192.0.0.0/24"),
        ("http://192.0.0.170/", "NAT64 discovery"),
        ("http://[fec0::1]/", "site-local (deprecated) address (fec0::/10"),
        ("http://[fec0:0:0:ffff::1]/", "RFC 3879"),
        ("http://[3fff::1]/", "documentation address (3fff::/20 Documentation, RFC 9637)"),
        ("http://[3fff:abc::1]/", "RFC 9637"),
        ("http://[5f00::1]/", "SRv6 SID"),
        ("http://[100:0:0:1::1]/", "RFC 9780"),
        ("http://[2001:db8::1]/", "RFC 3849"),
        ("http://[2001::1]/", "Teredo"),
        ("http://[2001:2::1]/", "benchmarking"),
        ("http://[4000::1]/", "reserved address (4000::/3 Reserved by IETF"),
        ("http://[::ffff:0:a00:1]/", "reserved"),  # IPv4-translated
        ("http://192.88.99.1/", "deprecated address (192.88.99.0/24"),
    ],
)
def test_the_issue_10_gaps_are_closed(default_policy: str, url: str, words: str) -> None:
    with pytest.raises(NotAllowedError) as caught:
        resolve(url, default_policy)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://192.0.0.9/", "192.0.0.9"),  # PCP anycast: globally reachable
        ("http://[2001:1::1]/", "2001:1::1"),
        ("http://[2001:4:112::1]/", "2001:4:112::1"),  # AS112-v6
        ("http://192.175.48.6/", "192.175.48.6"),
    ],
)
def test_globally_reachable_rows_pass_inside_a_refused_parent(
    default_policy: str, url: str, address: str
) -> None:
    assert resolve(url, default_policy).address == address


def test_loopback_is_refused_unless_allowed_as_before() -> None:
    # The operator's PROBE_ALLOWED_NETWORKS decides; the table changes nothing for loopback.
    for text in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        address = ipaddress.ip_address(text)
        with pytest.raises(NotAllowedError, match="loopback"):
            check_address(address, ())
        check_address(address, parse_networks("127.0.0.0/8,::1/128"))
