"""The daemon runs discovery on `discover_every` per competitor (a real `pricemon run` subprocess)."""

from __future__ import annotations

from tests.matching.conftest import ITEMS
from tests.scheduler.conftest import Daemon, query, wait_for


def test_daemon_discovers_on_discover_every_and_finds_a_page_that_went_away(setup) -> None:
    _pricemon, shop, tmp_path = setup
    config = tmp_path / "pricemon.toml"
    config.write_text(config.read_text().replace("max_concurrency = 4", 'max_concurrency = 4\ndiscover_every = "2s"'))
    db = tmp_path / "pricemon.db"
    daemon = Daemon(config, tmp_path)
    try:
        pages = "SELECT count(*) FROM discovered_pages WHERE status = 'product'"
        wait_for(lambda: query(db, pages)[0][0] == len(ITEMS), "the first discovery", daemon=daemon)
        accepted = "SELECT count(*) FROM match_candidates WHERE status = 'accepted'"
        # two by GTIN, one by brand + MPN
        wait_for(lambda: query(db, accepted)[0][0] == 3, "matching after the discovery", daemon=daemon)
        shop.pages.pop("/p/bosch-drill")
        rematch = "SELECT count(*) FROM match_candidates WHERE rematch = 'page gone (HTTP 404)'"
        wait_for(lambda: query(db, rematch)[0][0] == 1, "the gone page proposed for re-matching", daemon=daemon)
    finally:
        assert daemon.stop() == 0
