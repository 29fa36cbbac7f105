"""The Jinja2 environment of the pages (autoescape on for every template) and `render()`, which
hands each template the logged-in principal, its CSRF token and the navigation."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from monitor.web.auth import CSRF_FIELD, CSRF_HEADER

#: the navigation of every page: (path, label)
NAVIGATION = (
    ("/", "Review"),
    ("/matrix", "Matrix"),
    ("/competitors", "Competitors"),
    ("/alerts", "Alerts"),
    ("/listings", "Listings"),
    ("/matches", "Matches"),
    ("/api/docs", "API"),
)

environment = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=True,  # scraped names and texts are untrusted: every value is escaped, in every template
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals.update(navigation=NAVIGATION, csrf_field=CSRF_FIELD, csrf_header=CSRF_HEADER)


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """`template` rendered with `context`, plus `principal` (None before login), `csrf_token`
    (the session's, for every form and htmx request) and `path` (for the navigation)."""
    principal = getattr(request.state, "principal", None)
    values = {
        "principal": principal,
        "csrf_token": principal.csrf_token if principal is not None else None,
        "path": request.url.path,
        **(context or {}),
    }
    return HTMLResponse(environment.get_template(template).render(values), status_code=status)
