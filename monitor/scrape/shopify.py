"""Reading a Shopify product from the shop's own Ajax endpoint (`/products/<handle>.js`) instead of
its HTML: prices in hundredths, one entry per variant, and whether each can be bought.

Used for a competitor with `platform = "shopify"`. The endpoint never names its currency (amounts
are in the visitor's presentment currency; only `/cart.js` says which, and Shopify's default
robots.txt disallows `/cart`), so the competitor's configured `currency` is required and used.
The variant is the one the listing URL selects (`?variant=ID`); without one, a product whose
variants cost different amounts is ``ambiguous`` with the range, never a guess.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from monitor.scrape.extract import Candidate, Extraction

#: Content-Types the endpoint is served with (Shopify answers .js with JavaScript or JSON types)
JSON_TYPES = ("application/json", "application/javascript", "text/javascript", "application/x-javascript")
CENTS = Decimal(100)
CENTS_EXPONENT = Decimal("0.01")


def product_json_url(url: str) -> str | None:
    """The `.js` endpoint of a Shopify product URL, or None when `url` names no product.

    `/products/<handle>`, `/<locale>/products/<handle>` and `/collections/<c>/products/<handle>`
    all give `<origin>[/<locale>]/products/<handle>.js`; the query (e.g. `?variant=`) is dropped.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if "products" not in segments:
        return None
    at = segments.index("products")
    if at + 1 >= len(segments):
        return None
    handle = segments[at + 1]
    for suffix in (".js", ".json", ".oembed"):
        handle = handle.removesuffix(suffix)
    if not handle:
        return None
    prefix = segments[:at]
    if len(prefix) >= 2 and prefix[-2] == "collections":
        prefix = prefix[:-2]  # the collection is only the way the visitor came
    path = "/" + "/".join([*prefix, "products", handle]) + ".js"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def selected_variant(url: str) -> str | None:
    """The `?variant=ID` of a listing URL, or None."""
    values = parse_qs(urlsplit(url).query).get("variant")
    value = values[0].strip() if values else ""
    return value if value.isdigit() else None


def _failure(
    status: str, message: str, in_stock: bool | None = None, candidates: tuple[Candidate, ...] = ()
) -> Extraction:
    return Extraction(status, None, None, in_stock, None, candidates, None, None, message)


def _cents(value: Any) -> Decimal | None:
    """Shopify's amounts: integers in hundredths of the currency (also for JPY or KRW)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 14:
        return None
    return (Decimal(text) / CENTS).quantize(CENTS_EXPONENT)


def read_product_json(body: bytes, listing_url: str, currency: str | None) -> Extraction:
    """The price, stock, GTIN (variant barcode) and SKU of the listing's variant in a `.js` body.
    Never raises for what the body holds."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _failure("invalid_content", f"Shopify product JSON is not JSON: {str(exc)[:120]}")
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        return _failure("invalid_content", "Shopify product JSON has no `variants` list")
    variants = [v for v in data["variants"] if isinstance(v, dict)]
    if not variants:
        return _failure("not_found", "Shopify product has no variants")

    def candidate(variant: dict[str, Any], price: Decimal) -> Candidate:
        title = str(variant.get("title") or variant.get("id"))[:60]
        return Candidate(price, currency, "shopify", f"variant {variant.get('id')} {title!r}")

    priced: list[tuple[dict[str, Any], Decimal]] = []
    for variant in variants:
        price = _cents(variant.get("price"))
        if price is not None:
            priced.append((variant, price))
    candidates = tuple(candidate(v, p) for v, p in priced)

    wanted = selected_variant(listing_url)
    if wanted is not None:
        chosen = next((v for v in variants if str(v.get("id")) == wanted), None)
        if chosen is None:
            return _failure(
                "not_found", f"the product has no variant {wanted} (the listing URL's ?variant=)", candidates=candidates
            )
        return _read_variant(chosen, currency, candidates, f"variant {wanted} from the listing URL")
    if len(variants) == 1:
        return _read_variant(variants[0], currency, candidates, "the product's only variant")
    prices = {p for _, p in priced}
    available = [v.get("available") for v in variants if isinstance(v.get("available"), bool)]
    in_stock = any(available) if available else None
    if len(prices) > 1 or len(priced) != len(variants):
        low, high = min(prices, default=None), max(prices, default=None)
        what = f"{len(variants)} variants priced {low}-{high} {currency or ''}".rstrip()
        return _failure(
            "ambiguous",
            f"{what}; add ?variant=ID to the listing URL to pick one",
            in_stock,
            candidates,
        )
    price = prices.pop()
    if price == 0 and in_stock is False:
        return _failure("not_found", "price 0 on a sold-out product is not a price", False, candidates)
    return Extraction(
        "ok",
        price,
        currency,
        in_stock,
        "shopify",
        candidates,
        None,
        None,
        f"price from all {len(variants)} variants of the Shopify product (they agree)",
    )


def _read_variant(
    variant: dict[str, Any], currency: str | None, candidates: tuple[Candidate, ...], which: str
) -> Extraction:
    available = variant.get("available")
    in_stock = available if isinstance(available, bool) else None
    barcode = variant.get("barcode")
    gtin = barcode.strip() if isinstance(barcode, str) and barcode.strip().isdigit() else None
    sku = variant.get("sku") if isinstance(variant.get("sku"), str) and variant.get("sku") else None
    price = _cents(variant.get("price"))
    if price is None:
        return _failure("not_found", f"{which} has no price", in_stock, candidates)
    if price == 0 and in_stock is False:
        return Extraction(
            "not_found",
            None,
            None,
            False,
            None,
            candidates,
            gtin,
            sku,
            f"{which}: price 0 on a sold-out variant is not a price",
        )
    return Extraction("ok", price, currency, in_stock, "shopify", candidates, gtin, sku, f"price of {which}")
