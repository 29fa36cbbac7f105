"""A robots.txt larger than `scrape.max_body_bytes` is still obeyed: its first 500 KiB are parsed,
as RFC 9309 requires of crawlers (a real server on 127.0.0.1, through `pricemon scrape`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scrape.conftest import Reply, Shop, jsonld_page
from tests.scrape.test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog

PADDING = "# " + "x" * 97 + "\n"  # 100 bytes a line


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
def test_the_first_500_kib_of_a_huge_robots_txt_are_obeyed(
    tmp_path, shop, other_shop_proxy, pricemon_cli, write_config, sqlite_url, kind
) -> None:
    # 700 KB, seven times the configured max_body_bytes (100 KB), with rules at both ends of its
    # first 500 KiB.
    head = "User-agent: *\nDisallow: /private/\n"
    inside = head + PADDING * 5100 + "Disallow: /late/\n"
    robots = inside + PADDING * 2000
    assert len(robots) > 700_000 and 500 * 1024 - 3000 < len(inside) < 500 * 1024
    shop.pages["/robots.txt"] = Reply(body=robots, headers={"Content-Type": "text/plain"})
    for path in ("/private/a", "/late/b", "/open/c"):
        shop.pages[path] = jsonld_page("12.00")
    listings = [("PRIV", "acme", shop.url("/private/a")), ("LATE", "acme", shop.url("/late/b"))]
    listings.append(("OPEN", "acme", shop.url("/open/c")))
    extra = f'proxy = "{other_shop_proxy}"' if kind == "httpx" else ""
    config = write_config(SCRAPE + competitor_block("acme", shop, extra))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, listings)

    assert pricemon("scrape", "--json").json()["status"] == "finished"

    outcome = {sku: row["last_outcome"] for sku, row in by_sku(pricemon).items()}
    assert outcome == {"PRIV": "blocked_by_robots", "LATE": "blocked_by_robots", "OPEN": "changed"}
    assert shop.hits["/private/a"] == 0 and shop.hits["/late/b"] == 0
    assert shop.hits["/robots.txt"] == 1
    assert bool(shop.proxied) == (kind == "httpx")


@pytest.fixture
def other_shop_proxy(shop: Shop) -> str:
    """The shop answers as a forward proxy too (tests/scrape/conftest.py): httpx's proxy path."""
    return shop.base
