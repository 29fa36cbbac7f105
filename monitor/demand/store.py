"""Reading and writing the fitted demand models (`demand_estimates`), one row per product.

Strategies never open a session: the engine loads the estimates it needs with
`load_estimates` and hands them over as frozen `DemandEstimate` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.demand.estimate import DemandEstimate
from monitor.store.database import Store
from monitor.store.models import DemandEstimateRow, Product, SalesDay

CHUNK = 900  # below SQLite's bound-parameter limit in IN (...) lists
WRITE_CHUNK = 2000  # rows per INSERT .. ON CONFLICT (16 columns: 32,000 parameters, under both limits)

_FIELDS = (
    "status",
    "elasticity",
    "ci_low",
    "ci_high",
    "cross_elasticity",
    "conversion_rate",
    "conversion_elasticity",
    "observations",
    "base_units",
    "ref_price",
    "ref_index",
    "method",
    "fitted_at",
)


@contextmanager
def _session(store_or_session: Store | Session) -> Iterator[Session]:
    if isinstance(store_or_session, Session):
        yield store_or_session
    else:
        with store_or_session.session() as session:
            yield session


def _estimate(sku: str, row: DemandEstimateRow) -> DemandEstimate:
    return DemandEstimate(
        sku=sku,
        status=row.status,  # type: ignore[arg-type]  # only STATUSES are written
        elasticity=row.elasticity,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        cross_elasticity=row.cross_elasticity,
        conversion_rate=row.conversion_rate,
        observations=row.observations,
        base_units=row.base_units,
        ref_price=row.ref_price,
        ref_index=row.ref_index,
        fitted_at=row.fitted_at,
        method=row.method,
        conversion_elasticity=row.conversion_elasticity,
    )


def load_estimates(
    store: Store | Session, keys: Iterable[int] | Iterable[str] | None = None
) -> dict[str, DemandEstimate]:
    """The latest fitted estimate per SKU, for the products given by id (ints) or SKU (strs);
    `None` means every product. Products never fitted are absent from the result."""
    wanted: list[Any] | None = None if keys is None else list(keys)
    query = select(Product.sku, DemandEstimateRow).join(Product, Product.id == DemandEstimateRow.product_id)
    found: dict[str, DemandEstimate] = {}
    with _session(store) as session:
        if wanted is None:
            for sku, row in session.execute(query.execution_options(yield_per=5000)):
                found[sku] = _estimate(sku, row)
            return found
        by_sku = [k for k in wanted if isinstance(k, str)]
        by_id = [k for k in wanted if not isinstance(k, str)]
        for column, values in ((Product.sku, by_sku), (Product.id, by_id)):
            for start in range(0, len(values), CHUNK):
                for sku, row in session.execute(query.where(column.in_(values[start : start + CHUNK]))):
                    found[sku] = _estimate(sku, row)
    return found


def save_estimates(store: Store | Session, estimates: Sequence[DemandEstimate]) -> int:
    """Upsert one estimate per product (by SKU); unknown SKUs are an error. Returns rows written."""
    if not estimates:
        return 0
    with _session(store) as session:
        ids: dict[str, int] = {}
        skus = sorted({e.sku for e in estimates})
        for start in range(0, len(skus), CHUNK):
            query = select(Product.sku, Product.id).where(Product.sku.in_(skus[start : start + CHUNK]))
            ids.update((sku, product_id) for sku, product_id in session.execute(query))
        missing = [s for s in skus if s not in ids]
        if missing:
            raise ValueError(f"demand estimates for unknown SKU(s): {', '.join(missing[:10])}")
        dialect = session.connection().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        rows = [{"product_id": ids[e.sku], **{f: getattr(e, f) for f in _FIELDS}} for e in estimates]
        for row in rows:
            if row["fitted_at"] is None:
                raise ValueError(f"demand estimate for product {row['product_id']} has no fitted_at")
        table: Any = DemandEstimateRow.__table__
        for start in range(0, len(rows), WRITE_CHUNK):
            statement = insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.product_id], set_={f: statement.excluded[f] for f in _FIELDS}
            )
            session.connection().execute(statement, rows[start : start + WRITE_CHUNK])
    return len(rows)


def estimate_rows(session: Session, *, skus: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The stored estimates as plain rows for `pricemon demand show` (all products, or `skus`), by SKU."""
    estimates = load_estimates(session, list(skus) if skus else None)
    return [
        {
            "sku": e.sku,
            "elasticity": e.elasticity,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "cross_elasticity": e.cross_elasticity,
            "conversion_rate": e.conversion_rate,
            "conversion_elasticity": e.conversion_elasticity,
            "observations": e.observations,
            "status": e.status,
            "method": e.method,
            "base_units": e.base_units,
            "ref_price": None if e.ref_price is None else str(e.ref_price),
            "fitted_at": None if e.fitted_at is None else e.fitted_at.isoformat(),
        }
        for _sku, e in sorted(estimates.items())
    ]


def last_fitted_at(store: Store | Session) -> datetime | None:
    """When the newest stored estimate was fitted (None: never)."""
    with _session(store) as session:
        return session.scalar(select(func.max(DemandEstimateRow.fitted_at)))


def has_sales(store: Store | Session) -> bool:
    with _session(store) as session:
        return session.scalar(select(SalesDay.id).limit(1)) is not None
