"""The review workspace under load: `python -m bench.web [--products N] [--database sqlite|postgresql|both]`.

Builds (or reuses) a store of N products (default 172,800) with pending suggestions, starts
`pricemon serve` on a free port as a child process with a viewer token, and from a second process
(`bench.web_load`, a closed loop of a fixed number of connections) measures the review page (50
rows), a filtered review page and the API's suggestions list: p50/p95 latency and requests/s, and the
server's CPU per request. Figures are printed and appended to bench/RESULTS.md; `bench/run` runs
the same step after its sweeps (see bench/README.md, "The review workspace").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.web_load import WINDOW_OPEN

logger = logging.getLogger(__name__)

DEFAULT_PRODUCTS = 172_800
DEFAULT_COMPETITORS = 3
DEFAULT_SEED = 20261203
DEFAULT_CACHE = Path("/tmp/pricemon-webbench")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/"
#: bump when the generated store changes, so a cached one is rebuilt
BUILDER_VERSION = 1
TOKEN_NAME = "webbench"

# The targets.
TARGET_PAGE_P95_MS = 300.0
TARGET_API_REQUESTS_PER_S = 200.0

TAGS = ("garden", "kitchen", "tools", "toys", "audio", "office", "outdoor", "pets")
NOUNS = ("kettle", "drill", "lamp", "chair", "speaker", "hose", "blender", "router", "tent", "leash")
ADJECTIVES = ("steel", "compact", "pro", "classic", "cordless", "smart", "deluxe", "mini")


@dataclass(frozen=True)
class Scenario:
    """One measured request mix: a name, the paths taken in turn, and whether it is a page or the API."""

    name: str
    paths: tuple[str, ...]
    kind: str  # "page" (session cookie) or "api" (bearer token)


def scenarios(filter_tag: str = "kitchen") -> list[Scenario]:
    return [
        Scenario("review page (50 rows)", ("/?limit=50",), "page"),
        Scenario(
            "review page, filtered",
            (f"/?tag={filter_tag}&direction=cut&limit=50", "/?q=cordless&limit=50", "/?min_change=5&limit=50"),
            "page",
        ),
        Scenario("API suggestions (50)", ("/api/v1/suggestions?limit=50",), "api"),
        # last: its cold counts keep the database busy, which the other scenarios should not inherit
        Scenario("review page, filtered, counted afresh", fresh_filters(), "page"),
    ]


def fresh_filters(count: int = 400) -> tuple[str, ...]:
    """Filtered pages that are each asked for once in a run: text searches and tag + size-of-change
    filters, all different, so that none is answered from the count a server keeps per snapshot
    (monitor/store/review.py, review_totals) and every request counts its filtered set afresh."""
    paths = []
    for i in range(count // 2):
        paths.append(f"/?q={NOUNS[i % len(NOUNS)]}%20{i}&limit=50")
        paths.append(f"/?tag={TAGS[i % len(TAGS)]}&min_change={1 + i / 100:.2f}&limit=50")
    return tuple(paths)


@dataclass
class StoreInfo:
    database_url: str
    config: Path
    products: int
    competitors: int
    pending: int
    build_seconds: float | None  # None: reused


@dataclass
class ScenarioResult:
    scenario: str
    kind: str
    paths: list[str]
    load: dict[str, Any]
    server_cpu_seconds: float | None = None
    #: the load's connections per server process after the warm-up, e.g. [2, 2] (uvicorn workers)
    connections_per_process: list[int] = field(default_factory=list)

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        ok = self.load.get("ok") or 0
        if self.server_cpu_seconds is None or not ok:
            return None
        return self.server_cpu_seconds * 1000 / ok


@dataclass
class Target:
    name: str
    passed: bool
    detail: str


@dataclass
class WebRun:
    backend: str
    products: int = 0
    competitors: int = 0
    pending: int = 0
    build_seconds: float | None = None
    server: str = ""
    results: list[ScenarioResult] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    load_average: list[float] = field(default_factory=list)  # 1-minute load before and after the load


# ---------------------------------------------------------------------------------------------------
# the store


def pricemon_executable() -> str:
    beside = Path(sys.executable).parent / "pricemon"
    if beside.exists():
        return str(beside)
    found = shutil.which("pricemon")
    if found is None:
        raise SystemExit("bench.web: `pricemon` not found beside this Python or on PATH; install the project first")
    return found


def child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def pricemon(config: Path, database_url: str, *args: str, timeout: float = 1800) -> str:
    command = [pricemon_executable(), "--config", str(config), "--database-url", database_url, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=timeout, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout)[-1500:]
        raise RuntimeError(f"pricemon {' '.join(args)} exited {done.returncode}: {said}")
    return done.stdout


def competitor_names(competitors: int) -> list[str]:
    return [f"shop{c:02d}" for c in range(competitors)]


def write_config(path: Path, competitors: int) -> None:
    """One competitor in three lists its prices in USD (converted), the rest in EUR; a max_change
    and a margin floor make some suggestions hit guardrails; the "sale" tag undercuts."""
    body = "".join(
        f'[[competitors]]\nname = "{name}"\nbase_url = "http://127.0.0.1:9/{name}/"\n'
        for name in competitor_names(competitors)
    )
    body += (
        '\n[pricing]\nrates = { "USD:EUR" = 0.92 }\n'
        '\n[pricing.default]\nstrategies = ["match_lowest"]\nmax_age = "30d"\nmin_margin = 5\nmax_change = 20\n'
        '\n[pricing.tags.sale]\nstrategies = ["undercut", "match_lowest"]\n'
    )
    path.write_text(body, encoding="utf-8")


def write_catalog(work: Path, products: int, competitors: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    products_csv = work / "products.csv"
    listings_csv = work / "listings.csv"
    with products_csv.open("w", encoding="utf-8") as out:
        out.write("sku,name,price,currency,cost,tags\n")
        for i in range(products):
            price = rng.randint(1000, 9000) / 100
            cost = price * rng.uniform(0.4, 0.85)
            tags = [TAGS[i % len(TAGS)]] + (["sale"] if rng.random() < 0.1 else [])
            name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} {i}"
            out.write(f"P{i:06d},{name},{price:.2f},EUR,{cost:.2f},{';'.join(tags)}\n")
    with listings_csv.open("w", encoding="utf-8") as out:
        out.write("sku,competitor,url\n")
        for name in competitor_names(competitors):
            for i in range(products):
                out.write(f"P{i:06d},{name},http://127.0.0.1:9/{name}/p/{i}\n")
    return products_csv, listings_csv


def record_observations(database_url: str, competitors: int, seed: int) -> None:
    """Two checks per listing, three hours apart: the second moves about a third of the prices
    (one in a hundred of those by more than half, so it is stored as suspicious); 8% out of stock."""
    from sqlalchemy import select

    from monitor.store.database import open_store
    from monitor.store.history import CheckResult, record_checks
    from monitor.store.models import Competitor, Listing, Product

    rng = random.Random(seed + 1)
    store = open_store(database_url, migrate=False)
    try:
        with store.session() as session:
            rows = session.execute(
                select(Listing.id, Product.price, Competitor.name)
                .join(Product, Product.id == Listing.product_id)
                .join(Competitor, Competitor.id == Listing.competitor_id)
                .order_by(Listing.id)
            ).all()
        usd = competitor_names(competitors)[-1] if competitors > 1 else None
        now = datetime.now(UTC)
        first: list[CheckResult] = []
        second: list[CheckResult] = []
        for listing_id, our_price, competitor in rows:
            currency = "USD" if competitor == usd else "EUR"
            price = (Decimal(our_price) * Decimal(str(round(rng.uniform(0.78, 1.2), 3)))).quantize(Decimal("0.01"))
            if currency == "USD":
                price = (price / Decimal("0.92")).quantize(Decimal("0.01"))
            in_stock = rng.random() >= 0.08
            first.append(CheckResult(listing_id, "observed", now - timedelta(hours=3), price, currency, in_stock))
            if rng.random() < 0.33:
                factor = Decimal("1.8") if rng.random() < 0.01 else Decimal(str(round(rng.uniform(0.95, 1.05), 3)))
                price = (price * factor).quantize(Decimal("0.01"))
            second.append(CheckResult(listing_id, "observed", now, price, currency, in_stock))
        for batch in (first, second):
            for begin in range(0, len(batch), 5000):
                with store.session() as session:
                    record_checks(session, batch[begin : begin + 5000], run_id=None, interval=timedelta(hours=1))
    finally:
        store.dispose()


def count_pending(database_url: str) -> int:
    from sqlalchemy import func, select

    from monitor.store.database import make_engine
    from monitor.store.models import Suggestion

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).select_from(Suggestion).where(Suggestion.status == "pending")
            ).scalar_one())
    finally:
        engine.dispose()


def build_store(work: Path, database_url: str, products: int, competitors: int, seed: int) -> int:
    """Fill an empty database through pricemon itself; returns the number of pending suggestions."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "pricemon.toml"
    write_config(config, competitors)
    products_csv, listings_csv = write_catalog(work, products, competitors, seed)
    pricemon(config, database_url, "db", "upgrade")
    pricemon(config, database_url, "import", "products", str(products_csv))
    pricemon(config, database_url, "import", "listings", str(listings_csv))
    record_observations(database_url, competitors, seed)
    pricemon(config, database_url, "suggest")
    settle(database_url)
    return count_pending(database_url)


def settle(database_url: str) -> None:
    """What autovacuum does to a store in use within minutes of a `pricemon suggest`: statistics
    and the visibility map. Measured without them, PostgreSQL guesses 663 pending rows for 172,505
    and counts them from the heap (620 ms) instead of the index."""
    if not database_url.startswith("postgresql"):
        return
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def store_key(products: int, competitors: int, seed: int) -> str:
    # No schema revision in the key: a reused store is upgraded instead (new tables, such as the
    # tokens', cost nothing to add; rebuilding 172,800 products takes minutes).
    return f"p{products}-c{competitors}-s{seed}-v{BUILDER_VERSION}"


@contextmanager
def bench_store(
    backend: str, products: int, competitors: int, seed: int, *, cache: Path, postgres_url: str, keep: bool
) -> Iterator[StoreInfo]:
    """The store for one backend. SQLite's is cached under `cache` (a `ready` file marks it whole);
    PostgreSQL's is a fresh database, dropped afterwards unless `keep`."""
    key = store_key(products, competitors, seed)
    work = cache / f"{backend}-{key}"
    if backend == "sqlite":
        ready = work / "ready.json"
        url = f"sqlite:///{work / 'pricemon.db'}"
        if ready.exists():
            info = json.loads(ready.read_text(encoding="utf-8"))
            pricemon(work / "pricemon.toml", url, "db", "upgrade")
            logger.info("reusing the store in %s (%d pending suggestions)", work, info["pending"])
            yield StoreInfo(url, work / "pricemon.toml", products, competitors, info["pending"], None)
            return
        shutil.rmtree(work, ignore_errors=True)
        began = time.perf_counter()
        pending = build_store(work, url, products, competitors, seed)
        seconds = time.perf_counter() - began
        ready.write_text(json.dumps({"pending": pending, "seconds": seconds}), encoding="utf-8")
        logger.info("built the store in %s in %.1f s (%d pending suggestions)", work, seconds, pending)
        yield StoreInfo(url, work / "pricemon.toml", products, competitors, pending, seconds)
        return

    import psycopg

    # Kept databases are named by their contents, so the next `--keep` run reuses one (after `db upgrade`).
    name = f"pricemon_webbench_{zlib.crc32(key.encode()):08x}" if keep else f"pricemon_webbench_{os.getpid()}"
    server_url = postgres_url.rstrip("/")
    admin_dsn = server_url.replace("postgresql+psycopg://", "postgresql://", 1) + "/postgres"
    url = f"{server_url}/{name}"
    ready = work / "ready.json"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        reuse = keep and exists and ready.exists()
        if not reuse:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        if reuse:
            pending = json.loads(ready.read_text(encoding="utf-8"))["pending"]
            pricemon(work / "pricemon.toml", url, "db", "upgrade")
            logger.info("reusing the PostgreSQL store %s (%d pending suggestions)", name, pending)
            yield StoreInfo(url, work / "pricemon.toml", products, competitors, pending, None)
            return
        shutil.rmtree(work, ignore_errors=True)
        began = time.perf_counter()
        pending = build_store(work, url, products, competitors, seed)
        seconds = time.perf_counter() - began
        ready.write_text(json.dumps({"pending": pending, "seconds": seconds}), encoding="utf-8")
        logger.info("built the PostgreSQL store %s in %.1f s (%d pending suggestions)", name, seconds, pending)
        yield StoreInfo(url, work / "pricemon.toml", products, competitors, pending, seconds)
    finally:
        if keep:
            logger.info("kept PostgreSQL database %s", name)
        else:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_token(store: StoreInfo, role: str = "viewer") -> tuple[str, str]:
    """A fresh token (name, token) for this run; a reused store keeps only revoked bench tokens."""
    name = f"{TOKEN_NAME}-{os.getpid()}-{int(time.time())}"
    out = pricemon(store.config, store.database_url, "tokens", "create", name, "--role", role, "--json")
    return name, str(json.loads(out)["token"])


def revoke_token(store: StoreInfo, name: str) -> None:
    pricemon(store.config, store.database_url, "tokens", "revoke", name)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
        return total

    def connections_per_process(self) -> list[int]:
        """Established connections to the server's port held by each process that serves it, largest
        first (each worker listens on its own SO_REUSEPORT socket: the kernel picks one by a hash of
        the connection's addresses and ports, so 4 connections split 2+2, 3+1 or 4)."""
        import psutil

        port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])
        counts = []
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                held = sum(
                    1 for c in proc.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
                )
                if held:
                    counts.append(held)
        except psutil.NoSuchProcess:
            pass
        return sorted(counts, reverse=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serve(store: StoreInfo, work: Path, workers: int | None) -> Iterator[Server]:
    port = free_port()
    log = work / f"serve-{port}.log"
    command = [pricemon_executable(), "--config", str(store.config), "--database-url", store.database_url,
               "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env())
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_up(server)
        yield server
    finally:
        server.stop()


def wait_until_up(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"pricemon serve exited {server.process.returncode}: "
                               f"{server.log.read_text(errors='replace')[-1500:]}")
        try:
            with urllib.request.urlopen(server.base_url + "/api/v1/health", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"pricemon serve did not answer on {server.base_url} within {timeout:.0f} s")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def login(base_url: str, token: str) -> dict[str, str]:
    """Log in through the login form like a browser: GET it for its CSRF field, POST the token,
    keep the cookies the server sets."""
    from http.cookiejar import CookieJar

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    fields = {"token": token}
    with opener.open(base_url + "/login", timeout=30) as response:
        page = response.read().decode("utf-8", "replace")
    for tag in re.findall(r"<input[^>]*>", page):
        if re.search(r'name="csrf_token"', tag):
            value = re.search(r'value="([^"]*)"', tag)
            if value:
                fields["csrf_token"] = value.group(1)
    data = urllib.parse.urlencode(fields).encode()
    try:
        opener.open(urllib.request.Request(base_url + "/login", data=data, method="POST"), timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code not in (302, 303):
            raise RuntimeError(f"logging in to {base_url}/login failed: HTTP {exc.code}") from exc
    cookies = {c.name: c.value for c in jar}
    if not cookies:
        raise RuntimeError(f"logging in to {base_url}/login set no session cookie")
    return cookies


CHECKED_PATHS = 4


def check_paths(server: Server, scenario: Scenario, headers: dict[str, str], cookies: dict[str, str]) -> None:
    """Each path once before the load (the first few of a long list: each kind of filter is among
    them, and asking for all would count them ahead of the scenario that must count afresh): a page
    that fails or is not what was asked for stops the run with what the server said, instead of
    being timed as a fast error. The load itself checks every status."""
    for path in scenario.paths[:CHECKED_PATHS]:
        request = urllib.request.Request(server.base_url + path, headers=dict(headers))
        if cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        try:
            with urllib.request.build_opener(_NoRedirect).open(request, timeout=60) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"GET {path} answered HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        if scenario.kind == "api":
            data = json.loads(body)
            items = data.get("items") if isinstance(data, dict) else data
            if items is not None and not items:
                raise RuntimeError(f"GET {path} returned an empty list: {body[:300]!r}")


def measure(
    server: Server, scenario: Scenario, *, token: str, cookies: dict[str, str], connections: int,
    seconds: float, warmup: float,
) -> ScenarioResult:
    headers = {"Authorization": f"Bearer {token}"} if scenario.kind == "api" else {}
    check_paths(server, scenario, headers, cookies if scenario.kind == "page" else {})
    command = [sys.executable, "-m", "bench.web_load", *(server.base_url + p for p in scenario.paths),
               "--connections", str(connections), "--seconds", str(seconds), "--warmup", str(warmup)]
    command += [f"--header={k}: {v}" for k, v in headers.items()]
    if scenario.kind == "page":
        command += [f"--cookie={k}={v}" for k, v in cookies.items()]
    # The warm-up's server CPU is left out by sampling when the load says its window opened (its own
    # start-up, importing aiohttp, can take longer than a short warm-up on a loaded machine).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    assert process.stderr is not None
    said = b""
    for line in process.stderr:  # until the window opens, or the load ends without one
        if line.decode(errors="replace").strip() == WINDOW_OPEN:
            break
        said += line
    split = server.connections_per_process()
    cpu_start = server.cpu_seconds()
    out, err = process.communicate(timeout=seconds + warmup + 120)
    err = said + err
    cpu_end = server.cpu_seconds()
    if process.returncode != 0:
        raise RuntimeError(f"bench.web_load exited {process.returncode}: {err.decode(errors='replace')[-1500:]}")
    load = json.loads(out)
    return ScenarioResult(scenario.name, scenario.kind, list(scenario.paths), load, cpu_end - cpu_start, split)


# ---------------------------------------------------------------------------------------------------
# a run


def pricemon_serves() -> bool:
    try:
        done = subprocess.run([pricemon_executable(), "serve", "--help"], capture_output=True, timeout=60,
                              check=False, env=child_env())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def parse_scenario(text: str) -> Scenario:
    """`NAME|page|PATH[|PATH...]` or `NAME|api|PATH...` (`--scenario`, replacing the default three)."""
    parts = text.split("|")
    if len(parts) < 3 or parts[1] not in ("page", "api") or not all(p.startswith("/") for p in parts[2:]):
        raise argparse.ArgumentTypeError(f"--scenario {text!r}: expected NAME|page|/path or NAME|api|/path")
    return Scenario(parts[0], tuple(parts[2:]), parts[1])


def run_web(
    backend: str, *, products: int, competitors: int, seed: int, cache: Path, postgres_url: str, keep: bool,
    connections: int, seconds: float, warmup: float, workers: int | None,
    chosen: Sequence[Scenario] | None = None,
) -> WebRun:
    run = WebRun(backend=backend, products=products, competitors=competitors)
    if not pricemon_serves():
        run.skipped = "`pricemon serve` is not in this pricemon yet"
        return run
    try:
        with bench_store(backend, products, competitors, seed, cache=cache, postgres_url=postgres_url,
                         keep=keep) as store:
            run.pending, run.build_seconds = store.pending, store.build_seconds
            token_name, token = create_token(store)
            try:
                with serve(store, store.config.parent, workers) as server:
                    run.server = f"pricemon serve, {workers or 1} worker(s)"
                    cookies = login(server.base_url, token)
                    run.load_average.append(os.getloadavg()[0])
                    for scenario in chosen or scenarios():
                        logger.info("%s: %s, %d connections, %.0f s", backend, scenario.name, connections, seconds)
                        try:
                            run.results.append(measure(server, scenario, token=token, cookies=cookies,
                                                       connections=connections, seconds=seconds, warmup=warmup))
                        except RuntimeError as exc:  # this scenario's path fails; the others are still measured
                            logger.error("%s: %s: %s", backend, scenario.name, exc)
                            run.error = f"{scenario.name}: {exc}"[-1500:]
                    run.load_average.append(os.getloadavg()[0])
            finally:
                revoke_token(store, token_name)
    except Exception as exc:  # one backend failing (no PostgreSQL, a server error) still reports the other
        logger.error("%s: %s", backend, exc)
        run.error = str(exc)[-1500:]
    run.targets = judge(run)
    return run


def judge(run: WebRun) -> list[Target]:
    targets = []
    for result in run.results:
        load = result.load
        clean = load.get("failed", 1) == 0
        if result.kind == "page" and "p95_ms" in load:
            targets.append(Target(
                f"{result.scenario}: p95 <= {TARGET_PAGE_P95_MS:.0f} ms",
                load["p95_ms"] <= TARGET_PAGE_P95_MS and clean,
                f"p95 {load['p95_ms']:.0f} ms, {load['failed']} failed",
            ))
        if result.kind == "api":
            targets.append(Target(
                f"{result.scenario}: >= {TARGET_API_REQUESTS_PER_S:.0f} requests/s",
                load["requests_per_s"] >= TARGET_API_REQUESTS_PER_S and clean,
                f"{load['requests_per_s']:.0f} requests/s, p95 {load.get('p95_ms', float('nan')):.0f} ms, "
                f"{load['failed']} failed",
            ))
    return targets


def render_markdown(runs: Sequence[WebRun], *, connections: int, seconds: float, heading: str | None) -> str:
    lines: list[str] = []
    if heading:
        lines += [heading, ""]
    for run in runs:
        if run.skipped:
            lines.append(f"- {run.backend}: web step skipped: {run.skipped}")
            continue
        built = "reused" if run.build_seconds is None else f"built in {run.build_seconds:.0f} s"
        lines.append(
            f"Review workspace on {run.backend}: {run.products:,} products x {run.competitors} competitors, "
            f"{run.pending:,} pending suggestions (store {built}); {run.server}; load: bench.web_load, "
            f"{connections} connections, closed loop, {seconds:.0f} s per scenario after a warm-up; "
            f"1-minute load average {' -> '.join(f'{x:.1f}' for x in run.load_average) or 'n/a'} "
            "(other work on the machine shares its cores)."
        )
    lines += [
        "",
        "| database | scenario | requests | requests/s | p50 ms | p95 ms | p99 ms | max ms | failed | "
        "server CPU ms/req | client CPU s | connections per worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        for r in run.results:
            load = r.load
            cpu = r.server_cpu_ms_per_request
            lines.append(
                f"| {run.backend} | {r.scenario} | {load['requests']:,} | {load['requests_per_s']:.0f} | "
                f"{load.get('p50_ms', 0):.1f} | {load.get('p95_ms', 0):.1f} | {load.get('p99_ms', 0):.1f} | "
                f"{load.get('max_ms', 0):.0f} | {load['failed']} | {'' if cpu is None else f'{cpu:.1f}'} | "
                f"{load.get('client_cpu_seconds', 0):.1f} | {'+'.join(map(str, r.connections_per_process))} |"
            )
    lines.append("")
    for run in runs:
        for target in run.targets:
            lines.append(f"- {run.backend}: **{'PASS' if target.passed else 'MISS'}** {target.name}: {target.detail}")
        if run.error:
            lines.append(f"- {run.backend}: web step failed: `{run.error.splitlines()[-1][:300]}`")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.splitlines()[0])
    parser.add_argument("--products", "--size", type=int, default=DEFAULT_PRODUCTS,
                        help="products in the store (default 172,800)")
    parser.add_argument("--competitors", type=int, default=DEFAULT_COMPETITORS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL server (no database)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (closed loop)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measurement")
    parser.add_argument("--workers", type=int, default=None, help="uvicorn worker processes (`serve --workers`)")
    parser.add_argument("--scenario", action="append", type=parse_scenario, default=None,
                        help="NAME|page|/path or NAME|api|/path, repeatable (replaces the default three)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the SQLite store is kept")
    parser.add_argument("--keep", action="store_true",
                        help="keep the PostgreSQL database (and reuse a kept one of the same size and seed)")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--no-results", action="store_true", help="print only; append nothing to RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    return parser


def machine_line() -> str:
    from bench.runner import describe_machine

    m = describe_machine("none")
    return (f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, {m['os']}, Python {m['python']}; "
            f"{m['postgresql']}; git {m['git']}.")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    runs = [
        run_web(backend, products=args.products, competitors=args.competitors, seed=args.seed,
                cache=args.cache_dir, postgres_url=args.postgres_url, keep=args.keep,
                connections=args.connections, seconds=args.seconds, warmup=args.warmup, workers=args.workers,
                chosen=args.scenario)
        for backend in backends
    ]
    from bench.runner import _date_u

    heading = f"## {_date_u()}: review workspace (bench.web)\n\nCommand: `python -m bench.web {' '.join(argv)}`\n\n" \
              + machine_line()
    section = render_markdown(runs, connections=args.connections, seconds=args.seconds, heading=heading)
    sys.stdout.write("\n" + section)
    if not args.no_results:
        from bench.runner import append_results

        append_results(args.results, section)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2, default=str), encoding="utf-8")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
