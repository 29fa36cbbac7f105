"""Paged reads of the catalogue, listings and sweeps (the API's lists), and the API's answers to
the edits of one listing or product (written by monitor.store.catalog, as the pages write them).

Pages are keyset pages: the last key shown goes back as `after`, so a deep page costs what the
first does, at 172,800 products too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, aliased

from monitor.errors import NotFoundError, PricemonError
from monitor.money import format_amount
from monitor.settings import Competitor as CompetitorConfig
from monitor.settings import check_http_url
from monitor.store.catalog import listing_row, set_listing_active, set_product_active, write_listings
from monitor.store.history import seen_until
from monitor.store.models import Competitor, Listing, PriceHistory, Product, ScrapeRun


class InvalidRequestError(PricemonError):
    """A value of an edit that cannot be used (named in the message): the caller's to fix."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_after: str | None  # None: the last page


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _product(p: Product) -> dict[str, Any]:
    return {
        "sku": p.sku,
        "name": p.name,
        "currency": p.currency,
        "price": format_amount(p.price),
        "cost": format_amount(p.cost),
        "min_price": format_amount(p.min_price),
        "max_price": format_amount(p.max_price),
        "map_price": format_amount(p.map_price),
        "gtin": p.gtin,
        "tags": list(p.tags),
        "active": p.active,
    }


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def product_page(
    session: Session,
    *,
    after: str | None = None,
    limit: int = 50,
    q: str | None = None,
    tag: str | None = None,
    active: bool | None = None,
) -> Page:
    """Products by SKU, after the SKU `after`; `q` is text in the SKU or name."""
    query = select(Product).order_by(Product.sku).limit(limit + 1)
    if after is not None:
        query = query.where(Product.sku > after)
    if q:
        pattern = _like(q)
        query = query.where(
            func.lower(Product.sku).like(pattern, escape="\\") | func.lower(Product.name).like(pattern, escape="\\")
        )
    if tag:
        import json

        query = query.where(cast(Product.tags, String).like(_like(json.dumps(tag)), escape="\\"))
    if active is not None:
        query = query.where(Product.active.is_(active))
    products = list(session.scalars(query))
    more = len(products) > limit
    products = products[:limit]
    return Page([_product(p) for p in products], products[-1].sku if more and products else None)


def product_detail(session: Session, sku: str) -> dict[str, Any]:
    product = session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFoundError(f"unknown SKU {sku!r}")
    return _product(product)


def _listing(listing: Listing, sku: str, competitor: str, obs: PriceHistory | None, last_seen: Any) -> dict[str, Any]:
    return listing_row(listing, sku, competitor, obs, last_seen)


def listing_page(
    session: Session,
    *,
    after: int | None = None,
    limit: int = 50,
    skus: Sequence[str] = (),
    competitor: str | None = None,
    active: bool | None = None,
    failing: bool | None = None,
) -> Page:
    """Listings by id with their latest state and last outcome, after the id `after`."""
    latest = aliased(PriceHistory)
    query = (
        select(Listing, Product.sku, Competitor.name, latest, seen_until(latest))
        .join(Product, Listing.product_id == Product.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .outerjoin(latest, latest.id == Listing.latest_history_id)
        .order_by(Listing.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Listing.id > after)
    if skus:
        query = query.where(Product.sku.in_(skus))
    if competitor:
        query = query.where(Competitor.name == competitor)
    if active is not None:
        query = query.where(Listing.active.is_(active))
    if failing is True:
        query = query.where(Listing.consecutive_failures > 0)
    elif failing is False:
        query = query.where(Listing.consecutive_failures == 0)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([_listing(*row) for row in rows], str(rows[-1][0].id) if more and rows else None)


def listing_detail(session: Session, listing_id: int) -> dict[str, Any]:
    latest = aliased(PriceHistory)
    row = session.execute(
        select(Listing, Product.sku, Competitor.name, latest, seen_until(latest))
        .join(Product, Listing.product_id == Product.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .outerjoin(latest, latest.id == Listing.latest_history_id)
        .where(Listing.id == listing_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no listing {listing_id}")
    return _listing(*row)


def add_listing(
    session: Session, sku: str, competitor: str, url: str, competitors: Sequence[CompetitorConfig]
) -> dict[str, Any]:
    """Add the listing of `sku` at `competitor` (a competitor of the config) through the writer of
    `import listings` (an existing listing of the pair gets the new URL, is re-enabled and is
    checked soon); returns it. Each bad value is named, as an import names a bad cell."""
    configured = {c.name for c in competitors}
    if competitor not in configured:
        known = ", ".join(sorted(configured)) or "none configured"
        raise InvalidRequestError(f"competitor: unknown competitor {competitor!r} (config has: {known})")
    try:
        check_http_url(url)
    except ValueError as exc:
        raise InvalidRequestError(f"url: {exc}") from None
    if len(url) > 2048:
        raise InvalidRequestError("url: longer than 2048 characters")
    if session.scalar(select(Product.id).where(Product.sku == sku)) is None:
        raise NotFoundError(f"unknown SKU {sku!r} (import it with `pricemon import products`)")
    write_listings(session, {(sku, competitor): url}, competitors, where="api")
    listing_id = session.scalar(
        select(Listing.id)
        .join(Product, Product.id == Listing.product_id)
        .join(Competitor, Competitor.id == Listing.competitor_id)
        .where(Product.sku == sku, Competitor.name == competitor)
    )
    assert listing_id is not None
    return listing_detail(session, listing_id)


def enable_listing(session: Session, listing_id: int, active: bool) -> dict[str, Any]:
    """`catalog.set_listing_active`, answering with the listing."""
    if set_listing_active(session, listing_id, active) is None:
        raise NotFoundError(f"no listing {listing_id}")
    return listing_detail(session, listing_id)


def activate_product(session: Session, sku: str, active: bool, *, by: str) -> dict[str, Any]:
    """`catalog.set_product_active` (deactivating supersedes its open suggestions, by `by`),
    answering with the product."""
    if not set_product_active(session, sku, active, by=by):
        raise NotFoundError(f"unknown SKU {sku!r}")
    return product_detail(session, sku)


def _run(run: ScrapeRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "trigger": run.trigger,
        "competitors": list(run.competitors),
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "checked": run.checked,
        "changed": run.changed,
        "failed": run.failed,
        "error": run.error,
        "counts": run.counts,
    }


def sweep_page(session: Session, *, after: int | None = None, limit: int = 50) -> Page:
    """Sweeps, newest first, older than the run id `after`."""
    query = select(ScrapeRun).order_by(ScrapeRun.id.desc()).limit(limit + 1)
    if after is not None:
        query = query.where(ScrapeRun.id < after)
    runs = list(session.scalars(query))
    more = len(runs) > limit
    runs = runs[:limit]
    return Page([_run(r) for r in runs], str(runs[-1].id) if more and runs else None)


def sweep_detail(session: Session, run_id: int) -> dict[str, Any]:
    run = session.get(ScrapeRun, run_id)
    if run is None:
        raise NotFoundError(f"no sweep {run_id}")
    return _run(run)
