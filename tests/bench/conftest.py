"""A small synthetic web (one shop per page style) and a server for it, shared by the bench tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.static_server import StaticServer, start_static_server
from bench.synthetic_web import STYLES, SyntheticWeb, generate_web

# Six shops so that every page style and its extraction rules are exercised; 40 products keeps it fast.
SMOKE_SHOPS = len(STYLES)
SMOKE_PRODUCTS = 40


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="session")
def small_web(bench_cache: Path) -> SyntheticWeb:
    return generate_web(SMOKE_SHOPS, SMOKE_PRODUCTS, seed=7, cache_root=bench_cache, workers=2)


@pytest.fixture(scope="session")
def served_web(small_web: SyntheticWeb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    """The small web behind nginx where installed, else the Python fallback."""
    server = start_static_server(
        {shop.name: small_web.shop_root(shop.name) for shop in small_web.shops},
        tmp_path_factory.mktemp("bench-server"),
        workers=1,
    )
    try:
        yield server
    finally:
        server.stop()
