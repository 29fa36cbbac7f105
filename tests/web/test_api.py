"""The REST API end to end: a real `pricemon serve` subprocess over a real store (SQLite, and
PostgreSQL when configured) filled by the real import, sweep records and `suggest`."""

from __future__ import annotations

from tests.web.served import Served

PROBLEM = "application/problem+json"


def _pages(client, path: str, **params) -> list[dict]:
    items, cursor, seen = [], None, 0
    while True:
        answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["next_cursor"]
        seen += 1
        if cursor is None:
            return items
        assert seen < 50


def test_catalogue_reads_page_by_cursor(served: Served) -> None:
    with served.client("viewer") as api:
        products = _pages(api, "/api/v1/products", limit=2)
        assert [p["sku"] for p in products] == ["A-1", "B-2", "C-3", "D-4", "E-5"]
        assert products[0]["price"] == "50.00" and products[0]["cost"] == "30.00"
        assert [p["sku"] for p in api.get("/api/v1/products", params={"tag": "kitchen"}).json()["items"]] == [
            "A-1",
            "B-2",
        ]
        assert api.get("/api/v1/products/C-3").json()["name"] == "<script>alert(1)</script> lamp"
        history = api.get("/api/v1/products/A-1/history").json()
        assert [(p["competitor"], p["price"]) for p in history["points"]] == [("acme", "40.00")]
        listings = _pages(api, "/api/v1/listings", limit=2)
        assert len(listings) == 5
        at_globex = api.get("/api/v1/listings", params={"competitor": "globex"}).json()["items"]
        assert sorted(r["sku"] for r in at_globex) == ["C-3", "D-4"]
        assert at_globex[0]["price"] in ("30.00", "19.00")
        competitors = api.get("/api/v1/competitors").json()
        assert [c["name"] for c in competitors["competitors"]] == ["acme", "globex", "initech"]
        assert competitors["competitors"][0]["listings"]["total"] == 3
        assert api.get("/api/v1/sweeps").json() == {"items": [], "next_cursor": None}
        assert api.get("/api/v1/alerts").json() == {"items": []}
    _errors_are_problem_details(served)
    _the_openapi_document_is_3_1_and_documents_problems(served)


def _errors_are_problem_details(served: Served) -> None:
    with served.client("viewer") as api:
        missing = api.get("/api/v1/products/NOPE")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM
        assert missing.json() == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "unknown SKU 'NOPE'",
            "instance": "/api/v1/products/NOPE",
        }
        invalid = api.get("/api/v1/suggestions", params={"limit": 0, "direction": "sideways"})
        assert invalid.status_code == 422 and invalid.headers["content-type"] == PROBLEM
        body = invalid.json()
        assert body["type"] == "urn:pricemon:problem:validation"
        assert {tuple(e["loc"]) for e in body["errors"]} == {("query", "limit"), ("query", "direction")}
        bad_cursor = api.get("/api/v1/suggestions", params={"cursor": "bm90IGEgY3Vyc29y"})
        assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.json()["detail"]
        assert api.get("/api/v1/nothing-here").headers["content-type"] == PROBLEM


def _review_queue_filters_sorts_and_pages(served: Served) -> None:
    with served.client("viewer") as api:
        # counting the whole filtered set is asked for: a client paging through asks once
        assert api.get("/api/v1/suggestions").json()["total"] is None
        queue = api.get("/api/v1/suggestions", params={"include_total": "true"}).json()
        assert queue["total"] == 5
        assert {s["sku"] for s in queue["items"]} == {"A-1", "B-2", "C-3", "D-4", "E-5"}
        first = queue["items"][0]
        assert first["sku"] == "C-3" and first["status"] == "pending"  # the largest change first
        assert first["reason_steps"] and first["current_price"] == "50.00"
        by_sku = _pages(api, "/api/v1/suggestions", sort="sku", descending="false", limit=2)
        assert [s["sku"] for s in by_sku] == ["A-1", "B-2", "C-3", "D-4", "E-5"]
        kitchen = api.get(
            "/api/v1/suggestions", params={"tag": "kitchen", "direction": "cut", "include_total": "true"}
        ).json()
        assert sorted(s["sku"] for s in kitchen["items"]) == ["A-1", "B-2"] and kitchen["total"] == 2
        assert [s["sku"] for s in api.get("/api/v1/suggestions", params={"q": "delta"}).json()["items"]] == ["D-4"]
        assert api.get("/api/v1/suggestions", params={"direction": "raise", "include_total": 1}).json()["total"] == 0


def test_review_queue_then_decisions_and_apply_recording_the_token_name(served: Served) -> None:
    _review_queue_filters_sorts_and_pages(served)
    with served.client("approver") as api, served.client("viewer") as viewer:
        queue = {s["sku"]: s for s in api.get("/api/v1/suggestions").json()["items"]}
        a1, d4 = queue["A-1"]["id"], queue["D-4"]["id"]
        assert viewer.post("/api/v1/suggestions/approve", json={"ids": [a1]}).status_code == 403

        preview = api.post("/api/v1/suggestions/approve", json={"ids": [a1], "dry_run": True}).json()
        assert preview["count"] == 1 and preview["dry_run"] is True
        assert api.get("/api/v1/suggestions", params={"status": "approved", "include_total": 1}).json()["total"] == 0

        approved = api.post("/api/v1/suggestions/approve", json={"ids": [a1]}).json()
        assert approved == {
            "status": "approved",
            "count": 1,
            "by": "approver-bot",
            "dry_run": False,
            "suggestions": [approved["suggestions"][0]],
        }
        again = api.post("/api/v1/suggestions/approve", json={"ids": [a1]})
        assert again.status_code == 409 and "not pending" in again.json()["detail"]

        rejected = api.post("/api/v1/suggestions/reject", json={"filter": {"q": "Delta"}}).json()
        assert [s["id"] for s in rejected["suggestions"]] == [d4]
        neither = api.post("/api/v1/suggestions/reject", json={})
        assert neither.status_code == 422

        would = api.post("/api/v1/apply", json={"dry_run": True}).json()
        suggested = approved["suggestions"][0]["suggested_price"]
        assert [(c["sku"], c["new_price"]) for c in would["applied"]] == [("A-1", suggested)]
        assert api.get("/api/v1/products/A-1").json()["price"] == "50.00"
        done = api.post("/api/v1/apply", json={}).json()
        assert done["count"] == 1 and done["by"] == "approver-bot" and done["feed"] is not None
        assert api.get("/api/v1/products/A-1").json()["price"] == approved["suggestions"][0]["suggested_price"]

    # the CLI reads the same store: who decided is the token's name
    rows = {r["sku"]: r for r in served.market.pricemon("suggestions", "--status", "all", "--json").json()}
    assert rows["A-1"]["status"] == "applied" and rows["A-1"]["decided_by"] == "approver-bot"
    assert rows["D-4"]["status"] == "rejected" and rows["D-4"]["decided_by"] == "approver-bot"


def test_admins_edit_listings_and_products(served: Served) -> None:
    new = {"sku": "D-4", "competitor": "acme", "url": "http://127.0.0.1:9/acme/new-D-4"}
    with served.client("admin") as admin, served.client("approver") as approver:
        assert approver.post("/api/v1/listings", json=new).status_code == 403
        created = admin.post("/api/v1/listings", json=new)
        assert created.status_code == 201, created.text
        listing = created.json()
        assert (listing["sku"], listing["competitor"], listing["active"]) == ("D-4", "acme", True)
        unknown = admin.post("/api/v1/listings", json={**new, "competitor": "nobody"})
        assert unknown.status_code == 422 and "unknown competitor 'nobody'" in unknown.json()["detail"]
        not_http = admin.post("/api/v1/listings", json={**new, "url": "file:///etc/passwd"})
        assert not_http.status_code == 422
        assert admin.post("/api/v1/listings", json={**new, "sku": "NOPE"}).status_code == 404

        disabled = admin.patch(f"/api/v1/listings/{listing['id']}", json={"active": False}).json()
        assert disabled["active"] is False
        assert approver.patch(f"/api/v1/listings/{listing['id']}", json={"active": True}).status_code == 403
        assert admin.patch("/api/v1/products/E-5", json={"active": False}).json()["active"] is False

    listings = served.market.pricemon("listings", "--json").json()
    assert any(r["id"] == listing["id"] and r["active"] is False for r in listings)
    assert {p["sku"]: p["active"] for p in served.market.pricemon("products", "--json").json()}["E-5"] is False


def _the_openapi_document_is_3_1_and_documents_problems(served: Served) -> None:
    document = served.client().get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    approve = document["paths"]["/api/v1/suggestions/approve"]["post"]
    assert "application/problem+json" in approve["responses"]["403"]["content"]
    assert "application/problem+json" in approve["responses"]["422"]["content"]
    docs = served.client().get("/api/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert served.client().get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
