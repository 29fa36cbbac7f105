"""/products, /listings and a product's /history: read by viewers, edited by admins."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request

from monitor.store.browse import (
    activate_product,
    add_listing,
    enable_listing,
    listing_detail,
    listing_page,
    product_detail,
    product_page,
)
from monitor.store.catalog import history_rows
from monitor.web.api import models
from monitor.web.api.deps import (
    Cursor,
    Limit,
    decode_cursor,
    decode_int_cursor,
    encode_cursor,
    page_limit,
    settings_of,
    store_of,
)
from monitor.web.auth import Principal, require

router = APIRouter(tags=["catalogue"])

Sku = Path(min_length=1, max_length=64, description="The product's SKU.")


@router.get("/products", response_model=models.ProductPage, summary="Products, by SKU")
def list_products(
    request: Request,
    cursor: Cursor = None,
    limit: Limit = None,
    q: str | None = Query(None, max_length=200, description="Text in the SKU or name."),
    tag: str | None = Query(None, max_length=100),
    active: bool | None = None,
    principal: Principal = require("viewer"),
) -> models.ProductPage:
    with store_of(request).session() as session:
        page = product_page(
            session, after=decode_cursor(cursor), limit=page_limit(request, limit), q=q, tag=tag, active=active
        )
    return models.ProductPage(
        items=[models.Product(**r) for r in page.rows], next_cursor=encode_cursor(page.next_after)
    )


@router.get("/products/{sku}", response_model=models.Product, summary="One product")
def get_product(request: Request, sku: str = Sku, principal: Principal = require("viewer")) -> models.Product:
    with store_of(request).session() as session:
        return models.Product(**product_detail(session, sku))


@router.patch("/products/{sku}", response_model=models.Product, summary="Activate or deactivate a product (admin)")
def update_product(
    request: Request, change: models.ProductUpdate, sku: str = Sku, principal: Principal = require("admin")
) -> models.Product:
    with store_of(request).session() as session:
        return models.Product(**activate_product(session, sku, change.active, by=principal.name))


@router.get("/products/{sku}/history", response_model=models.History, summary="A product's competitor price history")
def get_history(request: Request, sku: str = Sku, principal: Principal = require("viewer")) -> models.History:
    with store_of(request).session() as session:
        points = history_rows(session, sku)
    return models.History(sku=sku, points=[models.HistoryPoint(**p) for p in points])


@router.get("/listings", response_model=models.ListingPage, summary="Listings with their latest state")
def list_listings(
    request: Request,
    cursor: Cursor = None,
    limit: Limit = None,
    sku: list[str] = Query([], max_length=100, description="Only these SKUs (repeatable)."),
    competitor: str | None = Query(None, max_length=100),
    active: bool | None = None,
    failing: bool | None = Query(None, description="true: only listings whose last check failed."),
    principal: Principal = require("viewer"),
) -> models.ListingPage:
    with store_of(request).session() as session:
        page = listing_page(
            session,
            after=decode_int_cursor(cursor),
            limit=page_limit(request, limit),
            skus=sku,
            competitor=competitor,
            active=active,
            failing=failing,
        )
    return models.ListingPage(
        items=[models.Listing(**r) for r in page.rows], next_cursor=encode_cursor(page.next_after)
    )


@router.get("/listings/{listing_id}", response_model=models.Listing, summary="One listing")
def get_listing(
    request: Request, listing_id: int = Path(ge=1, le=2**63 - 1), principal: Principal = require("viewer")
) -> models.Listing:
    with store_of(request).session() as session:
        return models.Listing(**listing_detail(session, listing_id))


@router.post("/listings", response_model=models.Listing, status_code=201, summary="Add a listing (admin)")
def create_listing(
    request: Request, listing: models.ListingCreate, principal: Principal = require("admin")
) -> models.Listing:
    settings = settings_of(request)
    with store_of(request).session() as session:
        row = add_listing(session, listing.sku, listing.competitor, listing.url, settings.competitors)
    return models.Listing(**row)


@router.patch("/listings/{listing_id}", response_model=models.Listing, summary="Enable or disable a listing (admin)")
def update_listing(
    request: Request,
    change: models.ListingUpdate,
    listing_id: int = Path(ge=1, le=2**63 - 1),
    principal: Principal = require("admin"),
) -> models.Listing:
    with store_of(request).session() as session:
        return models.Listing(**enable_listing(session, listing_id, change.active))
