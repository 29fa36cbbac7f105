"""/competitors (freshness, last sweep, failing listings), /sweeps and /alerts: read by viewers."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request

from monitor.store.alerts import recent_alerts
from monitor.store.browse import sweep_detail, sweep_page
from monitor.store.models import utcnow
from monitor.store.status import competitor_status, status_to_json
from monitor.web.api import models
from monitor.web.api.deps import Cursor, Limit, decode_int_cursor, encode_cursor, page_limit, settings_of, store_of
from monitor.web.auth import Principal, require

router = APIRouter(tags=["operations"])


@router.get("/competitors", response_model=models.Competitors, summary="Every configured competitor and its health")
def list_competitors(request: Request, principal: Principal = require("viewer")) -> models.Competitors:
    settings = settings_of(request)
    now = utcnow()
    with store_of(request).session() as session:
        rows = competitor_status(
            session, settings.competitors, staleness_limit=settings.scheduler.staleness_limit, now=now
        )
    base_urls = {c.name: c.base_url for c in settings.competitors}
    return models.Competitors(
        healthy=all(r.healthy for r in rows),
        now=now.isoformat(),
        staleness_limit_seconds=settings.scheduler.staleness_limit.total_seconds(),
        competitors=[models.CompetitorStatus(**status_to_json(r), base_url=base_urls.get(r.name, "")) for r in rows],
    )


@router.get("/sweeps", response_model=models.SweepPage, summary="Sweeps (scrape runs), newest first")
def list_sweeps(
    request: Request, cursor: Cursor = None, limit: Limit = None, principal: Principal = require("viewer")
) -> models.SweepPage:
    with store_of(request).session() as session:
        page = sweep_page(session, after=decode_int_cursor(cursor), limit=page_limit(request, limit))
    return models.SweepPage(items=[models.Sweep(**r) for r in page.rows], next_cursor=encode_cursor(page.next_after))


@router.get("/sweeps/{sweep_id}", response_model=models.Sweep, summary="One sweep")
def get_sweep(
    request: Request, sweep_id: int = Path(ge=1, le=2**63 - 1), principal: Principal = require("viewer")
) -> models.Sweep:
    with store_of(request).session() as session:
        return models.Sweep(**sweep_detail(session, sweep_id))


@router.get("/alerts", response_model=models.Alerts, summary="Recent alerts and their delivery, newest first")
def list_alerts(
    request: Request,
    limit: Limit = None,
    rule: str | None = Query(None, max_length=100),
    principal: Principal = require("viewer"),
) -> models.Alerts:
    with store_of(request).session() as session:
        rows = recent_alerts(session, limit=page_limit(request, limit), rule=rule)
    return models.Alerts(items=[models.Alert(**r) for r in rows])
