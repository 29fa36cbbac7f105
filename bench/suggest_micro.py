"""What pricing costs per product, in memory (no database): `python -m bench.suggest_micro`.

Prices N synthetic products (3 offers each, our price around the market, a cost, `max_change`
and `.99` rounding) through `PricingEngine.price_many` as `pricemon suggest` does, in batches of
`[pricing] batch_size`, and times the parts the engine adds after a strategy: the guardrails
(`apply_guardrails`) and the invariant check (`invariant_breaches`). Best of several rounds;
figures in microseconds per product, and scaled to the benchmark's 172,800 products.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from monitor.pricing import Product
from monitor.pricing.engine import PricingEngine
from monitor.pricing.guardrails import apply_guardrails
from monitor.pricing.invariants import invariant_breaches
from monitor.pricing.loader import StrategyManager
from monitor.settings import Assignment, PricingSettings

FULL_SIZE = 172_800
ROUNDS = 5


def best_of(rounds: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def catalogue(count: int, now: datetime, seed: int = 7) -> list[tuple[int, Product, list[tuple], Callable]]:
    rng = random.Random(seed)
    items = []
    for pid in range(count):
        market = Decimal(rng.randint(500, 20000)) / 100
        ours = (market * Decimal(rng.uniform(0.8, 1.2))).quantize(Decimal("0.01"))
        cost = (market * Decimal(rng.uniform(0.5, 0.95))).quantize(Decimal("0.01"))
        product = Product(f"P-{pid:06d}", "Item", ours, "EUR", cost=cost)
        offers = [
            (
                name,
                "",
                (market * Decimal(rng.uniform(0.9, 1.1))).quantize(Decimal("0.01")),
                "EUR",
                True,
                now - timedelta(hours=1),
                now,
                False,
            )
            for name in ("acme", "globex", "initech")
        ]
        items.append((pid, product, offers, lambda _since: ()))
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suggest_micro", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000, help="synthetic products (default 20,000)")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    assignment = Assignment(max_change=15)
    pricing = PricingSettings(default=assignment)
    engine = PricingEngine(pricing, StrategyManager(None))
    items = catalogue(args.products, now)
    batch = pricing.batch_size
    outcomes = [
        o for start in range(0, len(items), batch) for o in engine.price_many(items[start : start + batch], now)
    ]
    suggested = [(o.price, items[o.product_id][1]) for o in outcomes if o.kind == "suggested"]
    asked = {o.product_id: Decimal(o.details["strategy_price"]) for o in outcomes if o.kind == "suggested"}
    pairs = [(price, asked[int(p.sku[2:])], p) for price, p in suggested]

    gc.disable()  # as `pricemon suggest` runs
    try:
        whole = best_of(
            ROUNDS, lambda: [engine.price_many(items[s : s + batch], now) for s in range(0, len(items), batch)]
        )
        guard = best_of(ROUNDS, lambda: [apply_guardrails(a, p, assignment) for _, a, p in pairs])
        check = best_of(ROUNDS, lambda: [invariant_breaches(f, a, p, assignment) for f, a, p in pairs])
    finally:
        gc.enable()
    kinds = {k: sum(1 for o in outcomes if o.kind == k) for k in sorted({o.kind for o in outcomes})}
    per = {
        "engine (price_many, all products)": whole / len(items),
        "guardrails (per suggestion)": guard / max(1, len(pairs)),
        "invariant check (per suggestion)": check / max(1, len(pairs)),
    }
    sys.stdout.write(f"{len(items):,} products: {kinds}\n")
    for part, seconds in per.items():
        sys.stdout.write(f"{part}: {seconds * 1e6:,.1f} us; x {FULL_SIZE:,} = {seconds * FULL_SIZE:,.2f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
