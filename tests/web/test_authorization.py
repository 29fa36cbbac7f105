"""Who may do what, over every route of the API document, against a real `pricemon serve`:
no token 401, revoked token 401, a role below the route's 403, the route's role allowed; login
sessions: cookie attributes, CSRF on every state-changing request, revocation ends them."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx

from tests.web.served import Served

# The role each operation needs; a new route must be added here, or the test fails.
REQUIRED = {
    ("get", "/api/v1/health"): None,
    ("get", "/api/v1/me"): "viewer",
    ("get", "/api/v1/products"): "viewer",
    ("get", "/api/v1/products/{sku}"): "viewer",
    ("patch", "/api/v1/products/{sku}"): "admin",
    ("get", "/api/v1/products/{sku}/history"): "viewer",
    ("get", "/api/v1/listings"): "viewer",
    ("post", "/api/v1/listings"): "admin",
    ("get", "/api/v1/listings/{listing_id}"): "viewer",
    ("patch", "/api/v1/listings/{listing_id}"): "admin",
    ("get", "/api/v1/suggestions"): "viewer",
    ("post", "/api/v1/suggestions/approve"): "approver",
    ("post", "/api/v1/suggestions/reject"): "approver",
    ("post", "/api/v1/apply"): "approver",
    ("get", "/api/v1/matches"): "viewer",
    ("post", "/api/v1/matches/accept"): "admin",
    ("post", "/api/v1/matches/reject"): "admin",
    ("get", "/api/v1/competitors"): "viewer",
    ("get", "/api/v1/sweeps"): "viewer",
    ("get", "/api/v1/sweeps/{sweep_id}"): "viewer",
    ("get", "/api/v1/alerts"): "viewer",
    ("post", "/api/v1/sales"): "admin",
    ("post", "/api/v1/traffic"): "admin",
}
ROLES = ("viewer", "approver", "admin")
# Bodies that change nothing (dry runs) or put back what is there, so every role can be tried.
BODIES = {
    "/api/v1/products/{sku}": {"active": True},
    "/api/v1/listings": {"sku": "A-1", "competitor": "acme", "url": "http://127.0.0.1:9/acme/A-1"},
    "/api/v1/listings/{listing_id}": {"active": True},
    "/api/v1/suggestions/approve": {"filter": {}, "dry_run": True},
    "/api/v1/suggestions/reject": {"filter": {}, "dry_run": True},
    "/api/v1/apply": {"dry_run": True},
    "/api/v1/sales": {"rows": []},
    "/api/v1/traffic": {"rows": []},
    "/api/v1/matches/accept": {"ids": [999999]},  # no such match: 404, nothing changes
    "/api/v1/matches/reject": {"ids": [999999]},
}


def _url(path: str) -> str:
    return path.replace("{sku}", "A-1").replace("{listing_id}", "1").replace("{sweep_id}", "1")


def _call(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    body = BODIES.get(path) if method != "get" else None
    return client.request(method.upper(), _url(path), json=body, **kwargs)


def test_every_route_refuses_missing_revoked_and_weaker_tokens(served_sqlite: Served) -> None:
    served = served_sqlite
    document = served.client().get("/api/v1/openapi.json").json()
    operations = {(m, p) for p, item in document["paths"].items() for m in item}
    assert operations == set(REQUIRED), f"routes without an expected role: {operations ^ set(REQUIRED)}"
    with served.client() as anonymous, served.client("revoked") as revoked:
        bogus = httpx.Client(base_url=served.url, headers={"Authorization": "Bearer pm_not-a-token"})
        basic = httpx.Client(base_url=served.url, headers={"Authorization": "Basic YTpi"})
        for (method, path), role in sorted(REQUIRED.items()):
            if role is None:
                assert _call(anonymous, method, path).status_code == 200
                continue
            for client in (anonymous, revoked, bogus, basic):
                answer = _call(client, method, path)
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["www-authenticate"].startswith("Bearer")
            for weaker in ROLES[: ROLES.index(role)]:
                with served.client(weaker) as client:
                    answer = _call(client, method, path)
                    assert answer.status_code == 403, (weaker, method, path, answer.text)
                    assert answer.json()["title"] == "Forbidden"
            for allowed in ROLES[ROLES.index(role) :]:
                with served.client(allowed) as client:
                    answer = _call(client, method, path)
                    # allowed: whatever the answer, it is not about authorisation
                    assert answer.status_code not in (401, 403), (allowed, method, path, answer.text)
                    assert answer.status_code < 500
        bogus.close()
        basic.close()


def _login(served: Served, token: str) -> tuple[httpx.Client, httpx.Response]:
    browser = httpx.Client(base_url=served.url, follow_redirects=False, headers={"Accept": "text/html"})
    form = browser.get("/login")
    assert form.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = browser.post("/login", data={"token": token, "csrf_token": csrf.group(1), "next": "/"})
    return browser, answer


def _session_csrf(browser: httpx.Client) -> str:
    home = browser.get("/")
    assert home.status_code == 200, home.text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text)
    assert match is not None
    return match.group(1)


def test_login_session_cookie_csrf_and_revocation(served_sqlite: Served) -> None:
    served = served_sqlite
    # a page without a login sends the browser to the login form, back to the page afterwards
    first = httpx.get(f"{served.url}/?tag=x", headers={"Accept": "text/html"})
    assert first.status_code == 303 and first.headers["location"] == "/login?next=%2F%3Ftag%3Dx"

    token = served.market.pricemon("tokens", "create", "pat", "--role", "approver", "--json").json()["token"]
    _, forged = _login(served, "pm_wrong")
    assert forged.status_code == 401 and "Unknown or revoked token" in forged.text
    # the login form's CSRF token is bound to its browser: another browser's is refused
    browser, _ = _login(served, "pm_wrong")
    other = browser.get("/login")
    stolen = re.search(r'name="csrf_token" value="([^"]+)"', other.text).group(1)  # type: ignore[union-attr]
    fresh = httpx.Client(base_url=served.url)
    assert fresh.post("/login", data={"token": token, "csrf_token": stolen}).status_code == 403

    browser, answer = _login(served, token)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    header = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("pricemon_session="))
    cookie = SimpleCookie(header)["pricemon_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain http on loopback; https requests get Secure
    assert token not in header
    # behind a TLS proxy on this host (X-Forwarded-Proto from loopback), the cookie is Secure
    proxied = httpx.Client(base_url=served.url, headers={"X-Forwarded-Proto": "https"})
    nonce_form = proxied.get("/login")
    assert "Secure" in nonce_form.headers["set-cookie"]
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', nonce_form.text).group(1)  # type: ignore[union-attr]
    nonce = SimpleCookie(nonce_form.headers["set-cookie"])["pricemon_login"].value
    proxied.cookies.clear()  # a Secure cookie: httpx keeps it to itself over the plain-http hop
    secure = proxied.post(
        "/login", data={"token": token, "csrf_token": login_csrf}, headers={"Cookie": f"pricemon_login={nonce}"}
    )
    assert secure.status_code == 303
    session_header = next(v for k, v in secure.headers.multi_items() if v.startswith("pricemon_session="))
    assert SimpleCookie(session_header)["pricemon_session"]["secure"] is True
    assert secure.headers["strict-transport-security"].startswith("max-age=")

    csrf = _session_csrf(browser)
    pending = browser.get("/api/v1/suggestions").json()["items"]
    body = {"ids": [pending[0]["id"]], "dry_run": True}
    no_csrf = browser.post("/api/v1/suggestions/approve", json=body)
    assert no_csrf.status_code == 403 and no_csrf.json()["type"] == "urn:pricemon:problem:csrf"
    wrong = browser.post("/api/v1/suggestions/approve", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    ok = browser.post("/api/v1/suggestions/approve", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["by"] == "pat"
    # a form post without its csrf_token field is refused; with it, it works
    assert browser.post("/logout", data={}).status_code == 403
    assert browser.get("/api/v1/me").json()["name"] == "pat"

    served.market.pricemon("tokens", "revoke", "pat")
    after = browser.get("/api/v1/me")
    assert after.status_code == 401 and "log in again" in after.json()["detail"]

    token2 = served.market.pricemon("tokens", "create", "pat2", "--role", "viewer", "--json").json()["token"]
    browser2, _ = _login(served, token2)
    out = browser2.post("/logout", data={"csrf_token": _session_csrf(browser2)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert 'pricemon_session=""' in out.headers["set-cookie"]


def test_every_answer_carries_a_csp_without_network_origins(served_sqlite: Served) -> None:
    for path in ("/login", "/api/v1/health", "/api/docs", "/static/pricemon.css", "/api/v1/me"):
        answer = httpx.get(served_sqlite.url + path)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", policy)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
