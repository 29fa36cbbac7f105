"""A manual `pricemon scrape` raises the same alerts as the daemon, from what that sweep recorded."""

from __future__ import annotations

from tests.conftest import WebhookServer

from .conftest import jsonld_page
from .test_sweep import SCRAPE, competitor_block, setup_catalog


def test_scrape_raises_an_undercut_alert_once(
    tmp_path, shop, webhook: WebhookServer, pricemon_cli, write_config
) -> None:
    shop.pages["/p/kettle"] = jsonld_page("21.00")  # our price is 20.00: not undercut yet
    alerting = f"""
[[alerting.channels]]
name = "hook"
type = "webhook"
url = "{webhook.url}"

[[alerts]]
name = "undercut"
condition = "undercut"
channels = ["hook"]
"""
    config = write_config(SCRAPE + competitor_block("acme", shop) + alerting)
    pricemon = pricemon_cli(config, f"sqlite:///{tmp_path / 'pricemon.db'}")
    setup_catalog(tmp_path, pricemon, [("K", "acme", shop.url("/p/kettle"))])

    pricemon("scrape", "--json")
    assert webhook.events == []

    shop.pages["/p/kettle"] = jsonld_page("18.50")
    pricemon("scrape", "--json")
    (event,) = webhook.events
    assert event["rule"] == "undercut" and "18.50" in event["message"]

    pricemon("scrape", "--json")  # the same undercut seen again is not a new event
    assert len(webhook.events) == 1
