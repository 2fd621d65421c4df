"""Accuracy of the http probe against curl (time to first byte) and iperf3 (throughput).

Usage (from the repository root)::

    .venv/bin/python bench/accuracy.py ttfb [--rounds 200] [--delay-ms 20]
    sudo .venv/bin/python bench/accuracy.py throughput [--rounds 2] [--rate-mbit 50]
    sudo .venv/bin/python bench/accuracy.py all

**ttfb** (issue 10: within 0.5 ms of curl, with the response parsed by h11;
issue 4 asked 1 ms). A local HTTP server (``tests/probes/servers_http.py`` in
its own process) waits ``--delay-ms`` before answering ``/slow``, so there is
a first-byte delay worth measuring.
On that one target, in one run, samples alternate between our probe
(``run_probe`` with count 1, exactly what ``manage.py probe`` runs) and curl
(``-w '%{time_pretransfer} %{time_starttransfer}'``, ttfb = starttransfer -
pretransfer), swapping who goes first every round. Both make a new connection
each time. Printed: each median (and quartiles), and the difference of medians;
once over http and once over https (a ``trustme`` CA given to both).

**throughput** (within 10% of iperf3 over a link the kernel shapes). Needs
root. Two network namespaces joined by a veth pair (10.77.0.1/30 and
10.77.0.2/30, addresses that exist only inside them), each end shaped with
``tc qdisc ... tbf rate 50mbit burst 32kbit latency 400ms``. In the server
namespace run ``iperf3 -s`` and the test HTTP server; from the client namespace,
alternately, ``iperf3 -c -R`` (the server sends, the same direction as our
download) and ``manage.py probe http://10.77.0.1:8080/large?bytes=N
--throughput`` with ``PROBE_ALLOWED_NETWORKS=10.77.0.0/30``. Printed: both
rates, their ratio, and the TCP goodput ceiling of the shaped rate. The
namespaces are removed at the end, also on Ctrl-C or SIGTERM.

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
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
# A developer's tool, as before DEBUG defaulted to off (the settings need a key without it).
os.environ.setdefault("DJANGO_DEBUG", "true")

from probes.base import ProbeConfig  # noqa: E402
from probes.runner import run_probe  # noqa: E402

PYTHON = sys.executable
LOOPBACK = "127.0.0.0/8"  # the policy for probes of this benchmark's own local servers
SERVER_MODULE = "tests.probes.servers_http"
TTFB_TOLERANCE_MS = 0.5  # |median ours - median curl|, issue 10


# --- Helpers ---------------------------------------------------------------------------


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@contextmanager
def server_process(
    prefix: Sequence[str] = (), host: str = "127.0.0.1", port: int = 0, tls: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The test HTTP server in its own process; yields (process, port)."""
    command = [*prefix, PYTHON, "-m", SERVER_MODULE, "--host", host, "--port", str(port), *tls]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 3 or line[0] != "listening":
            raise RuntimeError(f"test server did not start: {line}")
        yield process, int(line[2])
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def curl_ttfb_ms(url: str, extra: Sequence[str] = ()) -> float:
    out = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--output",
            "/dev/null",
            "--write-out",
            "%{time_pretransfer} %{time_starttransfer}",
            *extra,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    pretransfer, starttransfer = (float(v) for v in out)
    return (starttransfer - pretransfer) * 1000.0


async def our_ttfb_ms(url: str) -> float:
    result = await run_probe(url, ProbeConfig(count=1, timeout_s=5.0), allowed_networks=LOOPBACK)
    ttfb = result.phases_ms.get("ttfb")
    if not result.ok or ttfb is None:
        raise RuntimeError(f"probe failed: {result.error}")
    return ttfb


# --- TTFB against curl ------------------------------------------------------------------


async def compare_ttfb(label: str, url: str, curl_extra: Sequence[str], rounds: int) -> bool:
    ours: list[float] = []
    curls: list[float] = []
    # One of each first, not counted: imports, SSL context and curl's disk cache warm up.
    await our_ttfb_ms(url)
    curl_ttfb_ms(url, curl_extra)
    for index in range(rounds):
        if index % 2 == 0:
            ours.append(await our_ttfb_ms(url))
            curls.append(curl_ttfb_ms(url, curl_extra))
        else:
            curls.append(curl_ttfb_ms(url, curl_extra))
            ours.append(await our_ttfb_ms(url))
    o1, o2, o3 = quartiles(ours)
    c1, c2, c3 = quartiles(curls)
    diff = o2 - c2
    ok = abs(diff) <= TTFB_TOLERANCE_MS
    print(f"{label}: {url}, {rounds} alternating samples each")
    print(f"  switchboard ttfb  median {o2:8.3f} ms   (p25 {o1:.3f}, p75 {o3:.3f})")
    print(f"  curl        ttfb  median {c2:8.3f} ms   (p25 {c1:.3f}, p75 {c3:.3f})")
    verdict = "within" if ok else "OUTSIDE"
    print(f"  difference of medians {diff:+.3f} ms -> {verdict} {TTFB_TOLERANCE_MS:g} ms")
    return ok


def run_ttfb(rounds: int, delay_ms: int) -> bool:
    import trustme

    ok = True
    with server_process() as (_, port):
        url = f"http://127.0.0.1:{port}/slow?ms={delay_ms}"
        ok &= asyncio.run(compare_ttfb("http", url, [], rounds))
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_file, chain, key = (Path(tmp) / n for n in ("ca.pem", "chain.pem", "key.pem"))
        ca.cert_pem.write_to_path(str(ca_file))
        cert.private_key_pem.write_to_path(str(key))
        for blob in cert.cert_chain_pems:
            blob.write_to_path(str(chain), append=True)
        os.environ["PROBE_CA_FILE"] = str(ca_file)
        tls_args = ["--certfile", str(chain), "--keyfile", str(key)]
        with server_process(tls=tls_args) as (_, port):
            url = f"https://127.0.0.1:{port}/slow?ms={delay_ms}"
            ok &= asyncio.run(compare_ttfb("https", url, ["--cacert", str(ca_file)], rounds))
    return ok


# --- Throughput against iperf3 ------------------------------------------------------------

SRV_NS, CLI_NS = "sbbench-srv", "sbbench-cli"
SRV_IF, CLI_IF = "sbb-veth0", "sbb-veth1"
SRV_IP, CLI_IP = "10.77.0.1", "10.77.0.2"
SUBNET = "10.77.0.0/30"
HTTP_PORT, IPERF_PORT = 8080, 5201


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def netns_up(rate_mbit: int) -> None:
    netns_down()
    sh("ip", "netns", "add", SRV_NS)
    sh("ip", "netns", "add", CLI_NS)
    sh("ip", "link", "add", SRV_IF, "type", "veth", "peer", "name", CLI_IF)
    sh("ip", "link", "set", SRV_IF, "netns", SRV_NS)
    sh("ip", "link", "set", CLI_IF, "netns", CLI_NS)
    for ns, dev, address in ((SRV_NS, SRV_IF, SRV_IP), (CLI_NS, CLI_IF, CLI_IP)):
        sh("ip", "-n", ns, "addr", "add", f"{address}/30", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(
            "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
            "rate", f"{rate_mbit}mbit", "burst", "32kbit", "latency", "400ms",
        )  # fmt: skip


def netns_down() -> None:
    # Deleting a namespace deletes its end of the veth pair, and with it the peer.
    for ns in (SRV_NS, CLI_NS):
        sh("ip", "netns", "del", ns, check=False)


def wait_listening(ns: str, port: int, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        out = sh("ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}").stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} in {ns}")


def iperf3_bps(seconds: int) -> float:
    out = sh(
        "ip", "netns", "exec", CLI_NS, "iperf3", "-c", SRV_IP, "-p", str(IPERF_PORT),
        "-R", "-t", str(seconds), "-J",
    ).stdout  # fmt: skip
    report = json.loads(out)
    return float(report["end"]["sum_received"]["bits_per_second"])


def probe_bps(size: int, count: int) -> float:
    url = f"http://{SRV_IP}:{HTTP_PORT}/large?bytes={size}"
    process = subprocess.run(
        [
            "ip", "netns", "exec", CLI_NS, "env", f"PROBE_ALLOWED_NETWORKS={SUBNET}",
            PYTHON, "manage.py", "probe", url, "--throughput", "--count", str(count),
            "--interval", "10", "--timeout", "30", "--format", "json",
        ],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if process.returncode != 0:
        raise RuntimeError(f"probe failed ({process.returncode}): {process.stderr.strip()}")
    result = json.loads(process.stdout)
    if result["throughput_bps"] is None or result["succeeded"] != count:
        raise RuntimeError(f"probe gave no throughput: {result['error']}")
    return float(result["throughput_bps"])


def run_throughput(rounds: int, rate_mbit: int, size_mb: int, seconds: int) -> bool:
    if os.geteuid() != 0:
        print("throughput: needs root (network namespaces and tc); skipped")
        return False
    iperf: subprocess.Popen[str] | None = None
    try:
        netns_up(rate_mbit)
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", SRV_NS, "iperf3", "-s", "-B", SRV_IP, "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        prefix = ["ip", "netns", "exec", SRV_NS]
        with server_process(prefix, host=SRV_IP, port=HTTP_PORT):
            wait_listening(SRV_NS, IPERF_PORT)
            theirs: list[float] = []
            ours: list[float] = []
            for _ in range(rounds):
                theirs.append(iperf3_bps(seconds))
                ours.append(probe_bps(size_mb * 1_000_000, count=2))
    finally:
        if iperf is not None:
            iperf.terminate()
            iperf.wait(5)
        netns_down()
    ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
    ratio = ours_m / theirs_m
    ok = abs(ratio - 1.0) <= 0.10
    # TCP payload per 1514-byte frame with timestamps (MSS 1448): the goodput ceiling.
    ceiling = rate_mbit * 1448 / 1514
    print(f"throughput over veth shaped by tbf at {rate_mbit} Mbit/s (ceiling ~{ceiling:.2f})")
    print(f"  iperf3 -R         {' '.join(f'{v / 1e6:.2f}' for v in theirs)} Mbit/s")
    print(f"  switchboard http  {' '.join(f'{v / 1e6:.2f}' for v in ours)} Mbit/s")
    print(f"  medians: iperf3 {theirs_m / 1e6:.2f}, switchboard {ours_m / 1e6:.2f} Mbit/s")
    print(f"  ratio switchboard / iperf3 = {ratio:.3f} -> {'within' if ok else 'OUTSIDE'} 10%")
    return ok


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["ttfb", "throughput", "all"], nargs="?", default="all")
    parser.add_argument("--rounds", type=int, default=None, help="samples (ttfb) or rounds")
    parser.add_argument("--delay-ms", type=int, default=20)
    parser.add_argument("--rate-mbit", type=int, default=50)
    parser.add_argument("--size-mb", type=int, default=25, help="body size per download")
    parser.add_argument("--iperf-seconds", type=int, default=8)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ok = True
    try:
        if args.what in ("ttfb", "all"):
            ok &= run_ttfb(args.rounds or 200, args.delay_ms)
        if args.what in ("throughput", "all"):
            rounds = args.rounds or 2
            ok &= run_throughput(rounds, args.rate_mbit, args.size_mb, args.iperf_seconds)
    except KeyboardInterrupt:
        print("interrupted; servers stopped and namespaces removed", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
