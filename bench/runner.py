"""The benchmark run: generate (or reuse) the web, serve it, drive `pricemon` step by step, run the Scrapy
baseline on the same pages, check accuracy, print the figures with PASS/MISS and append them to RESULTS.md.

Every pricemon step is a fresh child process measured from outside (wall seconds, peak RSS of its
process tree, price-history rows before and after), so the numbers are what a user would see.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.accuracy import Accuracy, compare_to_truth, observations_from_database, observations_from_jsonl
from bench.cluster import PASSWORD_ENV, cluster_config, delete_queue, local_workers, tree_cpu_seconds
from bench.local_ca import LocalCA
from bench.netns import NetworkSetupError, RealisticNetwork, realistic_network
from bench.process_meter import MeasuredRun, run_measured
from bench.static_server import Placement, StaticServer, find_nginx, start_static_server
from bench.synthetic_web import (
    DEFAULT_CACHE_ROOT,
    DEFAULT_PRODUCTS,
    DEFAULT_SEED,
    DEFAULT_SHOPS,
    RunInputs,
    SyntheticWeb,
    generate_web,
    write_run_inputs,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/"
#: where `--serve-from memory` copies the pages (tmpfs), and the room it leaves free
MEMORY_ROOT = Path("/dev/shm")
MEMORY_HEADROOM_BYTES = 2 * 1024**3
STEP_TIMEOUT_S = 3600.0

# The issue's targets. Sweep speed is a rate so that smaller runs are judged on the same scale:
# 172,800 pages in 150 s is 1,152 pages/s.
TARGET_SWEEP_PAGES_PER_S = 1150.0
TARGET_SCRAPY_RATIO = 5.0
TARGET_SECOND_SWEEP_SPEEDUP = 2.0
TARGET_PEAK_RSS_MB = 500.0
TARGET_SUGGEST_S = 20.0
TARGET_REPORT_S = 30.0
#: the issue's target for `--cluster N`: the full sweep through the workers at >= 90% of the in-process pages/s
TARGET_CLUSTER_SHARE = 0.9


@dataclass
class Step:
    """One measured step of a run."""

    name: str
    seconds: float
    returncode: int
    peak_rss_mb: float
    pages: int | None = None
    cpu_seconds: float = 0.0
    history_rows_added: int | None = None
    output: Any = None
    error: str | None = None

    @property
    def pages_per_s(self) -> float | None:
        if self.pages is None or self.seconds <= 0:
            return None
        return self.pages / self.seconds


@dataclass
class Target:
    name: str
    passed: bool
    detail: str


@dataclass
class BackendRun:
    """Everything measured against one database backend."""

    backend: str
    steps: list[Step] = field(default_factory=list)
    accuracy: Accuracy | None = None
    targets: list[Target] = field(default_factory=list)
    skipped: str | None = None

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass
class BenchResult:
    command: str
    started_at: str
    shops: int
    products: int
    seed: int
    pages: int
    server: str
    generate_seconds: float
    machine: dict[str, str]
    served_from: str = "disk"
    #: "local" (plain HTTP on 127.0.0.1) or what `--network realistic` put between pricemon and the shops
    network: str = "local"
    backends: list[BackendRun] = field(default_factory=list)
    scrapy: Step | None = None
    scrapy_accuracy: Accuracy | None = None
    web: list[Any] = field(default_factory=list)  # bench.web.WebRun per backend
    web_connections: int = 0
    web_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------
# pricemon as a child process


def pricemon_executable() -> str:
    beside = Path(sys.executable).parent / "pricemon"
    if beside.exists():
        return str(beside)
    found = shutil.which("pricemon")
    if found is None:
        raise SystemExit("bench: `pricemon` not found beside this Python or on PATH; install the project first")
    return found


def pricemon_has(*command: str) -> bool:
    """Whether this pricemon offers `command` (the engine lands in stages; the runner adapts)."""
    try:
        done = subprocess.run([pricemon_executable(), *command, "--help"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def child_env() -> dict[str, str]:
    # The bench and monitor packages must import in children whatever the caller's working directory.
    paths = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def count_history_rows(database_url: str) -> int | None:
    from sqlalchemy import inspect, text

    from monitor.store.database import make_engine

    engine = make_engine(database_url)
    try:
        if not inspect(engine).has_table("price_history"):
            return 0
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM price_history")).scalar_one())
    except Exception as exc:  # the count is informative only; a failure must not stop the run
        logger.warning("cannot count price_history rows: %s", exc)
        return None
    finally:
        engine.dispose()


def run_pricemon_step(
    name: str, args: Sequence[str], inputs: RunInputs, database_url: str, *, pages: int | None = None
) -> Step:
    before = count_history_rows(database_url)
    command = [
        pricemon_executable(),
        "--config",
        str(inputs.config_path),
        "--database-url",
        database_url,
        *args,
    ]
    logger.info("step %s: %s", name, " ".join(args))
    measured = run_measured(command, env=child_env(), cwd=inputs.config_path.parent, timeout_s=STEP_TIMEOUT_S)
    after = count_history_rows(database_url)
    step = _step_from(name, measured, pages=pages)
    if before is not None and after is not None:
        step.history_rows_added = after - before
    if "--json" in args and measured.returncode == 0:
        try:
            step.output = json.loads(measured.stdout)
        except json.JSONDecodeError:
            step.output = measured.stdout[-2000:]
    return step


def _step_from(name: str, measured: MeasuredRun, *, pages: int | None) -> Step:
    step = Step(
        name=name,
        seconds=measured.seconds,
        returncode=measured.returncode,
        peak_rss_mb=measured.peak_rss_mb,
        pages=pages,
        cpu_seconds=measured.cpu_seconds,
    )
    if measured.returncode != 0:
        step.error = (measured.stderr.strip() or measured.stdout.strip())[-1500:]
        logger.error("step %s failed (exit %d): %s", name, measured.returncode, step.error)
    return step


# ---------------------------------------------------------------------------------------------------
# databases


@contextmanager
def bench_database(backend: str, run_dir: Path, postgres_url: str, keep: bool, suffix: str = "") -> Iterator[str]:
    """A fresh, empty database for one backend; PostgreSQL's is dropped afterwards unless `keep`."""
    if backend == "sqlite":
        yield f"sqlite:///{run_dir / 'pricemon.db'}"
        return
    import psycopg

    name = f"pricemon_bench_{os.getpid()}{suffix}"
    server_url = postgres_url.rstrip("/")
    admin_dsn = server_url.replace("postgresql+psycopg://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        if keep:
            logger.info("kept PostgreSQL database %s", name)
        else:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------------
# the run


def run_backend(backend: str, web: SyntheticWeb, inputs: RunInputs, database_url: str) -> BackendRun:
    """Every pricemon step this pricemon offers; commands not there yet are named in `skipped`."""
    result = BackendRun(backend=backend)
    missing = [name for name in ("scrape", "suggest", "report") if not pricemon_has(name)]
    if missing:
        result.skipped = "not in this pricemon yet: " + ", ".join(f"`pricemon {name}`" for name in missing)
        logger.warning("%s: %s", backend, result.skipped)
    if pricemon_has("db", "upgrade"):
        result.steps.append(run_pricemon_step("db upgrade", ["db", "upgrade"], inputs, database_url))
    for kind, path in (("products", inputs.products_csv), ("listings", inputs.listings_csv)):
        result.steps.append(run_pricemon_step(f"import {kind}", ["import", kind, str(path)], inputs, database_url))
    pages = web.page_count
    if "scrape" not in missing:
        first = run_pricemon_step("scrape (full sweep)", ["scrape", "--json"], inputs, database_url, pages=pages)
        result.steps.append(first)
        if first.returncode == 0:
            result.accuracy = compare_to_truth(observations_from_database(database_url), web.read_truth())
        result.steps.append(
            run_pricemon_step("scrape (unchanged)", ["scrape", "--json"], inputs, database_url, pages=pages)
        )
    if "suggest" not in missing:
        result.steps.append(run_pricemon_step("suggest", ["suggest"], inputs, database_url))
    if "report" not in missing:
        report_path = inputs.config_path.parent / "report.html"
        result.steps.append(run_pricemon_step("report", ["report", "--out", str(report_path)], inputs, database_url))
    return result


def cluster_label(workers: int) -> str:
    return f"postgresql, {workers} workers"


def run_cluster_backend(
    args: argparse.Namespace, web: SyntheticWeb, inputs: RunInputs, database_url: str, run_dir: Path
) -> BackendRun:
    """The full and unchanged sweeps through `args.cluster` local workers (bench/cluster.py)."""
    from urllib.parse import urlsplit, urlunsplit

    result = BackendRun(backend=cluster_label(args.cluster))
    parts = urlsplit(args.amqp_url)
    password = parts.password or ""
    broker = urlunsplit(
        (parts.scheme, f"{parts.username or 'guest'}@{parts.netloc.rpartition('@')[2]}", parts.path, "", "")
    )
    queue = f"pricemon.bench.{os.getpid()}"
    # `pricemon scrape` and the workers read it from their environment (child_env passes it on).
    os.environ[PASSWORD_ENV] = password
    inputs.config_path.write_text(
        inputs.config_path.read_text(encoding="utf-8") + cluster_config(broker, queue), encoding="utf-8"
    )
    result.steps.append(run_pricemon_step("db upgrade", ["db", "upgrade"], inputs, database_url))
    for kind, path in (("products", inputs.products_csv), ("listings", inputs.listings_csv)):
        result.steps.append(run_pricemon_step(f"import {kind}", ["import", kind, str(path)], inputs, database_url))
    command = [pricemon_executable(), "--config", str(inputs.config_path), "--database-url", database_url]
    try:
        with local_workers(
            args.cluster,
            command,
            env=child_env(),
            cwd=run_dir,
            database_url=database_url,
            password=password,
            log_dir=run_dir,
        ) as workers:
            for name in ("scrape (full sweep)", "scrape (unchanged)"):
                before = tree_cpu_seconds(workers)
                step = run_pricemon_step(name, ["scrape", "--json"], inputs, database_url, pages=web.page_count)
                step.cpu_seconds += tree_cpu_seconds(workers) - before
                result.steps.append(step)
                if name == "scrape (full sweep)" and step.returncode == 0:
                    result.accuracy = compare_to_truth(observations_from_database(database_url), web.read_truth())
    except RuntimeError as exc:
        logger.error("%s", exc)
        result.skipped = f"workers did not start: {str(exc).splitlines()[0]}"
    finally:
        delete_queue(broker, password, queue)
    return result


def judge_cluster(in_process: BackendRun, cluster: BackendRun) -> Target | None:
    ours, theirs = cluster.step("scrape (full sweep)"), in_process.step("scrape (full sweep)")
    if not ours or not theirs or ours.returncode or theirs.returncode or not ours.pages_per_s or not theirs.pages_per_s:
        return None
    share = ours.pages_per_s / theirs.pages_per_s
    accurate = cluster.accuracy is not None and cluster.accuracy.ratio == 1.0
    return Target(
        f">= {TARGET_CLUSTER_SHARE:.0%} of the in-process full sweep's pages/s on the same cores, 100% accurate",
        share >= TARGET_CLUSTER_SHARE and accurate,
        f"{share:.1%} ({ours.pages_per_s:,.0f} vs {theirs.pages_per_s:,.0f} pages/s), accuracy "
        f"{cluster.accuracy.percent if cluster.accuracy else 'n/a'}",
    )


def sample_listings(listings_csv: Path, out_path: Path, pages: int) -> set[tuple[str, str]]:
    """Write the first `pages` / shops listings of every shop (file order) to `out_path`; return
    their (competitor, sku) keys. Every shop keeps its share, so the sample is crawled with the same
    per-shop politeness and the same mix of page styles as the whole web, and its pages/s and CPU
    per page compare with a full sweep's."""
    with listings_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or ())
        rows = list(reader)
    shops = sorted({row["competitor"] for row in rows})
    share = max(1, -(-pages // max(1, len(shops))))  # ceiling
    taken: dict[str, int] = {}
    chosen = []
    for row in rows:
        if taken.get(row["competitor"], 0) < share:
            taken[row["competitor"]] = taken.get(row["competitor"], 0) + 1
            chosen.append(row)
    with out_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return {(row["competitor"], row["sku"]) for row in chosen}


def run_scrapy(inputs: RunInputs, out_dir: Path, pages: int, listings_csv: Path | None = None) -> tuple[Step, Path]:
    out_path = out_dir / "scrapy-items.jsonl"
    command = [
        sys.executable,
        "-m",
        "bench.scrapy_baseline",
        "--config",
        str(inputs.config_path),
        "--listings",
        str(listings_csv or inputs.listings_csv),
        "--out",
        str(out_path),
    ]
    logger.info("step scrapy baseline")
    # cwd is the run dir, so `-m` resolves bench/monitor through PYTHONPATH only.
    measured = run_measured(command, env=child_env(), cwd=out_dir, timeout_s=STEP_TIMEOUT_S)
    step = _step_from("scrapy baseline", measured, pages=pages)
    if measured.returncode == 0:
        step.output = json.loads(measured.stdout.strip().splitlines()[-1])
    return step, out_path


def judge(backend: BackendRun, scrapy: Step | None) -> list[Target]:
    targets = []
    first = backend.step("scrape (full sweep)")
    second = backend.step("scrape (unchanged)")
    if first and first.returncode == 0 and first.pages_per_s is not None:
        accurate = backend.accuracy is not None and backend.accuracy.ratio == 1.0
        targets.append(
            Target(
                "full sweep >= 1,150 pages/s (172,800 pages <= 150 s), 100% accurate",
                first.pages_per_s >= TARGET_SWEEP_PAGES_PER_S and accurate,
                f"{first.pages_per_s:,.0f} pages/s, {first.seconds:.1f} s, accuracy "
                f"{backend.accuracy.percent if backend.accuracy else 'n/a'}",
            )
        )
        if scrapy and scrapy.returncode == 0 and scrapy.pages_per_s:
            ratio = first.pages_per_s / scrapy.pages_per_s
            targets.append(
                Target(
                    ">= 5x Scrapy's pages/s",
                    ratio >= TARGET_SCRAPY_RATIO,
                    f"{ratio:.2f}x ({first.pages_per_s:,.0f} vs {scrapy.pages_per_s:,.0f} pages/s)",
                )
            )
        if second and second.returncode == 0:
            speedup = first.seconds / second.seconds if second.seconds else float("inf")
            targets.append(
                Target(
                    "second sweep >= 2x faster, 0 new history rows",
                    speedup >= TARGET_SECOND_SWEEP_SPEEDUP and second.history_rows_added == 0,
                    f"{speedup:.2f}x faster ({second.seconds:.1f} s), {second.history_rows_added} new rows",
                )
            )
    measured = [s for s in backend.steps if s.returncode == 0]
    # Judged only with a sweep in the run: imports alone say nothing about the 500 MB budget.
    if measured and first is not None:
        peak = max(s.peak_rss_mb for s in measured)
        targets.append(Target("peak RSS <= 500 MB", peak <= TARGET_PEAK_RSS_MB, f"{peak:.0f} MB"))
    for name, limit in (("suggest", TARGET_SUGGEST_S), ("report", TARGET_REPORT_S)):
        step = backend.step(name)
        if step:
            targets.append(
                Target(
                    f"{name} <= {limit:.0f} s",
                    step.returncode == 0 and step.seconds <= limit,
                    f"{step.seconds:.1f} s" + ("" if step.returncode == 0 else f", failed (exit {step.returncode})"),
                )
            )
    return targets


@contextmanager
def served_roots(web: SyntheticWeb, where: str, memory_root: Path = MEMORY_ROOT) -> Iterator[tuple[Path, str]]:
    """The directory holding the shops' document roots the static server reads, and how to describe it.

    "memory" copies them into tmpfs for the run (and removes the copy after): a static server
    on the same 2 cores stands in for 72 remote shops, and reading 5 GB back from disk each sweep
    (a VM may not keep it in its page cache) is the stand-in's cost, not pricemon's. Without room
    in tmpfs the pages are served from where they were generated.
    """
    source = web.root / "shops"
    if where == "memory":
        size = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
        try:
            free = shutil.disk_usage(memory_root).free
        except OSError:
            free = 0
        if free < size * 1.2 + MEMORY_HEADROOM_BYTES:
            logger.warning(
                "%s has %.1f GB free, the web needs %.1f GB: serving it from disk",
                memory_root,
                free / 1e9,
                size / 1e9,
            )
        else:
            staged = Path(tempfile.mkdtemp(prefix="pricemon-bench-web-", dir=memory_root))
            try:
                began = time.perf_counter()
                # cp keeps the files' mtimes (ETag and Last-Modified) and is much faster than copytree.
                subprocess.run(["cp", "-r", "--preserve=timestamps", str(source), str(staged)], check=True)
                logger.info("copied %.1f GB of pages to %s in %.1f s", size / 1e9, staged, time.perf_counter() - began)
                yield staged / "shops", f"memory (a copy in {staged}, removed after the run)"
            finally:
                shutil.rmtree(staged, ignore_errors=True)
            return
    yield source, "disk"


def run_bench(args: argparse.Namespace, command_line: str) -> BenchResult:
    started_at = _date_u()
    t0 = time.perf_counter()
    web = generate_web(args.shops, args.products, args.seed, cache_root=args.cache_dir)
    generate_seconds = time.perf_counter() - t0
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if args.cluster:
        # The workers share one PostgreSQL; the in-process sweep on it is what they are measured against.
        backends = ["postgresql", "cluster"]
    work = Path(tempfile.mkdtemp(prefix="pricemon-bench-"))
    with ExitStack() as run_stack:
        # Removed last: the run directory holds the CA and nginx's prefix until the server is gone.
        run_stack.callback(_remove_work, work, args.keep)
        shops_dir, served_from = run_stack.enter_context(served_roots(web, args.serve_from))
        roots = {shop.name: shops_dir / shop.name for shop in web.shops}
        network_text = "local (plain HTTP on 127.0.0.1)"
        scrape_keys: dict[str, str | list[str]] = {}
        network: RealisticNetwork | None = None
        if args.network == "realistic":
            network = run_stack.enter_context(realistic_network())
            server, base_urls = serve_realistic(network, roots, work, run_stack)
            network_text = (
                f"realistic: HTTPS (nginx, certificates of a CA made for the run, trusted through scrape.ca_bundle)"
                f" from network namespace {network.namespace} over a veth on {network.subnet}; {network.shaping}"
            )
            scrape_keys = {"ca_bundle": str(work / "ca" / "ca.pem"), "allowed_networks": [str(network.subnet)]}
        else:
            server = start_static_server(roots, work / "server", prefer=args.server)
            run_stack.callback(server.stop)
            base_urls = dict(server.base_urls)
        result = BenchResult(
            command=command_line,
            started_at=started_at,
            shops=args.shops,
            products=args.products,
            seed=args.seed,
            pages=web.page_count,
            server=server.kind,
            generate_seconds=generate_seconds,
            machine=describe_machine(server.kind),
            served_from=served_from,
            network=network_text,
        )
        _run_steps(args, web, backends, base_urls, work, result, scrape_keys)
        if network is not None and (counts := network.packet_counts()):
            result.network += (
                f"; the loss rule dropped {counts[0]:,} of the {counts[1]:,} packets the shops sent"
                f" ({100 * counts[0] / max(counts[1], 1):.3f}%)"
            )
    if not args.skip_web:
        result.web_connections, result.web_seconds = args.web_connections, args.web_seconds
        result.web = run_web_step(args, backends)
    return result


def run_web_step(args: argparse.Namespace, backends: list[str]) -> list[Any]:
    """The review workspace under load (bench/web.py) on a store of as many products as the web has pages
    (172,800 at full size), after the sweeps so that nothing else competes for the 2 cores."""
    from bench import web as web_bench

    return [
        web_bench.run_web(
            backend,
            products=args.shops * args.products,
            competitors=web_bench.DEFAULT_COMPETITORS,
            seed=args.seed,
            cache=web_bench.DEFAULT_CACHE,
            postgres_url=args.postgres_url,
            keep=args.keep,
            connections=args.web_connections,
            seconds=args.web_seconds,
            warmup=min(3.0, args.web_seconds / 4),
            workers=args.web_workers,
        )
        for backend in backends
    ]


#: nginx's ports inside the namespace; the delay relay, when there is one, listens on RELAY_PORT_BASE + i
NGINX_PORT_BASE = 20000
RELAY_PORT_BASE = 30000


def serve_realistic(
    network: RealisticNetwork, roots: dict[str, Path], work: Path, stack: ExitStack
) -> tuple[StaticServer, dict[str, str]]:
    """nginx over HTTPS inside the namespace (and the delay relay in front when there is no netem)."""
    ca = LocalCA(work / "ca")
    served = ca.issue("shops", hosts=[network.shop_address])
    ports = tuple(NGINX_PORT_BASE + i for i in range(len(roots)))
    placement = Placement(
        host=network.shop_address,
        ports=ports,
        tls=(served.cert_path, served.key_path),
        command_prefix=network.command_prefix,
    )
    server = start_static_server(roots, work / "server", prefer="nginx", placement=placement)
    stack.callback(server.stop)
    base_urls = dict(server.base_urls)
    if not network.shaping.startswith("tc netem"):
        pairs = [(RELAY_PORT_BASE + i, port) for i, port in enumerate(ports)]
        network.start_relay(pairs, work / "delay-relay.log")
        base_urls = {
            shop: f"https://{network.shop_address}:{listen}" for shop, (listen, _) in zip(roots, pairs, strict=True)
        }
    return server, base_urls


def _remove_work(work: Path, keep: bool) -> None:
    if keep:
        logger.info("kept the run directory %s", work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def _run_steps(
    args: argparse.Namespace,
    web: SyntheticWeb,
    backends: list[str],
    base_urls: dict[str, str],
    work: Path,
    result: BenchResult,
    scrape_keys: dict[str, str | list[str]] | None = None,
) -> None:
    first_inputs: RunInputs | None = None
    for backend in backends:
        run_dir = work / backend.replace(" ", "-")
        inputs = write_run_inputs(
            web,
            base_urls,
            run_dir,
            max_concurrency=args.max_concurrency,
            min_delay=args.min_delay,
            scrape=scrape_keys,
        )
        first_inputs = first_inputs or inputs
        with ExitStack() as stack:
            kind, suffix = ("postgresql", "_cluster") if backend == "cluster" else (backend, "")
            label = cluster_label(args.cluster) if backend == "cluster" else backend
            try:
                database_url = stack.enter_context(
                    bench_database(kind, run_dir, args.postgres_url, args.keep, suffix=suffix)
                )
            except Exception as exc:  # an unreachable PostgreSQL skips that backend, not the run
                logger.error("%s: cannot create the benchmark database: %s", label, exc)
                result.backends.append(BackendRun(backend=label, skipped=f"no database: {exc}"))
                continue
            if backend == "cluster":
                result.backends.append(run_cluster_backend(args, web, inputs, database_url, run_dir))
            else:
                result.backends.append(run_backend(backend, web, inputs, database_url))
    if not args.skip_scrapy and first_inputs is not None:
        truth = web.read_truth()
        if args.scrapy_pages and args.scrapy_pages < web.page_count:
            sample = work / "scrapy-listings.csv"
            keys = sample_listings(first_inputs.listings_csv, sample, args.scrapy_pages)
            truth = {key: row for key, row in truth.items() if key in keys}
            result.scrapy, items = run_scrapy(first_inputs, work, len(keys), sample)
        else:
            result.scrapy, items = run_scrapy(first_inputs, work, web.page_count)
        if result.scrapy.returncode == 0:
            result.scrapy_accuracy = compare_to_truth(observations_from_jsonl(items), truth)
    for backend_run in result.backends:
        backend_run.targets = judge(backend_run, result.scrapy)
    if args.cluster and len(result.backends) == 2:
        target = judge_cluster(*result.backends)
        if target is not None:
            result.backends[1].targets.insert(0, target)


# ---------------------------------------------------------------------------------------------------
# reporting


def _date_u() -> str:
    # The issue asks for `date -u`'s format in RESULTS.md.
    return datetime.now(UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def describe_machine(server_kind: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    versions = []
    for dist in ("pricemon", "httpx", "selectolax", "SQLAlchemy", "psycopg", "Scrapy"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    machine = {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "git": _run_text(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]) or "unknown",
    }
    nginx = find_nginx()
    if server_kind == "nginx" and nginx:
        machine["server"] = _run_text([nginx, "-v"], stderr=True) or "nginx"
    else:
        machine["server"] = "Python fallback (bench.static_server, http.server)"
    machine["postgresql"] = _postgres_version() or "not reachable"
    return machine


def _run_text(command: list[str], *, stderr: bool = False) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stderr if stderr else done.stdout).strip() or None


def _postgres_version() -> str | None:
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0]}" if row else None
    except Exception:  # informative only
        return None


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def render_markdown(result: BenchResult) -> str:
    lines = [
        f"## {result.started_at}",
        "",
        f"{result.shops} shops x {result.products} products = {result.pages:,} pages (seed {result.seed}), "
        f"served by {result.machine['server']} from {result.served_from}; "
        f"generation/cache lookup {result.generate_seconds:.1f} s.",
        "",
        f"Network: {result.network}.",
        "",
        f"Command: `{result.command}`",
        "",
        f"Machine: {result.machine['nproc']} CPUs ({result.machine['cpu']}), {result.machine['ram']} RAM, "
        f"{result.machine['os']}, Python {result.machine['python']}; {result.machine['packages']}; "
        f"{result.machine['postgresql']}; git {result.machine['git']}.",
        "",
        "| database | step | seconds | pages/s | CPU s | peak RSS MB | history rows added | exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in result.backends:
        if backend.skipped:
            lines.append(f"| {backend.backend} | skipped: {backend.skipped} | | | | | | |")
        for step in backend.steps:
            rows_added = "" if step.history_rows_added is None else step.history_rows_added
            lines.append(
                f"| {backend.backend} | {step.name} | {step.seconds:.2f} | {_fmt(step.pages_per_s, ',.0f')} | "
                f"{step.cpu_seconds:.1f} | {step.peak_rss_mb:.0f} | {rows_added} | {step.returncode} |"
            )
    if result.scrapy:
        s = result.scrapy
        lines.append(
            f"| - | {s.name} | {s.seconds:.2f} | {_fmt(s.pages_per_s, ',.0f')} | {s.cpu_seconds:.1f} | "
            f"{s.peak_rss_mb:.0f} | | "
            f"{s.returncode} |"
        )
    lines.append("")
    lines += _per_page_lines(result)
    for backend in result.backends:
        if backend.accuracy:
            a = backend.accuracy
            lines.append(
                f"- {backend.backend} accuracy: {a.correct:,}/{a.total:,} = {a.percent} "
                f"({a.wrong} wrong, {a.missing} missing)"
            )
            lines += [f"  - {example}" for example in a.examples[:5]]
    if result.scrapy_accuracy:
        a = result.scrapy_accuracy
        lines.append(f"- Scrapy baseline accuracy (same extract()): {a.correct:,}/{a.total:,} = {a.percent}")
        if result.scrapy and result.scrapy.pages and result.scrapy.pages < result.pages:
            lines.append(
                f"- The Scrapy baseline crawled a sample (`--scrapy-pages`): {result.scrapy.pages:,} of the"
                f" {result.pages:,} pages, every shop's first {result.scrapy.pages // max(1, result.shops):,},"
                " under the same per-shop limits; its pages/s and CPU per page are over that sample."
            )
    for backend in result.backends:
        for target in backend.targets:
            lines.append(
                f"- {backend.backend}: **{'PASS' if target.passed else 'MISS'}** {target.name}: {target.detail}"
            )
    for backend in result.backends:
        for step in backend.steps:
            if step.error:
                lines.append(f"- {backend.backend} {step.name} failed: `{step.error.splitlines()[-1][:300]}`")
    if result.scrapy and result.scrapy.error:
        lines.append(f"- Scrapy baseline failed: `{result.scrapy.error.splitlines()[-1][:300]}`")
    if result.web:
        from bench.web import render_markdown as render_web

        lines += [
            "",
            render_web(result.web, connections=result.web_connections, seconds=result.web_seconds, heading=None).rstrip(
                "\n"
            ),
        ]
    return "\n".join(lines) + "\n"


def cpu_ms_per_page(step: Step) -> float | None:
    """Process CPU time (the step's tree) per page: the figure that says how many cores a load needs."""
    if step.returncode != 0 or not step.pages:
        return None
    return step.cpu_seconds * 1000 / step.pages


def _per_page_lines(result: BenchResult) -> list[str]:
    """Pages/s and CPU ms per page of every sweep and of Scrapy, with pricemon's ratio to Scrapy."""
    rows = [
        (f"pricemon {step.name} ({backend.backend})", step)
        for backend in result.backends
        for step in backend.steps
        if step.pages and step.returncode == 0
    ]
    if result.scrapy and result.scrapy.returncode == 0:
        rows.append(("Scrapy baseline", result.scrapy))
    if not rows:
        return []
    lines = [
        "| sweep | pages/s | CPU ms per page | pages/s vs Scrapy | CPU per page vs Scrapy |",
        "|---|---:|---:|---:|---:|",
    ]
    scrapy = result.scrapy if result.scrapy and result.scrapy.returncode == 0 else None
    for name, step in rows:
        speed = cpu = ""
        if scrapy is not None and step is not scrapy and scrapy.pages_per_s and step.pages_per_s:
            speed = f"{step.pages_per_s / scrapy.pages_per_s:.2f}x"
            ours, theirs = cpu_ms_per_page(step), cpu_ms_per_page(scrapy)
            cpu = f"{ours / theirs:.2f}x" if ours and theirs else ""
        lines.append(
            f"| {name} | {_fmt(step.pages_per_s, ',.0f')} | {_fmt(cpu_ms_per_page(step), '.3f')} | {speed} | {cpu} |"
        )
    return [*lines, ""]


def append_results(path: Path, section: str) -> None:
    if not path.exists():
        path.write_text(
            "# pricemon benchmark results\n\nAppended by `bench/run`; newest last. See bench/README.md.\n\n",
            encoding="utf-8",
        )
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + section)


def result_as_json(result: BenchResult) -> dict[str, Any]:
    data = asdict(result)
    for backend, raw in zip(result.backends, data["backends"], strict=True):
        raw["accuracy_ratio"] = backend.accuracy.ratio if backend.accuracy else None
        for step, raw_step in zip(backend.steps, raw["steps"], strict=True):
            raw_step["pages_per_s"] = step.pages_per_s
            raw_step["cpu_ms_per_page"] = cpu_ms_per_page(step)
    if result.scrapy:
        data["scrapy"]["pages_per_s"] = result.scrapy.pages_per_s
        data["scrapy"]["cpu_ms_per_page"] = cpu_ms_per_page(result.scrapy)
    data["scrapy_accuracy_ratio"] = result.scrapy_accuracy.ratio if result.scrapy_accuracy else None
    return data


# ---------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark pricemon against a synthetic competitor web served on 127.0.0.1.",
    )
    parser.add_argument("--shops", type=int, default=DEFAULT_SHOPS, help="number of shops (default 72)")
    parser.add_argument("--products", type=int, default=DEFAULT_PRODUCTS, help="products per shop (default 2400)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL server (no database)")
    parser.add_argument("--skip-scrapy", action="store_true", help="do not run the Scrapy baseline")
    parser.add_argument(
        "--scrapy-pages",
        type=int,
        default=None,
        metavar="N",
        help="run the Scrapy baseline on N pages only (every shop's first N/shops): over a slow link a full"
        " Scrapy sweep takes far longer than pricemon's, and pages/s and CPU per page need no more",
    )
    parser.add_argument("--skip-web", action="store_true", help="do not benchmark the review workspace")
    parser.add_argument("--web-connections", type=int, default=4, help="web step: concurrent connections")
    parser.add_argument("--web-seconds", type=float, default=20.0, help="web step: measured seconds per scenario")
    parser.add_argument("--web-workers", type=int, default=None, help="web step: `pricemon serve --workers`")
    parser.add_argument("--keep", action="store_true", help="keep the run directory and PostgreSQL database")
    parser.add_argument("--server", choices=("nginx", "python"), default="nginx", help="static server to prefer")
    parser.add_argument(
        "--serve-from",
        choices=("memory", "disk"),
        default="memory",
        help="serve a copy of the pages from tmpfs (default, when it has room) or the cache on disk",
    )
    parser.add_argument(
        "--network",
        choices=("local", "realistic"),
        default="local",
        help="local: plain HTTP on 127.0.0.1 (default); realistic: HTTPS from another network namespace"
        " with 40 +- 20 ms delay and 0.1%% loss (root; see bench/README.md)",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="also sweep through N local `pricemon worker`s (RabbitMQ, PostgreSQL) and compare with in-process",
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("PRICEMON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        help="RabbitMQ for --cluster (default $PRICEMON_BENCH_AMQP_URL or the machine's guest account)",
    )
    parser.add_argument("--max-concurrency", type=int, default=8, help="per-competitor max_concurrency")
    parser.add_argument("--min-delay", default="0s", help='per-competitor min_delay, e.g. "0s"')
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_ROOT, help="where generated webs are kept")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown file to append to")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command_line = " ".join(["bench/run", *argv])
    # SIGTERM (and a closed terminal) unwind like Ctrl-C, so the namespace, nginx and tmpfs copy go too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        result = run_bench(args, command_line)
    except NetworkSetupError as exc:
        sys.stderr.write(f"bench: error: {exc}\n")
        return 2
    section = render_markdown(result)
    sys.stdout.write("\n" + section)
    append_results(args.results, section)
    if args.json:
        args.json.write_text(json.dumps(result_as_json(result), indent=2, default=str), encoding="utf-8")
    failed = [s for b in result.backends for s in b.steps if s.returncode != 0]
    if result.scrapy and result.scrapy.returncode != 0:
        failed.append(result.scrapy)
    failed += [w for w in result.web if w.error]
    return 1 if failed else 0
