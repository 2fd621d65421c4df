"""Probe engine benchmarks: 200 concurrent targets, and responder throughput vs iperf3.

Usage (from the repository root)::

    .venv/bin/python bench/probes.py concurrency [--targets 200] [--slow 5] [--delay-ms 200]
                                                 [--interval-ms 100]
    sudo .venv/bin/python bench/probes.py throughput [--rate-mbit 50] [--rounds 3]
    sudo .venv/bin/python bench/probes.py all

**concurrency** (issue 4, "Speed": 200 targets with count 5 each in at most
2x the time of the slowest single target). A server process of its own
listens on ``--targets`` loopback ports with a minimal HTTP/1.1 responder;
the first ``--slow`` ports wait ``--delay-ms`` before answering. The bench
first probes the slowest target alone (``run_probe``, count 5, interval
100 ms), then all targets at once in one event loop (``run_many``), and
prints both wall times and their ratio, plus how much the fast targets'
median latency grew under the concurrent load. The same is done with
``tcp://`` targets (connect time only), where every target is equally fast.

**throughput** (issue 4, "Accuracy": within 10 % of iperf3 over a link the
kernel shapes). Needs root. Two network namespaces joined by a veth pair
(10.78.0.1/30 server, 10.78.0.2/30 client; addresses that exist only inside
them), the server's end shaped with ``tc qdisc ... tbf``. In the server
namespace run ``iperf3 -s`` and ``manage.py responder``; from the client
namespace, alternately, ``iperf3 -c -R`` (the server sends, as the responder
does) and ``manage.py probe tcp://10.78.0.1:PORT --throughput`` with
``PROBE_ALLOWED_NETWORKS=10.78.0.0/30``. Printed: both rates per round,
medians and their ratio. The namespaces are removed at the end, also on
Ctrl-C or SIGTERM.

Nothing here sends a packet anywhere but 127.0.0.1 and the two namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
# A developer's tool, as before DEBUG defaulted to off (the settings need a key without it).
os.environ.setdefault("DJANGO_DEBUG", "true")

from probes.base import ProbeConfig, ProbeResult  # noqa: E402
from probes.runner import run_many, run_probe  # noqa: E402

PYTHON = sys.executable
LOOPBACK = "127.0.0.0/8"  # the policy for probes of this benchmark's own local servers
NS_SERVER, NS_CLIENT = "sbbench-srv", "sbbench-cli"
VETH_SERVER, VETH_CLIENT = "sbbv-srv", "sbbv-cli"
SERVER_ADDR, CLIENT_ADDR = "10.78.0.1", "10.78.0.2"


# --- A server process with many ports --------------------------------------------------


async def _serve_many(count: int, slow: int, delay_s: float) -> None:
    """HTTP/1.1 on ``count`` loopback ports; the first ``slow`` answer late."""

    def handler(
        late: bool,
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                if late:
                    await asyncio.sleep(delay_s)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                    b"Connection: close\r\n\r\nok\n"
                )
                await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return handle

    servers = [
        await asyncio.start_server(handler(i < slow), "127.0.0.1", 0, backlog=512)
        for i in range(count)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


@contextmanager
def many_port_server(count: int, slow: int, delay_ms: float) -> Iterator[list[int]]:
    process = subprocess.Popen(
        [PYTHON, __file__, "serve", str(count), str(slow), str(delay_ms / 1000.0)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ports = json.loads(process.stdout.readline())
        yield ports
    finally:
        process.terminate()
        process.wait(10)


# --- Concurrency -----------------------------------------------------------------------


async def _timed_single(url: str, config: ProbeConfig) -> tuple[float, ProbeResult]:
    started = time.perf_counter()
    result = await run_probe(url, config, allowed_networks=LOOPBACK)
    return time.perf_counter() - started, result


async def _timed_many(urls: list[str], config: ProbeConfig) -> tuple[float, list[ProbeResult]]:
    started = time.perf_counter()
    results = await run_many(urls, config, allowed_networks=LOOPBACK)
    return time.perf_counter() - started, results


def _p50(result: ProbeResult) -> float:
    return result.latency_ms.p50 if result.latency_ms is not None else float("nan")


async def concurrency_round(
    label: str, urls: list[str], slowest: str, fast: str, interval_ms: float
) -> bool:
    config = ProbeConfig(count=5, interval_ms=interval_ms, timeout_s=5)
    # Warm up imports and first-use paths.
    await run_probe(fast, ProbeConfig(count=1), allowed_networks=LOOPBACK)
    single_s, single = await _timed_single(slowest, config)
    _, fast_alone = await _timed_single(fast, config)
    total_s, results = await _timed_many(urls, config)
    failed = [r for r in results if not r.ok or r.succeeded != config.count]
    # Median over all the fast targets, not one: one target's p50 is noisy.
    fast_under_load = (
        statistics.median(
            _p50(r) for r in results if r.target != slowest and _p50(r) < _p50(single)
        )
        if slowest != fast
        else statistics.median(_p50(r) for r in results)
    )
    ratio = total_s / single_s
    ok = ratio <= 2.0 and not failed
    print(f"{label}: {len(urls)} targets, count {config.count}, interval {interval_ms:g} ms")
    print(f"  slowest target alone : {single_s:7.3f} s  (p50 latency {_p50(single):.3f} ms)")
    print(f"  all targets at once  : {total_s:7.3f} s  ({len(failed)} not fully answered)")
    print(f"  ratio total/slowest  : {ratio:7.2f}  (target <= 2.00) {'PASS' if ok else 'FAIL'}")
    print(
        f"  fast targets' p50    : {_p50(fast_alone):.3f} ms for one alone, "
        f"median {fast_under_load:.3f} ms among {len(urls)}"
    )
    return ok


def bench_concurrency(targets: int, slow: int, delay_ms: float, interval_ms: float) -> bool:
    ok = True
    with many_port_server(targets, slow, delay_ms) as ports:
        http_urls = [f"http://127.0.0.1:{port}/" for port in ports]
        tcp_urls = [f"tcp://127.0.0.1:{port}" for port in ports]
        slowest_http = http_urls[0] if slow else http_urls[-1]
        ok &= asyncio.run(
            concurrency_round(
                f"http ({slow} targets answer after {delay_ms:g} ms)",
                http_urls,
                slowest_http,
                http_urls[-1],
                interval_ms,
            )
        )
        ok &= asyncio.run(
            concurrency_round("tcp connect", tcp_urls, tcp_urls[0], tcp_urls[-1], interval_ms)
        )
    return ok


# --- Throughput against iperf3 ------------------------------------------------------------


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def teardown_namespaces() -> None:
    for ns in (NS_SERVER, NS_CLIENT):
        sh("ip", "netns", "del", ns, check=False)


@contextmanager
def shaped_link(rate_mbit: float) -> Iterator[None]:
    teardown_namespaces()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        teardown_namespaces()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        sh("ip", "netns", "add", NS_SERVER)
        sh("ip", "netns", "add", NS_CLIENT)
        sh("ip", "link", "add", VETH_SERVER, "type", "veth", "peer", "name", VETH_CLIENT)
        sh("ip", "link", "set", VETH_SERVER, "netns", NS_SERVER)
        sh("ip", "link", "set", VETH_CLIENT, "netns", NS_CLIENT)
        for ns, dev, addr in (
            (NS_SERVER, VETH_SERVER, SERVER_ADDR),
            (NS_CLIENT, VETH_CLIENT, CLIENT_ADDR),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Both directions shaped alike; the data flows server -> client.
            sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
               f"{rate_mbit}mbit", "burst", "32kbit", "latency", "400ms")  # fmt: skip
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        teardown_namespaces()


def iperf3_mbit(seconds: float) -> float:
    out = sh(
        "ip", "netns", "exec", NS_CLIENT, "iperf3", "-c", SERVER_ADDR, "-R", "-J",
        "-t", f"{seconds:g}",
    ).stdout  # fmt: skip
    report = json.loads(out)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6


def probe_mbit(port: int, timeout_s: float) -> tuple[float, int]:
    env = dict(os.environ, PROBE_ALLOWED_NETWORKS=f"{SERVER_ADDR}/30")
    out = subprocess.run(
        ["ip", "netns", "exec", NS_CLIENT, PYTHON, "manage.py", "probe",
         f"tcp://{SERVER_ADDR}:{port}", "--throughput", "--count", "1",
         "--timeout", f"{timeout_s:g}", "--format", "json"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(out)
    return float(result["throughput_bps"]) / 1e6, int(result["details"]["bytes_read"])


def bench_throughput(rate_mbit: float, rounds: int, seconds: float) -> bool:
    if os.geteuid() != 0:
        print("throughput: needs root for network namespaces and tc; skipped")
        return True
    with shaped_link(rate_mbit):
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", NS_SERVER, "iperf3", "-s"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        responder = subprocess.Popen(
            ["ip", "netns", "exec", NS_SERVER, PYTHON, "manage.py", "responder",
             "--tcp", "0", "--bind", SERVER_ADDR],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert responder.stdout is not None
            line = responder.stdout.readline()
            port = int(line.split(f"{SERVER_ADDR}:")[1].split()[0])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # wait until iperf3 listens
                if sh("ip", "netns", "exec", NS_SERVER, "ss", "-ltn", check=False).stdout.count(
                    ":5201"
                ):
                    break
                time.sleep(0.05)
            ours: list[float] = []
            theirs: list[float] = []
            # The probe reads for up to 90 % of its timeout; give iperf3 the same time.
            for index in range(rounds):
                order = (0, 1) if index % 2 == 0 else (1, 0)
                for which in order:
                    if which == 0:
                        theirs.append(iperf3_mbit(seconds * 0.9))
                    else:
                        rate, _ = probe_mbit(port, seconds)
                        ours.append(rate)
                print(
                    f"  round {index + 1}: iperf3 {theirs[-1]:7.2f} Mbit/s, "
                    f"probe {ours[-1]:7.2f} Mbit/s"
                )
        finally:
            for process in (responder, iperf):
                process.terminate()
                process.wait(10)
    o, t = statistics.median(ours), statistics.median(theirs)
    ratio = o / t
    ok = abs(ratio - 1) <= 0.10
    print(f"throughput over a {rate_mbit:g} Mbit/s tbf link, {rounds} rounds of ~{seconds:g} s:")
    print(f"  iperf3 -R median     : {t:7.2f} Mbit/s")
    print(f"  probe tcp median     : {o:7.2f} Mbit/s  (manage.py probe --throughput vs responder)")
    print(f"  ratio probe/iperf3   : {ratio:7.3f}  (target within 10 %) {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    conc = sub.add_parser("concurrency")
    thr = sub.add_parser("throughput")
    both = sub.add_parser("all")
    for p in (conc, both):
        p.add_argument("--targets", type=int, default=200)
        p.add_argument("--slow", type=int, default=5)
        p.add_argument("--delay-ms", type=float, default=200.0)
        p.add_argument("--interval-ms", type=float, default=100.0)
    for p in (thr, both):
        p.add_argument("--rate-mbit", type=float, default=50.0)
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--seconds", type=float, default=5.0)
    serve = sub.add_parser("serve")  # internal: the many-port server process
    serve.add_argument("count", type=int)
    serve.add_argument("slow", type=int)
    serve.add_argument("delay_s", type=float)
    args = parser.parse_args()
    if args.what == "serve":
        asyncio.run(_serve_many(args.count, args.slow, args.delay_s))
        return 0
    ok = True
    if args.what in ("concurrency", "all"):
        ok &= bench_concurrency(args.targets, args.slow, args.delay_ms, args.interval_ms)
    if args.what in ("throughput", "all"):
        ok &= bench_throughput(args.rate_mbit, args.rounds, args.seconds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
