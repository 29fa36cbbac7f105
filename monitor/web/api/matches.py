"""/matches: the match review queue (filters, pages) and accepting or rejecting matches by id.
Decisions go through `monitor.matching.review.decide_matches`, as `pricemon matches accept|reject`
do, recorded under the token's name; accepting writes listings, so deciding is for admins."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from monitor.matching.review import decide_matches, list_matches, match_ids
from monitor.web.api import models
from monitor.web.api.deps import Cursor, Limit, decode_int_cursor, encode_cursor, page_limit, settings_of, store_of
from monitor.web.auth import Principal, require

router = APIRouter(tags=["matches"])


@router.get("/matches", response_model=models.MatchList, summary="The match review queue, best score first")
def get_matches(
    request: Request,
    status: models.MatchStatus | Literal["any"] = Query(
        "proposed", description="proposed (the default), accepted, rejected or any."
    ),
    competitor: str | None = Query(None, max_length=100),
    min_score: float | None = Query(None, ge=0, le=1, allow_inf_nan=False, description="Score of at least this."),
    cursor: Cursor = None,
    limit: Limit = None,
    principal: Principal = require("viewer"),
) -> models.MatchList:
    offset = decode_int_cursor(cursor) or 0
    wanted = None if status == "any" else status
    size = page_limit(request, limit)
    with store_of(request).session() as session:
        total = len(match_ids(session, status=wanted, competitor=competitor, min_score=min_score))
        rows = list_matches(
            session, status=wanted, competitor=competitor, min_score=min_score, limit=size, offset=offset
        )
    after = offset + len(rows)
    return models.MatchList(
        items=[models.Match(**row) for row in rows],
        total=total,
        next_cursor=encode_cursor(str(after)) if rows and after < total else None,
    )


def _decide(
    request: Request, decision: Literal["accept", "reject"], body: models.MatchDecision, by: str
) -> models.MatchDecisionResult:
    with store_of(request).session() as session:
        result = decide_matches(
            session, body.ids, decision, by=by, competitors=settings_of(request).competitors, strict=False
        )
    data = result.as_dict()
    return models.MatchDecisionResult(by=by, listings=data.pop("listings", None), **data)


@router.post(
    "/matches/accept", response_model=models.MatchDecisionResult, summary="Accept matches: creates listings (admin)"
)
def accept(
    request: Request, body: models.MatchDecision, principal: Principal = require("admin")
) -> models.MatchDecisionResult:
    return _decide(request, "accept", body, principal.name)


@router.post("/matches/reject", response_model=models.MatchDecisionResult, summary="Reject matches (admin)")
def reject(
    request: Request, body: models.MatchDecision, principal: Principal = require("admin")
) -> models.MatchDecisionResult:
    return _decide(request, "reject", body, principal.name)
