"""The daemon refits the demand models on `demand.fit_every` (in-process, the daemon's real scheduler)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.demand_data import DemandData, write_csvs
from monitor.demand.store import last_fitted_at, load_estimates
from monitor.scheduler import Daemon
from monitor.scrape.sweep import SweepSummary
from monitor.settings import Settings, load_settings
from monitor.store.database import open_store
from tests.conftest import Pricemon


def _no_sweep(settings: Settings, **kwargs: Any) -> Any:
    return SweepSummary(None, "finished", 0.0, {}, checked=0, changed=0, failed=0)


def test_daemon_fits_at_start_then_every_interval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pricemon.db'}"
    config = tmp_path / "pricemon.toml"
    config.write_text(f'database_url = "{url}"\n[demand]\nfit_every = "1s"\nmin_observations = 20\n')
    data = DemandData(12, days=60, thin_share=0, constant_share=0)
    products, sales, _traffic = write_csvs(data, tmp_path)
    Pricemon(config)("import", "products", str(products))
    Pricemon(config)("import", "sales", str(sales))
    daemon = Daemon(load_settings(config), load_settings=lambda: load_settings(config), sweep=_no_sweep)
    store = open_store(url)
    try:
        daemon.start()
        deadline = time.monotonic() + 20
        first = None
        while time.monotonic() < deadline and first is None:
            first = last_fitted_at(store)
            time.sleep(0.1)
        assert first is not None, "the daemon did not fit the demand models"
        estimates = load_estimates(store)
        assert len(estimates) == 12 and all(e.status == "ok" for e in estimates.values())
        later = first
        while time.monotonic() < deadline and later == first:
            later = last_fitted_at(store)
            time.sleep(0.1)
        assert later is not None and later > first, "no refit after fit_every"
    finally:
        daemon.shutdown()
        store.dispose()
