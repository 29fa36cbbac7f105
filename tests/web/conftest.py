"""Fixtures for the workspace: the pricing tests' market (a catalogue with stored observations)."""

from tests.pricing.conftest import market, sqlite_market  # noqa: F401  (fixtures used here too)
from tests.web.served import served, served_sqlite  # noqa: F401  (a real `pricemon serve` over that market)
