"""/suggestions (the review queue: filters, sort, cursor pages), their approval or rejection, and
/apply. Decisions go through the same functions as `pricemon approve|reject|apply`, recorded
under the token's name."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query, Request

from monitor.money import format_amount
from monitor.pricing.workflow import apply_suggestions
from monitor.store.browse import InvalidRequestError
from monitor.store.review import STATUSES, ReviewFilters, ReviewRow, review_ids, review_page, row_to_json
from monitor.store.suggestions import approved_rows, decide
from monitor.web.api import models
from monitor.web.api.deps import Cursor, Limit, page_limit, settings_of, store_of
from monitor.web.auth import Principal, require

router = APIRouter(tags=["suggestions"])

Status = Literal["pending", "approved", "rejected", "applied", "superseded"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]


@router.get("/suggestions", response_model=models.SuggestionPage, summary="The review queue")
def list_suggestions(
    request: Request,
    status: Status = "pending",
    tag: str | None = Query(None, max_length=100),
    competitor: str | None = Query(None, max_length=100, description="Products listed at this competitor."),
    strategy: str | None = Query(None, max_length=200),
    direction: models.Direction | None = Query(None, description="raise or cut our price."),
    min_change_pct: Decimal | None = Query(None, ge=0, le=100000, description="Change of at least this %, either way."),
    max_change_pct: Decimal | None = Query(None, ge=0, le=100000),
    margin_below: Decimal | None = Query(None, ge=-100000, le=100000, description="Margin after the change below %."),
    q: str | None = Query(None, max_length=200, description="Text in the SKU or name."),
    sort: models.SortKey = "change",
    descending: bool = True,
    cursor: Cursor = None,
    limit: Limit = None,
    include_total: bool = Query(
        False,
        description="Also count the whole filtered set and sum its expected profit change: it reads every row "
        "the filters select (tens of ms at 100,000 rows), so a client paging through asks once.",
    ),
    principal: Principal = require("viewer"),
) -> models.SuggestionPage:
    filters = ReviewFilters(
        status=status,
        tag=tag,
        competitor=competitor,
        strategy=strategy,
        direction=direction,
        min_change_pct=min_change_pct,
        max_change_pct=max_change_pct,
        margin_below=margin_below,
        q=q,
    )
    with store_of(request).reading() as session:
        page = review_page(
            session,
            filters,
            sort=sort,
            descending=descending,
            cursor=cursor,
            limit=page_limit(request, limit),
            with_total=include_total,
        )
    return models.SuggestionPage(
        items=[_suggestion(r) for r in page.rows],
        total=page.total,
        expected_profit_total={c: format_amount(v) for c, v in page.expected_profit_total.items()}
        if include_total
        else None,
        with_profit_figure=page.with_profit_figure if include_total else None,
        next_cursor=page.next_cursor,
        sort=page.sort,
        descending=page.descending,
    )


_MONEY = (
    "current_price",
    "suggested_price",
    "cost",
    "competitor_min",
    "competitor_median",
    "competitor_max",
    "expected_profit_change",
)


def _suggestion(row: ReviewRow) -> models.Suggestion:
    values = row_to_json(row)
    # money as everywhere else in the API and the CLI's JSON: the currency's usual places
    values.update({key: format_amount(getattr(row, key)) for key in _MONEY})
    return models.Suggestion(**values)


def _decide(
    request: Request, status: Literal["approved", "rejected"], decision: models.Decision, by: str
) -> models.DecisionResult:
    if (decision.ids is None) == (decision.filter is None):
        raise InvalidRequestError("give either `ids` or `filter` (`{}` for every pending suggestion)")
    with store_of(request).session() as session:
        if decision.ids is not None:
            ids = decision.ids
        else:
            assert decision.filter is not None
            ids = review_ids(session, ReviewFilters(status="pending", **decision.filter.model_dump()))
        decided = decide(session, status, ids=ids, by=by, dry_run=decision.dry_run) if ids else []
    return models.DecisionResult(
        status=status,
        count=len(decided),
        by=by,
        dry_run=decision.dry_run,
        suggestions=[models.Decided(**d) for d in decided],
    )


@router.post("/suggestions/approve", response_model=models.DecisionResult, summary="Approve suggestions (approver)")
def approve(
    request: Request, decision: models.Decision, principal: Principal = require("approver")
) -> models.DecisionResult:
    return _decide(request, "approved", decision, principal.name)


@router.post("/suggestions/reject", response_model=models.DecisionResult, summary="Reject suggestions (approver)")
def reject(
    request: Request, decision: models.Decision, principal: Principal = require("approver")
) -> models.DecisionResult:
    return _decide(request, "rejected", decision, principal.name)


@router.post(
    "/apply", response_model=models.ApplyResult, summary="Apply approved suggestions and send the feed (approver)"
)
def apply(
    request: Request, options: models.ApplyRequest, principal: Principal = require("approver")
) -> models.ApplyResult:
    store = store_of(request)
    if options.dry_run:
        with store.session() as session:
            would = approved_rows(session)
        return models.ApplyResult(
            dry_run=True,
            by=principal.name,
            count=len(would),
            applied=[models.AppliedChange(**c) for c in would],
            feed=None,
        )
    applied, feed = apply_suggestions(settings_of(request), store, by=principal.name)
    return models.ApplyResult(
        dry_run=False,
        by=principal.name,
        count=len(applied),
        applied=[models.AppliedChange(**c) for c in applied],
        feed=models.Feed(**asdict(feed)),
    )
