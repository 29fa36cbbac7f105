"""A shop that does not answer at all is recorded as a connection failure, not as a robots.txt
refusal: the robots.txt fetch failing by connection error is the shop being down."""

from __future__ import annotations

import socket

from .conftest import jsonld_page
from .test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens here once the socket is closed


class _Nowhere:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"


def test_an_unreachable_shop_is_a_connection_failure_not_blocked_by_robots(
    tmp_path, shop, pricemon_cli, write_config, sqlite_url
) -> None:
    down = _Nowhere(_closed_port())
    shop.pages["/p/ok"] = jsonld_page("10.00")
    config = write_config(SCRAPE + competitor_block("down", down) + competitor_block("up", shop))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(
        tmp_path, pricemon, [("A", "down", f"{down.base}/p/a"), ("B", "down", f"{down.base}/p/b"),
                             ("C", "up", shop.url("/p/ok"))]
    )
    summary = pricemon("scrape", "--json").json()
    rows = by_sku(pricemon)
    for sku in ("A", "B"):
        assert rows[sku]["last_outcome"] == "http_error", rows[sku]
        assert "robots.txt" in rows[sku]["last_error"] and "connect" in rows[sku]["last_error"].lower()
    assert "blocked_by_robots" not in summary["competitors"]["down"]
    assert rows["C"]["last_outcome"] == "changed"  # the shop that answers is checked as usual
