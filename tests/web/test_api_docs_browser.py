"""The browsable API docs and the login page in Debian's Chromium, under the server's CSP: Swagger UI
(vendored) draws every operation, nothing is blocked, nothing leaves the server."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import CHROMIUM, require_chromium
from tests.web.served import Served

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_api_docs_and_login_render_under_the_csp(served_sqlite: Served) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            problems: list[str] = []
            elsewhere: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "request", lambda r: None if r.url.startswith((served_sqlite.url, "data:")) else elsewhere.append(r.url)
            )
            page.goto(f"{served_sqlite.url}/api/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/api/v1/suggestions/approve" in [t.replace("\u200b", "") for t in paths]
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)

            page.goto(f"{served_sqlite.url}/")  # not logged in: the login form
            page.fill("#token", served_sqlite.tokens["viewer"])
            page.click("button[type=submit]")
            page.wait_for_selector("text=viewer-bot (viewer)")
            page.screenshot(path=str(ARTIFACTS / "login-done.png"))
            assert problems == [], problems
            assert elsewhere == [], elsewhere
        finally:
            browser.close()
