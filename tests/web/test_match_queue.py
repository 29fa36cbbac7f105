"""The match review queue in the workspace (/matches) and the API (/api/v1/matches), against a
real `pricemon serve` over a real SQLite store holding discovered pages and their candidates:
filters and pages, accept/reject in bulk (admin only; accepting writes the listing), CSRF, and
scraped page text shown as text, never as markup or a script link. One Playwright check too."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from monitor.store.database import Store
from monitor.store.models import Competitor, DiscoveredPage, Listing, MatchCandidate, Product
from tests.conftest import CHROMIUM, require_chromium
from tests.web.served import Served
from tests.web.test_authorization import _login, _session_csrf

HOSTILE_PAGE_NAME = "<img src=x onerror=alert('page')>Lamp deluxe"
BAD_IMAGE = "javascript:alert('image')"


def add_candidates(store: Store) -> dict[str, int]:
    """Pages found at acme and globex and what they were matched to, as discovery and matching
    write them (monitor.matching.discover / match); returns candidate id by product SKU."""
    pages = [  # sku, competitor, page name, url, gtin, price, image, score, method, why
        ("D-4", "acme", "Delta Chair, oak", "http://127.0.0.1:9/acme/p/delta", "00000000012345", "21.00",
         "http://127.0.0.1:9/img/delta.jpg", 1.0, "gtin", {"agreed": ["gtin"], "gtin": "00000000012345"}),
        ("C-3", "acme", HOSTILE_PAGE_NAME, "http://127.0.0.1:9/acme/p/lamp", None, "49.00", BAD_IMAGE, 0.91,
         "title", {"agreed": ["brand"], "title_score": 0.91, "conflicts": ["colour: red vs blue"]}),
        ("E-5", "globex", "Epsilon Desk 120cm", "http://127.0.0.1:9/globex/p/desk", None, "95.00", None, 0.72,
         "title", {"agreed": [], "title_score": 0.72}),
    ]  # fmt: skip
    ids = {}
    with store.session() as session:
        products = dict(session.execute(select(Product.sku, Product.id)).all())
        competitors = dict(session.execute(select(Competitor.name, Competitor.id)).all())
        for sku, competitor, name, url, gtin, price, image, score, method, why in pages:
            page = DiscoveredPage(
                competitor_id=competitors[competitor], url=url, found_via="sitemap", status="ok", http_status=200,
                name=name, gtin=gtin, price=Decimal(price), currency="EUR", image_url=image, shop_sku=f"shop-{sku}",
            )  # fmt: skip
            session.add(page)
            session.flush()
            candidate = MatchCandidate(
                page_id=page.id, product_id=products[sku], competitor_id=competitors[competitor],
                score=score, method=method, why=why,
            )  # fmt: skip
            session.add(candidate)
            session.flush()
            ids[sku] = candidate.id
    return ids


def _states(store: Store) -> dict[str, tuple[str, str | None]]:
    with store.session() as session:
        rows = session.execute(
            select(Product.sku, MatchCandidate.status, MatchCandidate.decided_by).join(
                Product, Product.id == MatchCandidate.product_id
            )
        ).all()
    return {sku: (status, by) for sku, status, by in rows}


def _listing_url(store: Store, sku: str, competitor: str) -> str | None:
    with store.session() as session:
        return session.scalar(
            select(Listing.url)
            .join(Product, Product.id == Listing.product_id)
            .join(Competitor, Competitor.id == Listing.competitor_id)
            .where(Product.sku == sku, Competitor.name == competitor)
        )


def test_api_lists_filters_pages_and_decides_matches(served_sqlite: Served) -> None:
    served = served_sqlite
    ids = add_candidates(served.market.store)
    with served.client("viewer") as viewer, served.client("approver") as approver, served.client("admin") as admin:
        listed = viewer.get("/api/v1/matches")
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["total"] == 3 and body["next_cursor"] is None
        assert [m["sku"] for m in body["items"]] == ["D-4", "C-3", "E-5"]  # best score first
        first = body["items"][0]
        assert first["page"]["gtin"] == "00000000012345" and first["page"]["price"] == "21.00"
        assert first["product"]["name"] == "Delta chair" and first["why"]["agreed"] == ["gtin"]
        assert [m["sku"] for m in viewer.get("/api/v1/matches", params={"competitor": "acme"}).json()["items"]] == [
            "D-4",
            "C-3",
        ]
        assert viewer.get("/api/v1/matches", params={"min_score": 0.9}).json()["total"] == 2
        # pages of one, followed by cursor, give every match once
        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = viewer.get("/api/v1/matches", params=params).json()
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [ids["D-4"], ids["C-3"], ids["E-5"]]
        bad = viewer.get("/api/v1/matches", params={"status": "maybe"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert viewer.get("/api/v1/matches", params={"min_score": 2}).status_code == 422

        # deciding is for admins: accepting creates listings
        for weaker in (viewer, approver):
            refused = weaker.post("/api/v1/matches/accept", json={"ids": [ids["D-4"]]})
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert _states(served.market.store)["D-4"] == ("proposed", None)
        accepted = admin.post("/api/v1/matches/accept", json={"ids": [ids["D-4"], ids["C-3"]]})
        assert accepted.status_code == 200, accepted.text
        result = accepted.json()
        assert sorted(result["decided"]) == sorted([ids["D-4"], ids["C-3"]]) and result["by"] == "admin-bot"
        assert result["listings"] == {"inserted": 2, "updated": 0, "unchanged": 0}
        assert _listing_url(served.market.store, "D-4", "acme") == "http://127.0.0.1:9/acme/p/delta"
        again = admin.post("/api/v1/matches/reject", json={"ids": [ids["C-3"], ids["E-5"]]}).json()
        assert again["decided"] == [ids["E-5"]] and list(again["skipped"]) == [str(ids["C-3"])]
        assert "accepted" in again["skipped"][str(ids["C-3"])]
        states = _states(served.market.store)
        assert states == {
            "D-4": ("accepted", "admin-bot"),
            "C-3": ("accepted", "admin-bot"),
            "E-5": ("rejected", "admin-bot"),
        }
        assert viewer.get("/api/v1/matches").json()["total"] == 0
        every = viewer.get("/api/v1/matches", params={"status": "any"})
        assert every.status_code == 200 and every.json()["total"] == 3, every.text

        unknown = admin.post("/api/v1/matches/accept", json={"ids": [999999]})
        assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
        assert admin.post("/api/v1/matches/accept", json={"ids": []}).status_code == 422
        assert admin.post("/api/v1/matches/accept", json={"ids": [2**70]}).status_code == 422


def _csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_page_shows_the_queue_escaped_and_decides_in_bulk_with_csrf(served_sqlite: Served) -> None:
    served = served_sqlite
    ids = add_candidates(served.market.store)
    viewer, _ = _login(served, served.tokens["viewer"])
    page = viewer.get("/matches")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'href="/matches"' in html  # in the navigation
    assert "3 match(es)" in html and 'id="accept"' not in html  # viewers read, never decide
    # scraped text is text: the hostile name escaped, the javascript: image URL not a link, no <img>
    assert HOSTILE_PAGE_NAME not in html and "&lt;img src=x onerror=alert(&#39;page&#39;)&gt;Lamp deluxe" in html
    assert 'href="javascript:' not in html and "<img" not in html
    assert '<a href="http://127.0.0.1:9/img/delta.jpg"' in html  # the image URL as a link
    assert "agreed: gtin" in html and "conflicting: colour: red vs blue" in html
    assert "21.00 EUR" in html and "Delta Chair, oak" in html
    filtered = viewer.get("/matches", params={"competitor": "globex"}).text
    assert "1 match(es)" in filtered and "Epsilon Desk 120cm" in filtered and "Delta Chair" not in filtered
    assert viewer.get("/matches", params={"min_score": "x"}).status_code == 400
    refused = viewer.post(
        "/matches/decide", data={"csrf_token": _session_csrf(viewer), "action": "accept", "ids": ids["D-4"]}
    )
    assert refused.status_code == 403

    admin, _ = _login(served, served.tokens["admin"])
    form = admin.get("/matches").text
    assert 'id="accept"' in form
    no_csrf = admin.post("/matches/decide", data={"action": "accept", "ids": str(ids["D-4"])})
    assert no_csrf.status_code == 403
    assert _states(served.market.store)["D-4"] == ("proposed", None)
    csrf = _csrf_of(form)
    # the whole filtered set: every proposed match at globex
    rejected = admin.post(
        "/matches/decide",
        data={
            "csrf_token": csrf,
            "action": "reject",
            "scope": "filtered",
            "status": "proposed",
            "competitor": "globex",
        },
    )
    assert rejected.status_code == 303, rejected.text
    assert rejected.headers["location"].startswith("/matches?") and "competitor=globex" in rejected.headers["location"]
    assert "1 match(es) rejected." in admin.get(rejected.headers["location"]).text
    # ticked rows
    accepted = admin.post(
        "/matches/decide", data={"csrf_token": csrf, "action": "accept", "scope": "selected", "ids": [str(ids["D-4"])]}
    )
    assert accepted.status_code == 303
    assert "1 match(es) accepted." in admin.get(accepted.headers["location"]).text
    assert _states(served.market.store) == {
        "D-4": ("accepted", "admin-bot"),
        "C-3": ("proposed", None),
        "E-5": ("rejected", "admin-bot"),
    }
    assert _listing_url(served.market.store, "D-4", "acme") == "http://127.0.0.1:9/acme/p/delta"
    nothing = admin.post("/matches/decide", data={"csrf_token": csrf, "action": "accept", "scope": "selected"})
    assert nothing.status_code == 400 and "nothing selected" in nothing.text
    assert admin.post("/matches/decide", data={"csrf_token": csrf, "action": "drop", "ids": "1"}).status_code == 400


def test_browser_selects_and_accepts_a_match(served_sqlite: Served) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    served = served_sqlite
    ids = add_candidates(served.market.store)
    problems: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None, args=["--headless", "--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(served.url) else None)
            page.goto(f"{served.url}/login")
            page.fill("#token", served.tokens["admin"])
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"{served.url}/")
            page.click("nav a[href='/matches']")
            page.wait_for_url(f"{served.url}/matches")
            rows = page.locator("#matches-table tbody tr[data-id]")
            expect(rows).to_have_count(3)
            assert page.locator("#matches-table").inner_text().count(HOSTILE_PAGE_NAME) == 1  # shown as text
            page.check("#select-page")  # workspace.js ticks every row of the page
            assert page.locator("input[name=ids]:checked").count() == 3
            page.uncheck("#select-page")
            page.check(f"input[name=ids][value='{ids['C-3']}']")
            page.click("#accept")
            expect(page.locator(".notice")).to_have_text("1 match(es) accepted.")
            expect(rows).to_have_count(2)  # the queue shows proposed matches
        finally:
            browser.close()
    assert problems == [] and outside == []
    assert _states(served.market.store)["C-3"] == ("accepted", "admin-bot")
