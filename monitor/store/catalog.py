"""Our catalogue and what we watch: products, competitors, listings; CSV imports and listings.

Imports are all-or-nothing: every row is checked first, every problem is reported as
`FILE:LINE: field: problem`, and only a clean file is written, in one transaction.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, true, update
from sqlalchemy.orm import Session, aliased

from monitor.errors import ImportDataError, NotFoundError
from monitor.money import format_amount, parse_amount
from monitor.settings import Competitor as CompetitorConfig
from monitor.settings import check_http_url
from monitor.store.history import seen_until
from monitor.store.models import Competitor, Listing, PriceChange, PriceHistory, Product, Suggestion, utcnow

PRODUCT_REQUIRED = ("sku", "name", "price", "currency")
PRODUCT_OPTIONAL = ("cost", "min_price", "max_price", "map_price", "gtin", "mpn", "brand", "tags")
LISTING_REQUIRED = ("sku", "competitor", "url")
CHUNK = 900  # stay below SQLite's bound-parameter limit in IN (...) lists


@dataclass(frozen=True, slots=True)
class ImportSummary:
    inserted: int
    updated: int
    unchanged: int
    #: SKUs whose file price was not taken: pricemon applied a price after their last import
    kept_prices: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_csv(path: Path, required: Sequence[str], optional: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV with a header; header problems raise at once."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportDataError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportDataError(str(path), [f"{path}:1: header: {exc}"]) from None
        if not header:
            raise ImportDataError(str(path), [f"{path}:1: header: the file is empty; expected {','.join(required)}"])
        columns = [h.strip() for h in header]
        reader.fieldnames = columns
        if len(columns) == 1 and ";" in columns[0] and required[0] in columns[0]:
            # A spreadsheet saved with a European locale: one column named "sku;name;price;...".
            raise ImportDataError(
                str(path),
                [
                    f"{path}:1: header: columns are separated by ';', not ','; save the file as "
                    "comma-separated CSV (in a spreadsheet: CSV with ',' as the field delimiter)"
                ],
            )
        problems = [f"{path}:1: header: missing column '{c}'" for c in required if c not in columns]
        allowed = set(required) | set(optional)
        problems += [
            f"{path}:1: header: unknown column '{c}' (expected {', '.join((*required, *optional))})"
            for c in columns
            if c not in allowed
        ]
        if problems:
            raise ImportDataError(str(path), problems)
        try:
            for row in reader:
                if None in row:
                    yield reader.line_num, {"__extra__": "more cells than header columns"}
                    continue
                if any("\x00" in (v or "") for v in row.values()):
                    # PostgreSQL cannot store it, and no real value contains one
                    yield reader.line_num, {"__extra__": "contains a NUL byte"}
                    continue
                yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportDataError(str(path), [f"{path}:{reader.line_num}: {exc}"]) from None


def _money(row: dict[str, str], field: str, problems: list[str], where: str, *, required: bool) -> Decimal | None:
    text = row.get(field, "")
    if not text:
        if required:
            problems.append(f"{where}: {field}: required value is empty")
        return None
    try:
        value = parse_amount(text)
    except ValueError as exc:
        problems.append(f"{where}: {field}: {exc}")
        return None
    if value < 0:
        problems.append(f"{where}: {field}: negative amount {text}")
        return None
    if field == "price" and value == 0:
        problems.append(f"{where}: {field}: a price must be greater than zero")
        return None
    return value


def _tags(text: str) -> list[str]:
    return sorted({t.strip() for t in re.split(r"[;|]", text) if t.strip()})


def import_products(session: Session, path: Path, *, overwrite_prices: bool = False) -> ImportSummary:
    """Upsert products by SKU from a CSV (`sku,name,price,currency` + optional columns).

    A price pricemon applied after a product's last import is newer than the file's: unless
    `overwrite_prices`, the product keeps it (its other columns are imported) and its SKU is
    listed in `kept_prices`. A file is often an export made before the apply, and putting its
    old prices back silently undoes decisions someone approved.
    """
    problems: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for line, raw in _read_csv(path, PRODUCT_REQUIRED, PRODUCT_OPTIONAL):
        where = f"{path}:{line}"
        if "__extra__" in raw:
            problems.append(f"{where}: row: {raw['__extra__']}")
            continue
        sku = raw["sku"]
        if not sku:
            problems.append(f"{where}: sku: required value is empty")
            continue
        if len(sku) > 64:
            problems.append(f"{where}: sku: longer than 64 characters")
            continue
        if sku in first_line:
            problems.append(f"{where}: sku: duplicate SKU {sku!r} (first on line {first_line[sku]})")
            continue
        first_line[sku] = line
        name = raw["name"]
        if not name:
            problems.append(f"{where}: name: required value is empty")
        currency = raw["currency"].upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            problems.append(f"{where}: currency: expected an ISO 4217 code such as EUR, got {raw['currency']!r}")
        values = {f: _money(raw, f, problems, where, required=f == "price") for f in ("price", "cost")}
        values |= {f: _money(raw, f, problems, where, required=False) for f in ("min_price", "max_price", "map_price")}
        if (
            values["min_price"] is not None
            and values["max_price"] is not None
            and values["min_price"] > values["max_price"]
        ):
            problems.append(f"{where}: min_price: {values['min_price']} is above max_price {values['max_price']}")
        gtin = raw.get("gtin", "") or None
        if gtin is not None and not re.fullmatch(r"\d{8}|\d{12,14}", gtin):
            problems.append(f"{where}: gtin: expected 8, 12, 13 or 14 digits, got {gtin!r}")
        mpn = raw.get("mpn", "") or None
        if mpn is not None and len(mpn) > 100:
            problems.append(f"{where}: mpn: longer than 100 characters")
        brand = raw.get("brand", "") or None
        if brand is not None and len(brand) > 200:
            problems.append(f"{where}: brand: longer than 200 characters")
        rows[sku] = {
            "sku": sku,
            "name": name[:500],
            "currency": currency,
            "gtin": gtin,
            "mpn": mpn,
            "brand": brand,
            "tags": _tags(raw.get("tags", "")),
            **values,
        }
    if problems:
        raise ImportDataError(str(path), problems)

    existing: dict[str, Product] = {}
    last_applied: dict[int, datetime] = {}
    for chunk in _chunks(list(rows)):
        for product in session.scalars(select(Product).where(Product.sku.in_(chunk))):
            existing[product.sku] = product
        for product_id, applied_at in session.execute(
            select(PriceChange.product_id, func.max(PriceChange.applied_at))
            .join(Product, Product.id == PriceChange.product_id)
            .where(Product.sku.in_(chunk))
            .group_by(PriceChange.product_id)
        ):
            last_applied[product_id] = applied_at
    inserted = updated = unchanged = 0
    kept: list[str] = []
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for sku, values in rows.items():
        found = existing.get(sku)
        if found is None:
            new_rows.append({**values, "active": True, "created_at": now, "updated_at": now, "price_imported_at": now})
            inserted += 1
            continue
        last_apply = last_applied.get(found.id)
        # A product imported before pricemon recorded import times counts as applied-since.
        applied_since = last_apply is not None and (
            found.price_imported_at is None or last_apply > found.price_imported_at
        )
        if values["price"] != found.price and applied_since and not overwrite_prices:
            kept.append(sku)
            values = {**values, "price": found.price}
        elif applied_since or found.price_imported_at is None or values["price"] != found.price:
            found.price_imported_at = now  # the file's price is the product's price now
        if all(getattr(found, k) == v for k, v in values.items()) and found.active:
            unchanged += 1
            continue
        for key, value in values.items():
            setattr(found, key, value)
        found.active = True
        updated += 1
    for chunk in _chunks(new_rows, 5000):
        session.execute(insert(Product), chunk)
    return ImportSummary(inserted, updated, unchanged, tuple(kept))


def sync_competitors(session: Session, competitors: Iterable[CompetitorConfig]) -> dict[str, int]:
    """Mirror the configured competitors into the database; return their ids by name.

    Competitors removed from the config stay in the database with their history.
    """
    stored = {c.name: c for c in session.scalars(select(Competitor))}
    for config in competitors:
        row = stored.get(config.name)
        if row is None:
            row = Competitor(name=config.name, base_url=config.base_url)
            session.add(row)
            stored[config.name] = row
        elif row.base_url != config.base_url:
            row.base_url = config.base_url
    session.flush()
    return {name: row.id for name, row in stored.items()}


def import_listings(session: Session, path: Path, competitors: Sequence[CompetitorConfig]) -> ImportSummary:
    """Upsert listings keyed by (sku, competitor) from a CSV with `sku,competitor,url`."""
    configured = {c.name for c in competitors}
    problems: list[str] = []
    parsed: dict[tuple[str, str], tuple[int, str]] = {}
    for line, raw in _read_csv(path, LISTING_REQUIRED, ()):
        where = f"{path}:{line}"
        if "__extra__" in raw:
            problems.append(f"{where}: row: {raw['__extra__']}")
            continue
        sku, competitor, url = raw["sku"], raw["competitor"], raw["url"]
        bad = False
        if not sku:
            problems.append(f"{where}: sku: required value is empty")
            bad = True
        if competitor not in configured:
            known = ", ".join(sorted(configured)) or "none configured"
            problems.append(f"{where}: competitor: unknown competitor {competitor!r} (config has: {known})")
            bad = True
        try:
            check_http_url(url)
        except ValueError as exc:
            problems.append(f"{where}: url: {exc}")
            bad = True
        if not bad and len(url) > 2048:
            problems.append(f"{where}: url: longer than 2048 characters")
            bad = True
        key = (sku, competitor)
        if key in parsed:
            problems.append(
                f"{where}: sku: duplicate listing for {sku!r} at {competitor!r} (first on line {parsed[key][0]})"
            )
            continue
        if not bad:
            parsed[key] = (line, url)

    return write_listings(
        session,
        {key: url for key, (_line, url) in parsed.items()},
        competitors,
        lines={key: line for key, (line, _url) in parsed.items()},
        where=str(path),
        problems=problems,
    )


def write_listings(
    session: Session,
    wanted: dict[tuple[str, str], str],
    competitors: Sequence[CompetitorConfig],
    *,
    lines: dict[tuple[str, str], int] | None = None,
    where: str = "listings",
    problems: list[str] | None = None,
) -> ImportSummary:
    """Upsert listings {(sku, competitor): url}: what `import listings` writes for a clean file,
    and what an accepted match writes (monitor.matching), so the two are the same listing.

    A new URL for a (sku, competitor) is a new page: what was known about the old one is forgotten
    and it is checked soon. Unknown SKUs are refused, all or nothing.
    """
    problems = list(problems or [])
    lines = lines or {}
    parsed = {key: (lines.get(key, 0), url) for key, url in wanted.items()}
    path = where
    skus = sorted({sku for sku, _ in parsed})
    product_ids: dict[str, int] = {}
    for chunk in _chunks(skus):
        product_ids.update(
            (sku, pid) for sku, pid in session.execute(select(Product.sku, Product.id).where(Product.sku.in_(chunk)))
        )
    for (sku, _competitor), (line, _url) in parsed.items():
        if sku not in product_ids:
            problems.append(f"{path}:{line}: sku: unknown SKU {sku!r} (import it with `pricemon import products`)")
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[1]) if p.split(":")[1].isdigit() else 0)
        raise ImportDataError(str(path), problems)
    configured = {c.name for c in competitors}
    unknown = sorted({c for _, c in parsed if c not in configured})
    if unknown:
        raise ImportDataError(str(path), [f"{path}: competitor: unknown competitor {c!r}" for c in unknown])

    competitor_ids = sync_competitors(session, competitors)
    existing: dict[tuple[int, int], tuple[int, str, bool]] = {}
    wanted_products = sorted(set(product_ids.values()))
    # Only the competitors written: a discovery accepting one shop's matches need not read every
    # other shop's listings of the same products (72 shops: up to 115,000 rows for the last one).
    # (A few of them: the IN list shares SQLite's bound-parameter limit with the chunk's.)
    wanted_competitors = sorted({competitor_ids[c] for _, c in parsed})
    of_competitors = Listing.competitor_id.in_(wanted_competitors) if len(wanted_competitors) <= 50 else true()
    for chunk in _chunks(wanted_products):
        for row in session.execute(
            select(Listing.id, Listing.product_id, Listing.competitor_id, Listing.url, Listing.active).where(
                Listing.product_id.in_(chunk), of_competitors
            )
        ):
            existing[(row.product_id, row.competitor_id)] = (row.id, row.url, row.active)
    inserted = updated = unchanged = 0
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    now = utcnow()
    for (sku, competitor), (_line, url) in parsed.items():
        ids = (product_ids[sku], competitor_ids[competitor])
        found = existing.get(ids)
        if found is None:
            new_rows.append(
                {
                    "product_id": ids[0],
                    "competitor_id": ids[1],
                    "url": url,
                    "active": True,
                    "created_at": now,
                    "consecutive_failures": 0,
                }
            )
            inserted += 1
        elif found[1] == url and found[2]:
            unchanged += 1
        else:
            # A new URL is a new page: forget what we knew about the old one and check it soon.
            changed_rows.append(
                {
                    "id": found[0],
                    "url": url,
                    "active": True,
                    "etag": None,
                    "last_modified": None,
                    "body_hash": None,
                    "next_check_at": None,
                }
            )
            updated += 1
    for chunk in _chunks(new_rows, 5000):
        session.execute(insert(Listing), chunk)
    if changed_rows:
        session.execute(update(Listing), changed_rows)
    return ImportSummary(inserted, updated, unchanged)


def unknown_skus(session: Session, skus: Sequence[str]) -> list[str]:
    """The SKUs of `skus` that are not in our catalogue, in the order given."""
    known: set[str] = set()
    for chunk in _chunks(sorted(set(skus))):
        known.update(session.scalars(select(Product.sku).where(Product.sku.in_(chunk))))
    return [sku for sku in dict.fromkeys(skus) if sku not in known]


def product_rows(session: Session, *, skus: Sequence[str] = ()) -> list[dict[str, Any]]:
    query = select(Product).order_by(Product.sku)
    if skus:
        query = query.where(Product.sku.in_(skus))
    return [
        {
            "sku": p.sku,
            "name": p.name,
            "currency": p.currency,
            "price": format_amount(p.price),
            "cost": format_amount(p.cost),
            "min_price": format_amount(p.min_price),
            "max_price": format_amount(p.max_price),
            "map_price": format_amount(p.map_price),
            "gtin": p.gtin,
            "mpn": p.mpn,
            "brand": p.brand,
            "tags": list(p.tags),
            "active": p.active,
        }
        for p in session.scalars(query)
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def listing_rows(
    session: Session, *, skus: Sequence[str] = (), competitors: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    """Every listing with its latest observation and last outcome, ordered by SKU and competitor."""
    latest = aliased(PriceHistory)
    query = (
        select(Listing, Product.sku, Competitor.name, latest, seen_until(latest))
        .join(Product, Listing.product_id == Product.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .outerjoin(latest, latest.id == Listing.latest_history_id)
        .order_by(Product.sku, Competitor.name)
    )
    if skus:
        query = query.where(Product.sku.in_(skus))
    if competitors:
        query = query.where(Competitor.name.in_(competitors))
    for listing, sku, competitor, obs, last_seen in session.execute(query.execution_options(yield_per=2000)):
        yield listing_row(listing, sku, competitor, obs, last_seen)


def listing_row(
    listing: Listing, sku: str, competitor: str, obs: PriceHistory | None, last_seen: Any
) -> dict[str, Any]:
    """One listing with its latest observation, as `pricemon listings --json` and the API show it."""
    return {
        "id": listing.id,
        "sku": sku,
        "competitor": competitor,
        "url": listing.url,
        "active": listing.active,
        "price": format_amount(obs.price) if obs else None,
        "currency": obs.currency if obs else None,
        "in_stock": obs.in_stock if obs else None,
        "observed_at": _iso(obs.observed_at) if obs else None,
        "last_seen_at": _iso(last_seen) if obs else None,
        "suspicious": obs.suspicious if obs else False,
        "last_checked_at": _iso(listing.last_checked_at),
        "last_outcome": listing.last_outcome,
        "last_error": listing.last_error,
        "consecutive_failures": listing.consecutive_failures,
        "next_check_at": _iso(listing.next_check_at),
    }


def history_rows(session: Session, sku: str) -> list[dict[str, Any]]:
    """One product's price history across all its listings, oldest first."""
    product_id = session.scalar(select(Product.id).where(Product.sku == sku))
    if product_id is None:
        raise NotFoundError(f"unknown SKU {sku!r}")
    query = (
        select(PriceHistory, seen_until(), Competitor.name, Listing.url)
        .join(Listing, PriceHistory.listing_id == Listing.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .where(Listing.product_id == product_id)
        .order_by(PriceHistory.observed_at, Competitor.name, PriceHistory.id)
    )
    return [
        {
            "competitor": name,
            "url": url,
            "price": format_amount(row.price),
            "currency": row.currency,
            "in_stock": row.in_stock,
            "observed_at": _iso(row.observed_at),
            "last_seen_at": _iso(last_seen),
            "suspicious": row.suspicious,
            "currency_mismatch": row.currency_mismatch,
        }
        for row, last_seen, name, url in session.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class SweepTarget:
    """What a fetcher needs to check one listing."""

    listing_id: int
    competitor: str
    url: str
    product_gtin: str | None
    product_currency: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None


def _sweepable(
    query: Any,
    competitors: Sequence[str],
    skus: Sequence[str],
    due_only: bool,
    now: datetime | None,
    listing_ids: Sequence[int] = (),
    not_in_run: int | None = None,
) -> Any:
    """`query` over listings, narrowed to what a sweep checks (see `sweep_targets`)."""
    query = (
        query.join(Product, Listing.product_id == Product.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .where(Listing.active.is_(True), Product.active.is_(True), Competitor.name.in_(competitors))
    )
    if skus:
        query = query.where(Product.sku.in_(skus))
    if due_only:
        moment = now or utcnow()
        query = query.where(or_(Listing.next_check_at.is_(None), Listing.next_check_at <= moment))
    if listing_ids:
        query = query.where(Listing.id.in_(list(listing_ids)))
    if not_in_run is not None:
        query = query.where(or_(Listing.last_run_id.is_(None), Listing.last_run_id != not_in_run))
    return query


def sweep_targets(
    session: Session,
    *,
    competitors: Sequence[str],
    skus: Sequence[str] = (),
    due_only: bool = False,
    now: datetime | None = None,
    chunk: int = 5000,
    listing_ids: Sequence[int] = (),
    not_in_run: int | None = None,
) -> Iterator[Row[Any]]:
    """Active listings of active products at the named competitors (due ones only if asked).

    Rows carry the fields of `SweepTarget`; they are streamed `chunk` rows at a time, so memory
    stays flat however many listings there are. A cluster chunk names its `listing_ids` and,
    run again, leaves out those whose latest check is already its run's (`not_in_run`).
    """
    query = _sweepable(
        select(
            Listing.id.label("listing_id"),
            Competitor.name.label("competitor"),
            Listing.url,
            Product.gtin.label("product_gtin"),
            Product.currency.label("product_currency"),
            Listing.etag,
            Listing.last_modified,
            Listing.body_hash,
        ),
        competitors,
        skus,
        due_only,
        now,
        listing_ids,
        not_in_run,
    ).order_by(Listing.competitor_id, Listing.id)
    yield from session.execute(query.execution_options(yield_per=chunk))  # type: ignore[misc]


def count_sweep_targets(
    session: Session,
    *,
    competitors: Sequence[str],
    skus: Sequence[str] = (),
    due_only: bool = False,
    now: datetime | None = None,
) -> dict[str, int]:
    """How many listings `sweep_targets` would give, per competitor name (none: not listed).

    One aggregate query: a sweep sizes and shards itself before any worker starts, and streaming
    every target row only to count them held that start up (PostgreSQL, 43,200 listings: 0.22 s
    streamed, 0.02 s grouped).
    """
    query = _sweepable(select(Competitor.name, func.count(Listing.id)), competitors, skus, due_only, now).group_by(
        Competitor.name
    )
    return {name: int(n) for name, n in session.execute(query)}


def set_listing_active(session: Session, listing_id: int, active: bool) -> tuple[str, str] | None:
    """Enable or disable one listing (a disabled one is not swept and offers nothing); returns its
    (sku, competitor), or None when there is no such listing."""
    found = session.execute(
        select(Product.sku, Competitor.name)
        .join(Listing, Listing.product_id == Product.id)
        .join(Competitor, Competitor.id == Listing.competitor_id)
        .where(Listing.id == listing_id)
    ).first()
    if found is None:
        return None
    values: dict[str, Any] = {"active": active}
    if active:
        values["next_check_at"] = None  # back in the sweep at once
    session.execute(update(Listing).where(Listing.id == listing_id).values(**values))
    return found[0], found[1]


def set_product_active(session: Session, sku: str, active: bool, *, by: str = "pricemon") -> bool:
    """(De)activate a product: an inactive one gets no suggestions and its listings are not swept.

    Deactivating also supersedes its pending and approved suggestions (decided by `by`): `suggest`
    no longer computes the product, so nothing else would ever take them out of the review queue,
    and an apply must not move the price of a product taken out of the range.
    """
    now = utcnow()
    result = session.execute(update(Product).where(Product.sku == sku).values(active=active, updated_at=now))
    found = bool(result.rowcount)  # type: ignore[attr-defined]
    if found and not active:
        product_id = select(Product.id).where(Product.sku == sku).scalar_subquery()
        session.execute(
            update(Suggestion)
            .where(Suggestion.product_id == product_id, Suggestion.status.in_(("pending", "approved")))
            .values(status="superseded", decided_at=now, decided_by=by)
            .execution_options(synchronize_session=False)
        )
    return found
