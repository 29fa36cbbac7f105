"""/sales and /traffic: our own daily sales and traffic in, as JSON rows with the columns of
`pricemon import sales|traffic`, checked and upserted by the same code as those CSV imports
(monitor.demand.imports): all-or-nothing, idempotent, a 422 problem naming each bad row's index
and field.

Admin only, like the catalogue edits: the rows are the demand models' input, so they move the
prices `maximize_profit` suggests (and auto-approved assignments apply) with no review of their own;
an approver decides on suggestions, not on the data they come from.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from monitor.demand.imports import DailyImportSummary, upsert_sales_rows, upsert_traffic_rows
from monitor.web.api import models
from monitor.web.api.deps import store_of
from monitor.web.auth import Principal, require

router = APIRouter(tags=["demand"])


def _rows(upload: models.SalesUpload | models.TrafficUpload) -> list[dict[str, Any]]:
    # only the fields given: an absent optional column is empty, as in a CSV without it
    return [row.model_dump(exclude_unset=True) for row in upload.rows]


@router.post("/sales", response_model=models.DailyImport, summary="Upsert our daily sales (admin)")
def post_sales(
    request: Request, upload: models.SalesUpload, principal: Principal = require("admin")
) -> models.DailyImport:
    with store_of(request).session() as session:
        summary: DailyImportSummary = upsert_sales_rows(session, _rows(upload))
    return models.DailyImport(
        inserted=summary.inserted, updated=summary.updated, prices_from_history=summary.prices_from_history
    )


@router.post("/traffic", response_model=models.DailyImport, summary="Upsert our daily traffic (admin)")
def post_traffic(
    request: Request, upload: models.TrafficUpload, principal: Principal = require("admin")
) -> models.DailyImport:
    with store_of(request).session() as session:
        summary = upsert_traffic_rows(session, _rows(upload))
    return models.DailyImport(inserted=summary.inserted, updated=summary.updated)
