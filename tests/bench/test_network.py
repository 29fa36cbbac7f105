"""`bench/run --network realistic` at tiny size: HTTPS shops in a network namespace of their own, with
delay and loss on the veth. Needs root (`ip netns`) and nginx; skips with the reason otherwise.
No speed is asserted: that the delay is there, that the CA is needed, that every page was read
right through it, and that nothing (namespace, veth, nginx, relay) is left behind, Ctrl-C/SIGTERM included."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench.netns import NAMESPACE_PREFIX, network_unavailable, realistic_network
from bench.runner import child_env, serve_realistic
from bench.static_server import find_nginx
from bench.synthetic_web import SyntheticWeb


def require_network_bench() -> None:
    why = network_unavailable()
    if why:
        pytest.skip(f"the network benchmark {why}")
    missing = None
    if find_nginx() is None:
        missing = "nginx is not installed (Debian package `nginx`)"
    elif subprocess.run(["sh", "-c", "command -v nft"], capture_output=True, check=False).returncode != 0:
        missing = "nft is not installed (Debian package `nftables`), needed where the kernel lacks tc netem"
    if missing:
        if os.environ.get("PRICEMON_TEST_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{missing}, and PRICEMON_TEST_REQUIRE_TOOLS=1 requires it")
        pytest.skip(missing)


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(NAMESPACE_PREFIX)]


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def get_times(base_url: str, path: str, context: ssl.SSLContext, count: int) -> list[float]:
    host, port = base_url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    times = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            times.append(time.perf_counter() - began)
            assert response.status == 200 and b"</html>" in body
    finally:
        connection.close()
    return times


def test_the_shops_answer_over_https_with_delay_and_everything_goes_afterwards(
    small_web: SyntheticWeb, tmp_path: Path
) -> None:
    require_network_bench()
    roots = {shop.name: small_web.shop_root(shop.name) for shop in small_web.shops}
    shop = small_web.shops[0].name
    path = next(line.split(",")[2] for line in (small_web.root / "truth.csv").read_text().splitlines()[1:3])
    with ExitStack() as stack:
        network = stack.enter_context(realistic_network())
        name, veth = network.namespace, network.host_veth
        assert name in namespaces() and veth in links()
        server, base_urls = serve_realistic(network, roots, tmp_path, stack)
        assert all(url.startswith(f"https://{network.shop_address}:") for url in base_urls.values())

        untrusted = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            get_times(base_urls[shop], path, untrusted, 1)
        trusted = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.pem"))
        # Keep-alive: after the handshake each GET is one round trip, which crosses the shaped link.
        times = get_times(base_urls[shop], path, trusted, 12)[1:]
        assert min(times) >= 0.018, times  # 40 ms +- 20 ms: never under 20 (minus timer slack)
        assert sorted(times)[len(times) // 2] >= 0.025, times
        served = [server.processes[0].pid]
        if network.relay is not None:
            served.append(network.relay.pid)
    assert name not in namespaces()
    assert veth not in links()
    for pid in served:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def bench_command(bench_cache: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench",
        "--network",
        "realistic",
        "--shops",
        "2",
        "--products",
        "20",
        "--database",
        "sqlite",
        "--cache-dir",
        str(bench_cache),
        "--results",
        str(tmp_path / "RESULTS.md"),
        "--json",
        str(tmp_path / "figures.json"),
        *extra,
    ]


def test_the_network_bench_reads_every_page_and_reports_cpu_per_page(bench_cache: Path, tmp_path: Path) -> None:
    require_network_bench()
    before = namespaces()
    done = subprocess.run(
        bench_command(bench_cache, tmp_path),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "figures.json").read_text())
    assert data["network"].startswith("realistic: HTTPS"), data["network"]
    (sqlite,) = data["backends"]
    assert sqlite["accuracy_ratio"] == 1.0
    steps = {step["name"]: step for step in sqlite["steps"]}
    assert steps["scrape (full sweep)"]["history_rows_added"] == 40
    assert steps["scrape (full sweep)"]["cpu_ms_per_page"] > 0
    assert data["scrapy_accuracy_ratio"] == 1.0 and data["scrapy"]["cpu_ms_per_page"] > 0
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| sweep | pages/s | CPU ms per page | pages/s vs Scrapy |" in results
    assert "trusted through scrape.ca_bundle" in results
    assert namespaces() == before


def test_sigterm_mid_run_removes_the_namespace_and_its_servers(bench_cache: Path, tmp_path: Path) -> None:
    require_network_bench()
    process = subprocess.Popen(
        bench_command(bench_cache, tmp_path, "--skip-scrapy"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )
    name = f"{NAMESPACE_PREFIX}{process.pid}"
    deadline = time.monotonic() + 120
    pids: list[str] = []
    while time.monotonic() < deadline and process.poll() is None:
        if name in namespaces():
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            if len(pids) >= 2:  # nginx's master and workers (and the relay) are up
                break
        time.sleep(0.2)
    assert pids, "the namespace never came up: " + (process.stderr.read() if process.poll() is not None else "")
    time.sleep(1.0)  # into the pricemon steps
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert name not in namespaces(), stderr[-2000:]
    assert f"pmb{process.pid}h" not in links()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} of the namespace survived"
