"""The demand benchmark: fitting 172,800 products x 180 days of sales, and importing 1M sales rows.

`python -m bench.demand` (see bench/README.md, "Demand models"). Every step runs as its own child
process, measured by `bench.process_meter` (wall seconds, CPU seconds, peak RSS of the tree):

1. **fit** (the issue's target: <= 5 minutes, <= 2 GB): `bench.demand --worker fit` generates the
   synthetic sales chunk by chunk (`bench/demand_data.py`) and feeds the rows to the same code
   `pricemon demand fit` runs (`DemandStats.add` then `estimates`), then checks the elasticities
   against the truth. The rows never go through a database here: 31M rows are the generator's.
2. **database path**, per backend: `pricemon import products`, `pricemon import sales` (about
   1M rows: `--import-products` x `--days`), `pricemon import traffic`, `pricemon demand fit`.

Figures are printed and appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.process_meter import MeasuredRun, run_measured
from bench.runner import (
    DEFAULT_RESULTS,
    _date_u,
    append_results,
    bench_database,
    child_env,
    describe_machine,
    pricemon_executable,
)

FIT_SECONDS_TARGET = 300.0
FIT_RSS_MB_TARGET = 2048.0


def worker_fit(products: int, days: int, seed: int) -> dict[str, Any]:
    """Generate and fit in this process; the parent measures time and memory from outside."""
    import numpy as np

    from bench.demand_data import DemandData
    from monitor.demand.fit import DemandStats, estimates

    data = DemandData(products, days=days, seed=seed)
    stats = DemandStats(products)
    generate = accumulate = 0.0
    rows = 0
    mark = time.perf_counter()
    for chunk in data.chunks():
        now = time.perf_counter()
        generate += now - mark
        stats.add(chunk.product, chunk.units, chunk.price, chunk.market_median, chunk.sessions)
        rows += len(chunk.units)
        mark = time.perf_counter()
        accumulate += mark - now
    started = time.perf_counter()
    fitted = estimates(stats, [t.sku for t in data.truth], [t.tag for t in data.truth])
    solve = time.perf_counter() - started
    errors = np.array(
        [abs(e.elasticity - t.elasticity) for e, t in zip(fitted, data.truth, strict=True) if e.status == "ok"]
    )
    return {
        "products": products,
        "days": days,
        "rows": rows,
        "generate_s": round(generate, 2),
        "accumulate_s": round(accumulate, 2),
        "solve_s": round(solve, 2),
        "fit_s": round(accumulate + solve, 2),
        "statuses": dict(Counter(e.status for e in fitted)),
        "ok_within_0_3": float((errors < 0.3).mean()) if len(errors) else None,
        "max_error": float(errors.max()) if len(errors) else None,
        "mean_error": float(errors.mean()) if len(errors) else None,
    }


def _measure(command: Sequence[str], **kwargs: Any) -> MeasuredRun:
    run = run_measured(command, env=child_env(), **kwargs)
    if run.returncode != 0:
        print(f"bench.demand: {' '.join(command)} exited {run.returncode}:\n{run.stderr[-3000:]}", file=sys.stderr)
    return run


def _row(name: str, run: MeasuredRun, rows: int | None = None) -> dict[str, Any]:
    return {
        "step": name,
        "seconds": round(run.seconds, 2),
        "cpu_s": round(run.cpu_seconds, 1),
        "peak_rss_mb": round(run.peak_rss_mb),
        "rows": rows,
        "rows_per_s": round(rows / run.seconds) if rows and run.seconds else None,
        "exit": run.returncode,
    }


def run_database(backend: str, products: int, days: int, seed: int, postgres_url: str) -> list[dict[str, Any]]:
    from bench.demand_data import DemandData, write_csvs

    steps: list[dict[str, Any]] = []
    pricemon = pricemon_executable()
    with tempfile.TemporaryDirectory(prefix="pricemon-demand-") as folder:
        work = Path(folder)
        data = DemandData(products, days=days, seed=seed)
        product_csv, sales_csv, traffic_csv = write_csvs(data, work)
        rows = sum(1 for _ in sales_csv.open()) - 1
        with bench_database(backend, work, postgres_url, keep=False) as url:
            base = [pricemon, "--database-url", url]
            for name, command, count in (
                ("db upgrade", [*base, "db", "upgrade"], None),
                ("import products", [*base, "import", "products", str(product_csv)], products),
                ("import sales", [*base, "import", "sales", str(sales_csv)], rows),
                ("import sales (again, idempotent)", [*base, "import", "sales", str(sales_csv)], rows),
                ("import traffic", [*base, "import", "traffic", str(traffic_csv)], rows),
                ("demand fit", [*base, "demand", "fit", "--json"], rows),
            ):
                run = _measure(command)
                steps.append({"database": backend, **_row(name, run, count)})
                if name == "demand fit" and run.returncode == 0:
                    steps[-1]["statuses"] = json.loads(run.stdout)["statuses"]
                if run.returncode != 0:
                    break
    return steps


def render(args: argparse.Namespace, fit: dict[str, Any] | None, steps: list[dict[str, Any]], command: str) -> str:
    machine = describe_machine("python")
    lines = [
        f"## {_date_u()} (demand models)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram']} RAM, {machine['os']}, "
        f"Python {machine['python']}; PostgreSQL {machine['postgresql']}; git {machine['git']}.",
        "",
    ]
    if fit is not None:
        ok = fit["fit_s"] <= FIT_SECONDS_TARGET and fit["peak_rss_mb"] <= FIT_RSS_MB_TARGET and fit["exit"] == 0
        lines += [
            f"Fit of {fit['products']:,} products x {fit['days']} days = {fit['rows']:,} sales rows "
            f"(generated in the same process, {fit['generate_s']} s, not counted):",
            "",
            "| step | seconds | CPU s | peak RSS MB |",
            "|---|---:|---:|---:|",
            f"| accumulate per-product sums | {fit['accumulate_s']} |  |  |",
            f"| solve + pool + estimates | {fit['solve_s']} |  |  |",
            f"| whole child (generate + fit) | {fit['seconds']} | {fit['cpu_s']} | {fit['peak_rss_mb']} |",
            "",
            f"- statuses: {fit['statuses']}",
            f"- ok estimates within 0.3 of the true elasticity: {fit['ok_within_0_3']:.2%} "
            f"(mean error {fit['mean_error']:.3f}, max {fit['max_error']:.3f})",
            f"- **{'PASS' if ok else 'MISS'}** fit <= {FIT_SECONDS_TARGET:.0f} s and peak RSS <= "
            f"{FIT_RSS_MB_TARGET:.0f} MB: {fit['fit_s']} s fit ({fit['seconds']} s with generation), "
            f"{fit['peak_rss_mb']} MB",
            "",
        ]
    if steps:
        lines += [
            f"Database path: {args.import_products:,} products x {args.days} days through the CLI:",
            "",
            "| database | step | seconds | CPU s | peak RSS MB | rows | rows/s | exit |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in steps:
            lines.append(
                f"| {s['database']} | {s['step']} | {s['seconds']} | {s['cpu_s']} | {s['peak_rss_mb']} | "
                f"{s['rows'] or ''} | {s['rows_per_s'] or ''} | {s['exit']} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.demand", description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=172_800, help="products in the fit step")
    parser.add_argument("--days", type=int, default=180, help="days of sales per product")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--import-products", type=int, default=5_556, help="products of the database path (x days rows)"
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both", "none"], default="both")
    parser.add_argument("--skip-fit", action="store_true", help="only the database path")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown file to append to")
    parser.add_argument("--no-results", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--worker", choices=["fit"], help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker == "fit":
        print(json.dumps(worker_fit(args.products, args.days, args.seed)))
        return 0
    command = "python -m bench.demand " + " ".join(argv if argv is not None else sys.argv[1:])
    fit = None
    failed = False
    if not args.skip_fit:
        run = _measure(
            [sys.executable, "-m", "bench.demand", "--worker", "fit", "--products", str(args.products),
             "--days", str(args.days), "--seed", str(args.seed)],
        )  # fmt: skip
        failed |= run.returncode != 0
        if run.returncode == 0:
            fit = {**_row("fit", run), **json.loads(run.stdout)}
    steps: list[dict[str, Any]] = []
    backends = {"both": ["sqlite", "postgresql"], "none": []}.get(args.database, [args.database])
    for backend in backends:
        steps += run_database(backend, args.import_products, args.days, args.seed, args.postgres_url)
    failed |= any(s["exit"] != 0 for s in steps)
    section = render(args, fit, steps, command.strip())
    print(section)
    if not args.no_results:
        append_results(args.results, section)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
