"""Demand fits at once: two `pricemon demand fit` processes beside a daemon refitting every second
leave one estimate per product, all from one fit, and no reader ever sees half of a fit; on SQLite
and PostgreSQL, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.demand_data import DemandData, write_csvs
from monitor.demand.fit import fit_store
from monitor.demand.store import load_estimates
from monitor.store.database import open_store
from monitor.store.models import DemandEstimateRow
from tests.conftest import Pricemon

PRODUCTS = 150


def _pricemon(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("pricemon")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRICEMON_")}
    return subprocess.Popen(
        [str(exe), "--config", str(config), *args],
        env=env,
        stdout=subprocess.PIPE if log is None else subprocess.DEVNULL,
        stderr=subprocess.PIPE if log is None else log.open("wb"),
        text=True,
    )


@pytest.mark.slow  # three processes fitting (each imports the numeric stack): ~5-10 s
def test_fits_at_once_leave_one_whole_fit(database_url: str, tmp_path: Path) -> None:
    store = open_store(database_url, migrate=True)
    try:
        config = tmp_path / "pricemon.toml"
        config.write_text(
            f'database_url = "{database_url}"\n[demand]\nfit_every = "1s"\nmin_observations = 20\n', encoding="utf-8"
        )
        data = DemandData(PRODUCTS, days=120, thin_share=0.1, constant_share=0.05)
        products, sales, traffic = write_csvs(data, tmp_path / "csv")
        pricemon = Pricemon(config)
        pricemon("import", "products", str(products))
        pricemon("import", "sales", str(sales))
        pricemon("import", "traffic", str(traffic))

        daemon_log = tmp_path / "daemon.log"
        daemon = _pricemon(config, "run", log=daemon_log)
        try:
            deadline = time.monotonic() + 60
            while not load_estimates(store):  # the daemon's first fit, at its start
                assert daemon.poll() is None, daemon_log.read_text()
                assert time.monotonic() < deadline, f"the daemon did not fit:\n{daemon_log.read_text()}"
                time.sleep(0.05)

            fits = [_pricemon(config, "demand", "fit", "--json") for _ in range(2)]
            # Every look while they and the daemon write: all products, all from one fit.
            fitted_at_seen: set[object] = set()
            looks = 0
            while any(f.poll() is None for f in fits) or looks < 3:
                snapshot = load_estimates(store)
                stamps = {e.fitted_at for e in snapshot.values()}
                assert len(snapshot) == PRODUCTS and len(stamps) == 1, (len(snapshot), stamps)
                fitted_at_seen |= stamps
                looks += 1
                time.sleep(0.02)  # leave the CPU to the fits
            outputs = [f.communicate(timeout=120) for f in fits]
            for fit, (out, err) in zip(fits, outputs, strict=True):
                assert fit.returncode == 0, err
                assert json.loads(out)["products"] == PRODUCTS
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
        log = daemon_log.read_text()
        assert code == 0, log
        assert not any(bad in log for bad in ("Traceback", "fitting failed", "database unavailable")), log
        assert len(fitted_at_seen) >= 2, "the fits never replaced each other while watched"

        with store.session() as session:
            rows = session.scalar(select(func.count()).select_from(DemandEstimateRow))
            doubled = session.execute(
                select(DemandEstimateRow.product_id).group_by(DemandEstimateRow.product_id).having(func.count() > 1)
            ).all()
        assert rows == PRODUCTS and doubled == []
        final = load_estimates(store)
        assert len({e.fitted_at for e in final.values()}) == 1
        # The same numbers as one fit alone on the same data: nothing mixed or half-written.
        fit_store(store, min_observations=20)
        alone = load_estimates(store)
        for sku, estimate in final.items():
            assert replace(estimate, fitted_at=None) == replace(alone[sku], fitted_at=None), sku
    finally:
        store.dispose()
