"""Benchmark of discovery and matching (issue 20) on the market of `bench.match_shops`.

    python -m bench.matching --shops 4 --pages 300          # a quick look
    python -m bench.matching                                 # full size: 72 shops x 2,400 pages

Serves every shop on its own 127.0.0.1 port (nginx, else the Python fallback), imports our
catalogue, runs `discover` on every shop (one worker process per core, each taking whole shops,
as a sweep shards), then scores the candidates against the truth file, and sweeps the same shops'
pages of our products (`pricemon scrape`) on the same machine for the time comparison. Targets:
auto-accepted >= 99.5% precise; >= 95% of our products a shop sells proposed (any status) at the
review threshold (`matching.min_score`) with >= 90% precision; discovery + matching per page
<= 2x a sweep's time per page. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.match_shops import generate, market_directory
from bench.process_meter import run_measured
from bench.runner import DEFAULT_RESULTS, _date_u, append_results, child_env, describe_machine, pricemon_executable
from bench.static_server import start_static_server

logger = logging.getLogger(__name__)

TARGET_AUTO_PRECISION = 0.995
TARGET_RECALL = 0.95
TARGET_REVIEW_PRECISION = 0.90
TARGET_TIME_RATIO = 2.0


def _discover_one(job: tuple[str, str]) -> dict[str, Any]:
    config, name = job
    from monitor.matching.discover import discover_competitor
    from monitor.settings import load_settings
    from monitor.store.database import open_store

    settings = load_settings(config)
    store = open_store(settings.database_url)
    try:
        return discover_competitor(store, settings, name).as_dict()
    finally:
        store.dispose()


def discover_child(config: str, workers: int) -> int:
    """Discover every competitor of `config`, `workers` at a time; print the summaries as JSON."""
    from monitor.settings import load_settings

    names = [c.name for c in load_settings(config).competitors]
    with get_context("fork").Pool(workers, maxtasksperchild=None) as pool:
        summaries = pool.map(_discover_one, [(config, n) for n in names], chunksize=1)
    print(json.dumps(summaries))
    return 0


def _config(path: Path, database: Path, base_urls: dict[str, str], concurrency: int) -> None:
    lines = [f'database_url = "sqlite:///{database}"', "[scrape]", "retries = 1", "workers = 0"]
    for name, url in sorted(base_urls.items()):
        lines += [
            "[[competitors]]",
            f'name = "{name}"',
            f'base_url = "{url}"',
            'min_delay = "0s"',
            f"max_concurrency = {concurrency}",
            # the bench's nginx serves files only (no index for "/"): a crawl starts at the home page file
            f'start_urls = ["{url}/index.html"]',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def evaluate(database: Path, truth_path: Path, min_score: float) -> dict[str, Any]:
    truth: dict[tuple[str, str], str] = {}
    sold: set[tuple[str, str]] = set()
    with truth_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            truth[(row["competitor"], row["url_path"])] = row["sku"]
            if row["sku"]:
                sold.add((row["competitor"], row["sku"]))
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT c.name, d.url, p.sku, m.status, m.score, m.method FROM match_candidates m "
            "JOIN discovered_pages d ON d.id = m.page_id JOIN products p ON p.id = m.product_id "
            "JOIN competitors c ON c.id = m.competitor_id"
        ).fetchall()
        pages = db.execute("SELECT count(*) FROM discovered_pages WHERE status = 'product'").fetchone()[0]
    auto = [r for r in rows if r[3] == "accepted"]
    proposed = [r for r in rows if r[4] >= min_score]

    def right(row: tuple[Any, ...]) -> bool:
        path = "/" + row[1].split("/", 3)[3]
        return truth.get((row[0], path)) == row[2]

    found = {(r[0], r[2]) for r in proposed if right(r)}
    by_method: dict[str, list[int]] = {}
    for r in proposed:
        counts = by_method.setdefault(r[5], [0, 0])
        counts[0] += 1
        counts[1] += right(r)
    return {
        "pages": pages,
        "candidates": len(rows),
        "auto_accepted": len(auto),
        "auto_precision": sum(map(right, auto)) / len(auto) if auto else None,
        "proposed": len(proposed),
        "review_precision": sum(map(right, proposed)) / len(proposed) if proposed else None,
        "sold": len(sold),
        "recall": len(found & sold) / len(sold) if sold else None,
        "by_method": {k: {"candidates": v[0], "right": v[1]} for k, v in by_method.items()},
    }


def _pricemon(config: Path, *args: str) -> Any:
    measured = run_measured([pricemon_executable(), "--config", str(config), *args], env=child_env())
    if measured.returncode != 0:
        raise RuntimeError(f"pricemon {' '.join(args)} failed: {measured.stderr[-2000:]}")
    return measured


def run(args: argparse.Namespace) -> dict[str, Any]:
    market = generate(market_directory(args.shops, args.pages, args.seed), shops=args.shops, pages=args.pages,
                      seed=args.seed)  # fmt: skip
    roots = {p.name: p for p in sorted((market / "shops").iterdir())}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pricemon-match-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    workers = args.workers or os.cpu_count() or 1
    server = start_static_server(roots, work / "server", prefer=args.server)
    try:
        config = work / "pricemon.toml"
        _config(config, work / "match.db", server.base_urls, args.max_concurrency)
        _pricemon(config, "import", "products", str(market / "products.csv"))
        started = time.perf_counter()
        measured = run_measured(
            [sys.executable, "-m", "bench.matching", "--discover-child", str(config), "--workers", str(workers)],
            env=child_env(),
        )
        if measured.returncode != 0:
            raise RuntimeError(f"discovery failed: {measured.stderr[-3000:]}")
        discover_seconds = time.perf_counter() - started
        summaries = json.loads(measured.stdout)
        from monitor.settings import load_settings

        quality = evaluate(work / "match.db", market / "truth.csv", load_settings(str(config)).matching.min_score)
        result: dict[str, Any] = {
            "shops": args.shops,
            "pages_per_shop": args.pages,
            "discover_seconds": round(discover_seconds, 2),
            "discover_cpu_seconds": round(measured.cpu_seconds, 2),
            "discover_peak_rss_mb": round(measured.peak_rss_mb, 1),
            "fetched": sum(s["fetched"] for s in summaries),
            "problems": sum(len(s["problems"]) for s in summaries),
            **quality,
            "server": server.kind,
        }
        if not args.skip_sweep:
            # The same shops' pages of our products, as listings, swept once.
            sweep_config = work / "sweep.toml"
            _config(sweep_config, work / "sweep.db", server.base_urls, args.max_concurrency)
            listings = work / "listings.csv"
            with (market / "truth.csv").open(encoding="utf-8") as source, listings.open("w", encoding="utf-8") as out:
                out.write("sku,competitor,url\n")
                for row in csv.DictReader(source):
                    if row["sku"]:
                        out.write(
                            f"{row['sku']},{row['competitor']},{server.base_urls[row['competitor']]}{row['url_path']}\n"
                        )
            _pricemon(sweep_config, "import", "products", str(market / "products.csv"))
            _pricemon(sweep_config, "import", "listings", str(listings))
            sweep = _pricemon(sweep_config, "scrape", "--json")
            swept = sum(1 for _ in listings.open()) - 1
            result["sweep_seconds"] = round(sweep.seconds, 2)
            result["swept"] = swept
            per_page_discovery = discover_seconds / max(result["fetched"], 1)
            per_page_sweep = sweep.seconds / max(swept, 1)
            result["time_ratio"] = round(per_page_discovery / per_page_sweep, 2)
            result["sweep_cpu_seconds"] = round(sweep.cpu_seconds, 2)
            # CPU seconds are steadier than wall time on a shared machine (bench/README.md)
            cpu_discovery = measured.cpu_seconds / max(result["fetched"], 1)
            result["cpu_ratio"] = round(cpu_discovery / (sweep.cpu_seconds / max(swept, 1)), 2)
        return result
    finally:
        server.stop()


def judge(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    targets = [
        ("auto-accepted >= 99.5% precise", (result["auto_precision"] or 0) >= TARGET_AUTO_PRECISION,
         f"{(result['auto_precision'] or 0):.2%} of {result['auto_accepted']}"),
        (">= 95% of our products a shop sells proposed at the review threshold",
         (result["recall"] or 0) >= TARGET_RECALL,
         f"{(result['recall'] or 0):.2%} of {result['sold']}"),
        ("... with >= 90% precision", (result["review_precision"] or 0) >= TARGET_REVIEW_PRECISION,
         f"{(result['review_precision'] or 0):.2%} of {result['proposed']}"),
    ]  # fmt: skip
    if "time_ratio" in result:
        targets.append(
            ("discovery + matching <= 2x a sweep's time per page", result["time_ratio"] <= TARGET_TIME_RATIO,
             f"{result['time_ratio']}x ({result['discover_seconds']} s for {result['fetched']} pages; sweep "
             f"{result['sweep_seconds']} s for {result['swept']})")
        )  # fmt: skip
        targets.append(
            ("... in CPU seconds per page", result["cpu_ratio"] <= TARGET_TIME_RATIO,
             f"{result['cpu_ratio']}x ({result['discover_cpu_seconds']} CPU-s; "
             f"sweep {result['sweep_cpu_seconds']} CPU-s)")
        )  # fmt: skip
    return targets


def render(result: dict[str, Any], command: str) -> str:
    machine = describe_machine(result["server"])
    lines = [
        f"## matching: {result['shops']} shops x {result['pages_per_shop']} pages ({_date_u()})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram']}, python {machine['python']}, "
        f"server {machine['server']}, commit {machine['git']}",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    figures = (
        "pages", "fetched", "discover_seconds", "discover_cpu_seconds", "discover_peak_rss_mb", "candidates",
        "auto_accepted", "proposed", "sold", "sweep_seconds", "sweep_cpu_seconds", "swept", "time_ratio", "cpu_ratio",
        "problems",
    )  # fmt: skip
    for key in figures:
        if key in result:
            lines.append(f"| {key} | {result[key]} |")
    lines.append(f"| by method (candidates, right) | {json.dumps(result['by_method'])} |")
    lines.append("")
    for name, passed, detail in judge(result):
        lines.append(f"- **{'PASS' if passed else 'MISS'}** {name}: {detail}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", type=int, default=72)
    parser.add_argument("--pages", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="discovery processes (0: one per core)")
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--server", choices=["nginx", "python"], default="nginx")
    parser.add_argument("--skip-sweep", action="store_true", help="no sweep for the time comparison")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--work", help="run directory (default: a new temporary one)")
    parser.add_argument("--no-results", action="store_true", help="do not append to the results file")
    parser.add_argument("--discover-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.discover_child:
        return discover_child(args.discover_child, args.workers or os.cpu_count() or 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    command = "python -m bench.matching " + " ".join(argv if argv is not None else sys.argv[1:])
    result = run(args)
    section = render(result, command.strip())
    print(section)
    print(json.dumps(result, indent=2))
    if not args.no_results:
        append_results(args.results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
