"""The workspace's pages: Review (home), Product, Price matrix, Competitors, Alerts, Listings, Matches.

Server-rendered Jinja2 with htmx for partial updates; every value is escaped by the template
environment. A page reads through the store's query functions (monitor/store/review.py,
matrix.py, reporting.py, status.py, catalog.py) and acts through the same application
functions as the CLI (decide, apply_suggestions, write_listings), recording the logged-in
token's name as who decided.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from monitor.errors import PricemonError
from monitor.money import format_amount
from monitor.report.build import align_chart
from monitor.report.charts import chart_payload, competitor_colour
from monitor.safecsv import SafeWriter
from monitor.settings import Settings
from monitor.store.database import Store
from monitor.store.matrix import BANDS, MatrixFilters, matrix_csv_rows, matrix_page
from monitor.store.models import utcnow
from monitor.store.review import SORTS, ReviewFilters, ReviewQueryError, facets, review_ids, review_page
from monitor.web.auth import Principal, require
from monitor.web.templating import environment, render

router = APIRouter()

#: how old the filters' choice lists may be (monitor.store.review.facets): they cost a scan of every product
FACETS_MAX_AGE_S = 30.0
environment.globals.update(colour_of=competitor_colour)
environment.filters["amount"] = format_amount  # 89.0000 -> 89.00

#: the report's vendored/shared chart files, served to the pages (the CSP allows no inline script)
_ASSETS = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css", "pricechart.js": "text/javascript"}


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value).strip().rstrip("%"))
    except InvalidOperation:
        raise ReviewQueryError(f"{name}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ReviewQueryError(f"{name}: expected a number, got {value!r}")
    return number


#: the review filters as query parameters, in the order the form shows them
FILTER_FIELDS = ("q", "tag", "competitor", "strategy", "direction", "min_change", "max_change", "margin_below")


def _filters(values: dict[str, Any]) -> ReviewFilters:
    direction = values.get("direction") or None
    return ReviewFilters(
        tag=values.get("tag") or None,
        competitor=values.get("competitor") or None,
        strategy=values.get("strategy") or None,
        direction=direction,
        min_change_pct=_decimal(values.get("min_change"), "min_change"),
        max_change_pct=_decimal(values.get("max_change"), "max_change"),
        margin_below=_decimal(values.get("margin_below"), "margin_below"),
        q=(values.get("q") or "").strip() or None,
    )


def _filter_query(values: dict[str, Any], **extra: Any) -> str:
    kept = {k: values[k] for k in (*FILTER_FIELDS, "sort", "order") if values.get(k)}
    kept.update({k: v for k, v in extra.items() if v not in (None, "")})
    return urlencode(kept)


def _bad_request(request: Request, exc: PricemonError) -> HTMLResponse:
    return render(request, "error.html", {"title": "That did not work", "message": str(exc)}, status=400)


# --- Review -------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def review(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    values = dict(request.query_params)
    sort = values.get("sort") or "change"
    descending = values.get("order", "desc") != "asc"
    try:
        limit = int(values.get("limit") or 50)
        filters = _filters(values)
        with _store(request).reading() as session:
            page = review_page(
                session, filters, sort=sort, descending=descending, cursor=values.get("cursor") or None, limit=limit
            )
            choices = facets(session, max_age=FACETS_MAX_AGE_S)
    except (ReviewQueryError, ValueError) as exc:
        return _bad_request(request, exc if isinstance(exc, PricemonError) else ReviewQueryError(str(exc)))
    context = {
        "page": page,
        "values": values,
        "choices": choices,
        "sorts": SORTS,
        "filter_query": _filter_query(values),
        "next_query": _filter_query(values, cursor=page.next_cursor) if page.next_cursor else None,
        "first_query": _filter_query(values),
        "notice": _notice(values),
        "now": utcnow(),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "queue":
        return render(request, "_queue.html", context)
    return render(request, "review.html", context)


def _notice(values: dict[str, str]) -> str | None:
    """The outcome of the last decision, from the redirect's numbers (never free text)."""
    done, count = values.get("done"), values.get("count", "")
    if done in ("approved", "rejected") and count.isdigit():
        return f"{count} suggestion(s) {done}."
    return None


@router.post("/review/decide")
async def decide_suggestions(request: Request, principal: Principal = require("approver")) -> Response:
    from monitor.store.suggestions import decide

    form = await request.form()
    action = form.get("action")
    status = {"approve": "approved", "reject": "rejected"}.get(str(action))
    values = {k: str(form.get(k) or "") for k in (*FILTER_FIELDS, "sort", "order")}
    if status is None:
        return _bad_request(request, ReviewQueryError(f"action: expected approve or reject, got {action!r}"))
    try:
        with _store(request).session() as session:
            if form.get("scope") == "filtered":
                ids = review_ids(session, _filters(values))
            else:
                ids = [int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit()]
            if not ids:
                raise ReviewQueryError("nothing selected: tick some rows, or choose the whole filtered set")
            decided = decide(session, status, ids=ids, by=principal.name)
    except PricemonError as exc:
        return _bad_request(request, exc)
    query = _filter_query(values, done=status, count=len(decided))
    return RedirectResponse(f"/?{query}", status_code=303)


@router.get("/apply", response_class=HTMLResponse)
def apply_preview(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    from monitor.store.suggestions import approved_rows

    with _store(request).session() as session:
        would = approved_rows(session)
    return render(request, "apply.html", {"would": would, "feed": _feed_targets(_settings(request)), "applied": None})


def _feed_targets(settings: Settings) -> list[str]:
    feed = settings.feed
    targets = []
    if feed.csv_path:
        targets.append(f"the feed file {feed.csv_path}")
    if feed.webhook_url:
        targets.append(f"the webhook {feed.webhook_url}")  # credentials are hidden by the settings
    return targets


@router.post("/apply", response_class=HTMLResponse)
def apply_now(request: Request, principal: Principal = require("approver")) -> HTMLResponse:
    from monitor.pricing.workflow import apply_suggestions

    applied, feed = apply_suggestions(_settings(request), _store(request), by=principal.name)
    return render(
        request,
        "apply.html",
        {"would": [], "feed": _feed_targets(_settings(request)), "applied": applied, "result": feed},
    )


# --- Product ------------------------------------------------------------------------------------


@router.get("/products/{sku}", response_class=HTMLResponse)
def product(request: Request, sku: str, days: int = 30, principal: Principal = require("viewer")) -> HTMLResponse:
    from monitor.store.catalog import history_rows, listing_rows, product_rows
    from monitor.store.reporting import chart_data, product_ids_for_skus
    from monitor.store.suggestions import suggestion_rows

    days = max(1, min(days, 3650))
    now = utcnow()
    with _store(request).session() as session:
        found = product_rows(session, skus=[sku])
        if not found:
            raise HTTPException(404, f"unknown SKU {sku!r}")
        ids = product_ids_for_skus(session, [sku])
        charts = chart_data(session, [ids[sku]], start=now - timedelta(days=days), now=now)
        listings = list(listing_rows(session, skus=[sku]))
        history = history_rows(session, sku)
        suggestions = suggestion_rows(session, status=None, skus=[sku])
        changes = _changes(session, ids[sku])
    payload = [chart_payload(align_chart(c)) for c in charts]
    return render(
        request,
        "product.html",
        {
            "product": found[0],
            "listings": listings,
            "history": list(reversed(history))[:200],
            "history_total": len(history),
            "suggestions": list(reversed(suggestions))[:50],
            "changes": changes,
            "chart": payload[0] if payload else None,
            "days": days,
        },
    )


def _changes(session: Any, product_id: int) -> list[Any]:
    from sqlalchemy import select

    from monitor.store.models import PriceChange

    query = (
        select(PriceChange)
        .where(PriceChange.product_id == product_id)
        .order_by(PriceChange.applied_at.desc(), PriceChange.id.desc())
        .limit(50)
    )
    return list(session.scalars(query))


# --- Price matrix -------------------------------------------------------------------------------


def _matrix_filters(values: dict[str, str]) -> MatrixFilters:
    return MatrixFilters(
        tag=values.get("tag") or None,
        q=(values.get("q") or "").strip() or None,
        competitor=values.get("competitor") or None,
        band=values.get("band") or None,  # type: ignore[arg-type]  # checked by MatrixFilters
    )


@router.get("/matrix", response_class=HTMLResponse)
def matrix(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    values = dict(request.query_params)
    try:
        filters = _matrix_filters(values)
        with _store(request).session() as session:
            page = matrix_page(session, filters, after=values.get("after") or None)
            choices = facets(session, max_age=FACETS_MAX_AGE_S)
    except PricemonError as exc:
        return _bad_request(request, exc)
    kept = {k: v for k, v in values.items() if k in ("tag", "q", "competitor", "band") and v}
    return render(
        request,
        "matrix.html",
        {
            "page": page,
            "values": values,
            "choices": choices,
            "bands": BANDS,
            "query": urlencode(kept),
            "next_query": urlencode({**kept, "after": page.next_after}) if page.next_after else None,
        },
    )


@router.get("/matrix.csv")
def matrix_csv(request: Request, principal: Principal = require("viewer")) -> Response:
    values = dict(request.query_params)
    try:
        filters = _matrix_filters(values)
    except PricemonError as exc:
        return _bad_request(request, exc)
    store = _store(request)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = SafeWriter(buffer, quoting=csv.QUOTE_MINIMAL)  # scraped names: no formula reaches a sheet
        with store.session() as session:
            for row in matrix_csv_rows(session, filters):
                writer.writerow(row)
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    headers = {"content-disposition": 'attachment; filename="pricemon-matrix.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


# --- Competitors and alerts ---------------------------------------------------------------------


@router.get("/competitors", response_class=HTMLResponse)
def competitors(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    from monitor.store.reporting import competitor_health
    from monitor.store.status import competitor_status

    settings = _settings(request)
    now = utcnow()
    limit = settings.scheduler.staleness_limit
    with _store(request).session() as session:
        status = competitor_status(session, settings.competitors, staleness_limit=limit, now=now)
        health = {
            h.name: h for h in competitor_health(session, start=now - timedelta(days=1), now=now, staleness_limit=limit)
        }
    return render(request, "competitors.html", {"status": status, "health": health, "now": now})


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request, rule: str | None = None, principal: Principal = require("viewer")) -> HTMLResponse:
    from monitor.store.alerts import recent_alerts

    with _store(request).session() as session:
        events = recent_alerts(session, limit=100, rule=rule or None)
    rules = [r.name for r in _settings(request).alerts]
    return render(request, "alerts.html", {"events": events, "rules": rules, "rule": rule or ""})


# --- Listings -----------------------------------------------------------------------------------

LISTINGS_SHOWN = 200


@router.get("/listings", response_class=HTMLResponse)
def listings(
    request: Request, sku: str = "", competitor: str = "", principal: Principal = require("viewer")
) -> HTMLResponse:
    return _listings_page(request, sku.strip(), competitor.strip())


def _listings_page(
    request: Request,
    sku: str,
    competitor: str,
    *,
    problems: list[str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    from monitor.store.catalog import listing_rows

    with _store(request).session() as session:
        rows = list(
            islice(
                listing_rows(session, skus=[sku] if sku else (), competitors=[competitor] if competitor else ()),
                LISTINGS_SHOWN + 1,
            )
        )
    names = [c.name for c in _settings(request).competitors]
    return render(
        request,
        "listings.html",
        {
            "rows": rows[:LISTINGS_SHOWN],
            "more": len(rows) > LISTINGS_SHOWN,
            "sku": sku,
            "competitor": competitor,
            "competitors": names,
            "problems": problems or [],
            "notice": notice,
        },
        status=status,
    )


@router.post("/listings", response_class=HTMLResponse)
def add_listing(
    request: Request,
    sku: str = Form(...),
    competitor: str = Form(...),
    url: str = Form(...),
    principal: Principal = require("admin"),
) -> HTMLResponse:
    from monitor.errors import ImportDataError
    from monitor.settings import check_http_url
    from monitor.store.catalog import write_listings

    sku, competitor, url = sku.strip(), competitor.strip(), url.strip()
    problems = []
    try:
        check_http_url(url)
    except ValueError as exc:
        problems.append(f"url: {exc}")
    if not sku:
        problems.append("sku: required")
    if problems:
        return _listings_page(request, sku, competitor, problems=problems, status=422)
    try:
        with _store(request).session() as session:
            summary = write_listings(session, {(sku, competitor): url}, _settings(request).competitors, where="form")
    except ImportDataError as exc:
        return _listings_page(request, sku, competitor, problems=list(exc.problems), status=422)
    what = "added" if summary.inserted else "updated" if summary.updated else "unchanged"
    return _listings_page(request, sku, "", notice=f"Listing of {sku} at {competitor} {what}.")


@router.post("/listings/{listing_id}/active", response_class=HTMLResponse)
def set_listing(
    request: Request, listing_id: int, active: str = Form(...), principal: Principal = require("admin")
) -> HTMLResponse:
    from monitor.store.catalog import set_listing_active

    with _store(request).session() as session:
        found = set_listing_active(session, listing_id, active == "1")
    if found is None:
        raise HTTPException(404, f"no listing {listing_id}")
    sku, competitor = found
    state = "enabled" if active == "1" else "disabled"
    return _listings_page(request, sku, "", notice=f"Listing of {sku} at {competitor} {state}.")


@router.post("/products/{sku}/active", response_class=HTMLResponse)
def set_product(
    request: Request, sku: str, active: str = Form(...), principal: Principal = require("admin")
) -> HTMLResponse:
    from monitor.store.catalog import set_product_active

    with _store(request).session() as session:
        if not set_product_active(session, sku, active == "1", by=principal.name):
            raise HTTPException(404, f"unknown SKU {sku!r}")
    state = "active again" if active == "1" else "deactivated: no more suggestions or sweeps for it"
    return _listings_page(request, sku, "", notice=f"Product {sku} {state}.")


# --- Matches (the match review queue) ----------------------------------------------------------

MATCHES_SHOWN = 100


def _is_http_url(value: object) -> bool:
    """Whether a scraped URL may be a link (http/https only: never javascript: or data:)."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


environment.tests["http_url"] = _is_http_url
MATCH_FILTERS = ("status", "competitor", "min_score")


def _match_filters(values: dict[str, str]) -> dict[str, Any]:
    """The queue's filters from the query or the form: status (default proposed), competitor, min_score."""
    from monitor.matching.review import STATUSES

    status = values.get("status", "proposed") or None
    if status is not None and status not in STATUSES:
        raise ReviewQueryError(f"status: expected one of {', '.join(STATUSES)} (or any), got {status!r}")
    score = _decimal(values.get("min_score"), "min_score")
    if score is not None and not 0 <= score <= 1:
        raise ReviewQueryError(f"min_score: expected a score from 0 to 1, got {values.get('min_score')!r}")
    return {
        "status": status,
        "competitor": values.get("competitor") or None,
        "min_score": float(score) if score is not None else None,
    }


@router.get("/matches", response_class=HTMLResponse)
def matches(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    from monitor.matching.review import list_matches, match_ids

    values = dict(request.query_params)
    values.setdefault("status", "proposed")
    try:
        filters = _match_filters(values)
        offset = int(values.get("offset") or 0)
        if offset < 0:
            raise ValueError(f"offset: expected 0 or more, got {offset}")
        with _store(request).session() as session:
            total = len(match_ids(session, **filters))
            rows = list_matches(session, **filters, limit=MATCHES_SHOWN, offset=offset)
    except (PricemonError, ValueError) as exc:
        return _bad_request(request, exc if isinstance(exc, PricemonError) else ReviewQueryError(str(exc)))
    kept = {k: values[k] for k in MATCH_FILTERS if values.get(k) is not None}
    after = offset + len(rows)
    return render(
        request,
        "matches.html",
        {
            "rows": rows,
            "total": total,
            "values": values,
            "competitors": [c.name for c in _settings(request).competitors],
            "statuses": ("proposed", "accepted", "rejected"),
            "offset": offset,
            "next_query": urlencode({**kept, "offset": after}) if after < total else None,
            "first_query": urlencode(kept) if offset else None,
            "notice": _match_notice(values),
        },
    )


def _match_notice(values: dict[str, str]) -> str | None:
    """The outcome of the last decision, from the redirect's numbers (never free text)."""
    done, count, skipped = values.get("done"), values.get("count", ""), values.get("skipped", "0")
    if done in ("accepted", "rejected") and count.isdigit() and skipped.isdigit():
        text = f"{count} match(es) {done}."
        if int(skipped):
            text += f" {skipped} could not be: see the CLI's `pricemon matches` or the API for why."
        return text
    return None


@router.post("/matches/decide", response_class=HTMLResponse)
async def decide_match_rows(request: Request, principal: Principal = require("admin")) -> Response:
    from monitor.matching.review import decide_matches, match_ids

    form = await request.form()
    action = str(form.get("action"))
    if action not in ("accept", "reject"):
        return _bad_request(request, ReviewQueryError(f"action: expected accept or reject, got {action!r}"))
    values = {k: str(form.get(k) or "") for k in MATCH_FILTERS}
    try:
        filters = _match_filters(values)
        with _store(request).session() as session:
            if form.get("scope") == "filtered":
                ids = match_ids(session, **filters)
            else:
                ids = [int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit()]
            if not ids:
                raise ReviewQueryError("nothing selected: tick some rows, or choose the whole filtered set")
            result = decide_matches(
                session, ids, action, by=principal.name, competitors=_settings(request).competitors, strict=False
            )
    except PricemonError as exc:
        return _bad_request(request, exc)
    done = "accepted" if action == "accept" else "rejected"
    query = urlencode({**values, "done": done, "count": len(result.decided), "skipped": len(result.skipped)})
    return RedirectResponse(f"/matches?{query}", status_code=303)


# --- shared chart files -------------------------------------------------------------------------


@router.get("/assets/{name}")
def asset(name: str) -> Response:
    media = _ASSETS.get(name)
    if media is None:
        raise HTTPException(404, "no such asset")
    body = files("monitor.report").joinpath("assets", name).read_bytes()
    return Response(body, media_type=media, headers={"cache-control": "public, max-age=3600"})
