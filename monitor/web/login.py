"""Logging in with a token (POST /login -> a signed session cookie) and out (POST /logout)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.store.database import Store
from monitor.store.tokens import authenticate
from monitor.web.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Principal,
    SessionKeys,
    cookie_options,
    require,
)
from monitor.web.templating import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, *, next_path: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    keys: SessionKeys = request.app.state.session_keys
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"login_csrf": keys.login_csrf(nonce), "next": safe_next(next_path), "error": error},
        status=status,
    )
    options = cookie_options(request, 3600)
    options["path"] = "/login"
    response.set_cookie(LOGIN_COOKIE, nonce, **options)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(request, next_path=next)


@router.post("/login")
def login(
    request: Request,
    token: str = Form(""),
    csrf_token: str = Form("", alias=CSRF_FIELD),
    next: str = Form("/"),
) -> Response:
    keys: SessionKeys = request.app.state.session_keys
    if not keys.check_login_csrf(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _login_page(request, next_path=next, error="The form expired; log in again.", status=403)
    store: Store = request.app.state.store
    with store.session() as session:
        info = authenticate(session, token.strip())
    if info is None:
        return _login_page(request, next_path=next, error="Unknown or revoked token.", status=401)
    value, _csrf = keys.session_cookie(info.id)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, value, **cookie_options(request, keys.lifetime_seconds))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, principal: Principal = require("viewer")) -> Response:
    response = RedirectResponse("/login", status_code=303)
    options = cookie_options(request, None)
    del options["max_age"]
    response.delete_cookie(SESSION_COOKIE, **options)
    return response
