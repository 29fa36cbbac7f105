"""Time `pricemon suggest` alone over a synthetic store, without scraping anything first.

    python -m bench.suggest_store --products 172800 --competitors 1
    python -m bench.suggest_store --products 2400 --competitors 72   # the shape of bench/run's store

The store is built through pricemon itself (`import products`, `import listings`, then
`record_checks` for one observed price per listing), kept in --work (reused when it exists), and
`pricemon suggest --json` is then run --rounds times as a fresh process; the wall seconds of
each round and the summary's counts are printed. Nothing is appended to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from monitor.store.database import open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Listing


def pricemon(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("pricemon")
    return subprocess.run(
        [str(exe), "--config", str(config), *args], capture_output=True, text=True, check=True, env=os.environ.copy()
    )


def build(work: Path, products: int, competitors: int, seed: int) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "pricemon.toml"
    database = work / "pricemon.db"
    if database.exists():
        return config
    names = [f"shop{c:02d}" for c in range(competitors)]
    config.write_text(
        f'database_url = "sqlite:///{database}"\n'
        + "".join(f'[[competitors]]\nname = "{n}"\nbase_url = "http://127.0.0.1:9/{n}/"\n' for n in names),
        encoding="utf-8",
    )
    rng = random.Random(seed)
    (work / "products.csv").write_text(
        "sku,name,price,currency,cost\n"
        + "".join(f"P{i:06d},Item {i},{rng.randint(1000, 9000) / 100:.2f},EUR,5.00\n" for i in range(products)),
        encoding="utf-8",
    )
    (work / "listings.csv").write_text(
        "sku,competitor,url\n"
        + "".join(f"P{i:06d},{n},http://127.0.0.1:9/{n}/p/{i}\n" for n in names for i in range(products)),
        encoding="utf-8",
    )
    pricemon("import", "products", str(work / "products.csv"), config=config)
    pricemon("import", "listings", str(work / "listings.csv"), config=config)
    store = open_store(f"sqlite:///{database}", migrate=False)
    now = datetime.now(UTC)
    with store.session() as session:
        ids = list(session.scalars(select(Listing.id)))
    for begin in range(0, len(ids), 5000):
        with store.session() as session:
            record_checks(
                session,
                [
                    CheckResult(lid, "observed", now, Decimal(rng.randint(1000, 9000)) / 100, "EUR", True)
                    for lid in ids[begin : begin + 5000]
                ],
                run_id=None,
                interval=timedelta(hours=1),
            )
    store.dispose()
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=172_800)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--work", type=Path, default=None, help="where the store is kept (default: /tmp/...)")
    args = parser.parse_args(argv)
    work = args.work or Path(f"/tmp/pricemon-suggest-store-{args.products}x{args.competitors}")
    began = time.monotonic()
    config = build(work, args.products, args.competitors, args.seed)
    print(f"store {work} ready in {time.monotonic() - began:.1f} s", flush=True)
    for round_ in range(args.rounds):
        began = time.monotonic()
        summary = json.loads(pricemon("suggest", "--json", config=config).stdout)
        seconds = time.monotonic() - began
        print(
            f"round {round_ + 1}: pricemon suggest {seconds:.2f} s wall ({summary['products']} products, "
            f"{summary['suggested']} suggested, {summary['failed']} failed)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
