"""Feasibility and monotonicity of the recommendation, as properties over random documents.

The hard constraints of issue 8, checked on every document hypothesis draws:

- browsers speak HTTP(S) and WebSockets only: no raw TCP/UDP, FTP or SSH, no
  native gRPC (gRPC-Web is the way in), no broker without a WebSocket transport
  (Kafka, Redis);
- ``http_only`` lets only what rides HTTP(S) on 80/443 through: no raw TCP/UDP, FTP
  or SSH;
- ``ssh_only`` lets SSH through: SSH, SFTP, or a protocol named as riding an SSH tunnel;
- ``inbound_blocked``: nothing may need to connect *to* the receiving side: no
  webhook or upload into it, no datagrams to it, and for a call or a remote
  command nothing that dials it unless its side holds the session (a device
  session, a reverse SSH tunnel); files, events and streams it may pull or poll;
- UDP is never first with exactly-once delivery or datagrams over 65,507 bytes;
- an existing interface that cannot change is spoken by the first pick, unless another
  hard constraint rules its method out, and then a warning says plainly that none can
  speak it and what adapter it takes (``Recommendation.conflicts`` lists the answers
  only when nothing at all is feasible).

A first pick may break a constraint only when nothing can meet them all, and then
the report must list the conflict. Monotonicity: answers that can only strengthen
a method's case never lower its standing (its place in the ranking).

A property the engine broke would be a strict xfail with the class of error and an
``@example`` that breaks it; none is left. Runs are derandomized so they are
repeatable.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from advisor.engine import recommend
from advisor.recommendation import MethodResult, Recommendation
from advisor.usecase import parse_usecase
from tests.advisor.strategies import documents

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MAX_DATAGRAM = 65_507
NOT_FROM_A_BROWSER = {"tcp", "udp", "file_transfer", "ssh"}
# Brokers whose own protocol has no WebSocket/HTTP transport a page could open.
NO_BROWSER_TRANSPORT = {"kafka", "redis_streams"}
NOT_THROUGH_HTTP_ONLY = {"tcp", "udp", "file_transfer", "ssh"}
THROUGH_SSH_ONLY = {"ssh", "file_transfer"}
SPEAKS = {
    "rest": {"rest", "http"},
    "soap": {"soap"},
    "graphql": {"graphql"},
    "grpc": {"rpc"},
    "broker": {"message_queue"},
    "file_drop": {"file_transfer"},
    "custom_tcp": {"tcp"},
}
# Implementations that are, by definition, a connection into the receiving side.
PUSH_INTO_RECEIVER = {"webhook", "https_upload"}
# For a call or a remote command, methods that connect into the receiving side unless
# its side holds the session (a device session, a reverse SSH tunnel).
CALL_INTO_RECEIVER = {"http", "rest", "soap", "graphql", "rpc", "tcp", "ssh"}
CALLS = {"request_response", "remote_execution"}
RECEIVER_CONNECTS_OUT = {"device_session", "ssh_tunnel", "notify_download"}


def advise(doc: dict[str, Any]) -> Recommendation:
    return recommend(parse_usecase(doc), explain_changes=False)


def rank(rec: Recommendation, method: str) -> int:
    return [r.method for r in rec.ranking].index(method)


def pattern_of(first: MethodResult) -> str | None:
    return first.pattern.id if first.pattern else None


def broken_constraints(doc: dict[str, Any], first: MethodResult) -> list[str]:
    """The hard constraints of ``doc`` that the pick ``first`` breaks (empty when none)."""
    broken: list[str] = []
    method, impl, pattern = first.method, first.implementation, pattern_of(first)
    if doc.get("browser_clients") and (
        method in NOT_FROM_A_BROWSER
        or (method == "rpc" and impl == "grpc")
        or (method == "message_queue" and impl in NO_BROWSER_TRANSPORT)
    ):
        broken.append(f"browser_clients: a browser cannot speak {method} ({impl})")
    firewall = doc.get("firewall", "open")
    if firewall == "http_only" and method in NOT_THROUGH_HTTP_ONLY:
        broken.append(f"http_only: {method} does not ride HTTP(S)")
    if firewall == "ssh_only":
        rides_ssh = method == "ssh" or (method == "file_transfer" and impl in (None, "sftp"))
        if not rides_ssh and pattern != "ssh_tunnel":
            broken.append(f"ssh_only: {method} ({impl}) does not ride SSH")
    if doc.get("inbound_blocked"):
        broken.extend(_inbound(doc, first))
    if method == "udp":
        if doc.get("delivery") == "exactly_once":
            broken.append("udp with exactly-once delivery")
        if doc.get("message_bytes", 1024) > MAX_DATAGRAM:
            broken.append(f"udp with {doc['message_bytes']} bytes > {MAX_DATAGRAM}")
    existing = doc.get("existing_interface", "none")
    if existing != "none" and method not in SPEAKS[existing]:
        broken.append(f"existing_interface {existing}: the first pick speaks {method}")
    return broken


def _inbound(doc: dict[str, Any], first: MethodResult) -> list[str]:
    method, impl, pattern = first.method, first.implementation, pattern_of(first)
    if impl in PUSH_INTO_RECEIVER:
        return [f"inbound_blocked: {impl} connects into the receiver"]
    if method == "udp":
        return ["inbound_blocked: datagrams must be sent to the receiver"]
    if doc["interaction"] not in CALLS:
        # Files, events and streams can be pulled or polled by the receiving side
        # (HTTPS download, SFTP get, polling a feed), or met at a broker.
        return []
    if method in CALL_INTO_RECEIVER and pattern not in RECEIVER_CONNECTS_OUT:
        return [f"inbound_blocked: a plain {method} call needs to connect into the receiver"]
    return []


def _assert_feasible_or_conflict(doc: dict[str, Any], only: str) -> None:
    rec = advise(doc)
    first = rec.ranking[0]
    broken = [b for b in broken_constraints(doc, first) if b.startswith(only)]
    if broken:
        assert rec.conflicts, f"{first.method} breaks {broken} and no conflict is reported"
        assert not first.feasible


def _docs(**fixed: Any) -> st.SearchStrategy[dict[str, Any]]:
    return documents.map(lambda d: {**d, **fixed})


# --------------------------------------------------------------------- feasibility


@SETTINGS
@given(_docs(browser_clients=True))
def test_browser_peers_get_what_a_browser_speaks(doc: dict[str, Any]) -> None:
    _assert_feasible_or_conflict(doc, "browser_clients")


@SETTINGS
@given(_docs(firewall="http_only"))
def test_http_only_gets_what_rides_http(doc: dict[str, Any]) -> None:
    _assert_feasible_or_conflict(doc, "http_only")


@SETTINGS
@given(_docs(firewall="ssh_only"))
@example({"interaction": "request_response", "firewall": "ssh_only"})
def test_ssh_only_gets_ssh_sftp_or_a_tunnel(doc: dict[str, Any]) -> None:
    _assert_feasible_or_conflict(doc, "ssh_only")


@SETTINGS
@given(_docs(inbound_blocked=True))
@example({"interaction": "request_response", "inbound_blocked": True})
def test_inbound_blocked_needs_nothing_to_connect_in(doc: dict[str, Any]) -> None:
    _assert_feasible_or_conflict(doc, "inbound_blocked")


@SETTINGS
@given(documents)
def test_udp_never_first_with_exactly_once_or_oversized_datagrams(doc: dict[str, Any]) -> None:
    _assert_feasible_or_conflict(doc, "udp")


@SETTINGS
@given(_docs(delivery="exactly_once", loss_tolerant=True, message_bytes=200))
def test_udp_not_first_with_exactly_once_even_when_it_looks_like_telemetry(
    doc: dict[str, Any],
) -> None:
    assert advise(doc).ranking[0].method != "udp"


@SETTINGS
@given(documents.filter(lambda d: d.get("existing_interface", "none") != "none"))
@example({"interaction": "streaming", "existing_interface": "soap"})
@example({"interaction": "request_response", "existing_interface": "rest", "inbound_blocked": True})
def test_existing_interface_is_honoured_or_the_report_says_what_adapter_it_takes(
    doc: dict[str, Any],
) -> None:
    # Issue 8: "the first pick speaks it, or the report says plainly that none can and
    # what adapter it takes". A conflict (nothing feasible) is reported only when no
    # method meets the other hard constraints either.
    rec = advise(doc)
    interface = doc["existing_interface"]
    if rec.ranking[0].method in SPEAKS[interface]:
        assert rec.ranking[0].feasible or rec.conflicts
        return
    speaker = next(r for r in rec.ranking if r.method in SPEAKS[interface])
    assert not speaker.feasible, f"{speaker.method} speaks {interface}, is feasible, not first"
    plain = [w for w in rec.warnings if "cannot change, but" in w and "ruled out here" in w]
    assert plain or rec.conflicts, rec.warnings
    if plain:
        # ... and what it takes: every adapter text (and the fallback) says "it takes".
        assert "it takes" in plain[0], plain


@SETTINGS
@given(
    documents.filter(lambda d: d.get("existing_interface", "none") != "none").map(
        lambda d: {**d, "browser_clients": False, "firewall": "open", "inbound_blocked": False}
    )
)
@example({"interaction": "fire_and_forget", "existing_interface": "file_drop"})
def test_existing_interface_without_a_conflicting_constraint_is_spoken(
    doc: dict[str, Any],
) -> None:
    rec = advise(doc)
    assert rec.ranking[0].method in SPEAKS[doc["existing_interface"]]
    assert rec.conflicts == []


@SETTINGS
@given(documents)
def test_a_reported_conflict_means_nothing_is_feasible(doc: dict[str, Any]) -> None:
    rec = advise(doc)
    if rec.conflicts:
        assert not any(r.feasible for r in rec.ranking)
    else:
        assert rec.ranking[0].feasible


# --------------------------------------------------------------------- monotonicity


def _standing_never_drops(doc: dict[str, Any], method: str, field: str, values: list[Any]) -> None:
    """Along ``values`` of ``field`` (each strengthening ``method``), its rank never worsens."""
    ranks = [rank(advise({**doc, field: v}), method) for v in values]
    for i in range(1, len(values)):
        before, after = ranks[i - 1], ranks[i]
        assert after <= before, (
            f"{method} falls from #{before + 1} to #{after + 1} "
            f"when {field} {values[i - 1]} -> {values[i]}"
        )


def _ordered_pair(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda t: (min(t), max(t)))


@SETTINGS
@given(_docs(interaction="publish_subscribe"), _ordered_pair(1, 10_000))
def test_more_event_consumers_never_lower_the_broker(
    doc: dict[str, Any], pair: tuple[int, int]
) -> None:
    _standing_never_drops(doc, "message_queue", "consumers", list(pair))


@SETTINGS
@given(documents, _ordered_pair(1_000, 10**13))
def test_larger_files_never_favour_websocket_over_file_transfer(
    doc: dict[str, Any], pair: tuple[int, int]
) -> None:
    small, large = ({**doc, "file_bytes": size} for size in pair)
    before, after = advise(small), advise(large)
    if rank(before, "file_transfer") < rank(before, "websocket"):
        assert rank(after, "file_transfer") < rank(after, "websocket"), (
            f"websocket overtakes file_transfer when files grow {pair[0]} -> {pair[1]} bytes"
        )


@SETTINGS
@given(documents, _ordered_pair(1, 10**9))
def test_larger_messages_never_favour_udp_over_tcp(
    doc: dict[str, Any], pair: tuple[int, int]
) -> None:
    small, large = ({**doc, "message_bytes": size} for size in pair)
    before, after = advise(small), advise(large)
    if rank(before, "tcp") < rank(before, "udp"):
        assert rank(after, "tcp") < rank(after, "udp"), (
            f"udp overtakes tcp when messages grow {pair[0]} -> {pair[1]} bytes"
        )


@SETTINGS
@given(documents)
def test_accepting_loss_never_lowers_udp(doc: dict[str, Any]) -> None:
    _standing_never_drops(doc, "udp", "loss_tolerant", [False, True])


@SETTINGS
@given(documents)
def test_offline_receivers_never_lower_the_broker(doc: dict[str, Any]) -> None:
    _standing_never_drops(doc, "message_queue", "receiver_may_be_offline", [False, True])


@SETTINGS
@given(documents)
def test_exactly_once_never_lowers_the_broker(doc: dict[str, Any]) -> None:
    _standing_never_drops(doc, "message_queue", "delivery", ["at_least_once", "exactly_once"])


@SETTINGS
@given(documents)
def test_browsers_never_lower_websockets(doc: dict[str, Any]) -> None:
    _standing_never_drops(doc, "websocket", "browser_clients", [False, True])


@SETTINGS
@given(
    documents.filter(lambda d: d["interaction"] in ("request_response", "remote_execution")),
    st.integers(2, 10_000),
)
@example({"interaction": "request_response", "latency_ms": 100, "rate_per_second": 300}, 8)
@example({"interaction": "remote_execution"}, 50)
def test_consumers_do_not_change_a_call_or_a_command(doc: dict[str, Any], consumers: int) -> None:
    one = advise({**doc, "consumers": 1}).ranking[0].method
    many = advise({**doc, "consumers": consumers}).ranking[0].method
    assert one == many, f"{consumers} consumers of a {doc['interaction']} turn {one} into {many}"
