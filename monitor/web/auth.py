"""Who is asking, and may they: bearer tokens, login sessions, roles and CSRF.

    Authorization: Bearer TOKEN     the API; no CSRF token needed (a browser never adds this header
                                    to a cross-site request by itself)
    pricemon_session cookie         the pages, after POST /login with a token; signed, HttpOnly,
                                    SameSite=Strict, Secure over https; every state-changing request
                                    made with it carries the session's CSRF token (header
                                    X-CSRF-Token, or form field csrf_token)

Both end in a `Principal(name, role)`; `require(role)` is the FastAPI dependency that demands one
with at least `role` (viewer < approver < admin). A revoked token is refused at once, also in the
sessions opened with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer

from monitor.settings import WebSettings
from monitor.store.database import Store
from monitor.store.tokens import ROLES, active_token, authenticate, role_at_least

logger = logging.getLogger(__name__)

SESSION_COOKIE = "pricemon_session"
LOGIN_COOKIE = "pricemon_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Role = Literal["viewer", "approver", "admin"]


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the token's name (recorded on every decision) and its role."""

    name: str
    role: str
    via: Literal["token", "session"]
    csrf_token: str | None = None

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


class SessionKeys:
    """Signs and reads login sessions and login-form nonces with one key."""

    def __init__(self, key: bytes, lifetime_seconds: float) -> None:
        self._key = key
        self.lifetime_seconds = int(lifetime_seconds)
        self._sessions = URLSafeTimedSerializer(key, salt="pricemon-session")

    @classmethod
    def from_settings(cls, web: WebSettings) -> SessionKeys:
        secret = os.environ.get(web.session_secret_env, "")
        if secret:
            key = secret.encode("utf-8")
        else:
            logger.info(
                "%s is not set: login sessions are signed with a key made for this start, and end with it",
                web.session_secret_env,
            )
            key = secrets.token_bytes(32)
        return cls(key, web.session_lifetime.total_seconds())

    def session_cookie(self, token_id: int) -> tuple[str, str]:
        """(the cookie's value, the session's CSRF token) of a new login of token `token_id`."""
        csrf = secrets.token_urlsafe(32)
        return self._sessions.dumps({"t": token_id, "c": csrf}), csrf

    def read_session(self, value: str) -> tuple[int, str] | None:
        try:
            data = self._sessions.loads(value, max_age=self.lifetime_seconds)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("t"), int) or not isinstance(data.get("c"), str):
            return None
        return data["t"], data["c"]

    def login_csrf(self, nonce: str) -> str:
        """The login form's CSRF token: bound to the nonce in that browser's login cookie."""
        return hmac.new(self._key, f"login:{nonce}".encode(), hashlib.sha256).hexdigest()

    def check_login_csrf(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.login_csrf(nonce), token)


# Declared as security schemes so the OpenAPI document says how to authenticate.
bearer_scheme = HTTPBearer(auto_error=False, description="A token from `pricemon tokens create`.")
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The login session of the pages (POST /login)."
)


class CsrfError(HTTPException):
    """A state-changing request of a login session without the session's CSRF token."""

    problem_kind = "csrf"

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="pricemon"'})


def authenticate_request(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    cookie: str | None = Depends(cookie_scheme),
) -> Principal:
    """The principal of a request (a sync dependency: FastAPI runs its database read in a thread).

    The token is read outside a transaction (`Store.autocommit`): on PostgreSQL a session's BEGIN
    and COMMIT were two of the request's round trips, for one SELECT (and, once a minute, one UPDATE).
    """
    store: Store = request.app.state.store
    keys: SessionKeys = request.app.state.session_keys
    if credentials is not None:
        if credentials.scheme.lower() != "bearer":
            raise _unauthorized("use Authorization: Bearer TOKEN")
        with store.autocommit() as connection:
            info = authenticate(connection, credentials.credentials)
        if info is None:
            raise _unauthorized("unknown or revoked token")
        return Principal(info.name, info.role, "token")
    if request.headers.get("authorization"):
        raise _unauthorized("use Authorization: Bearer TOKEN")
    if cookie:
        opened = keys.read_session(cookie)
        if opened is not None:
            token_id, csrf = opened
            with store.autocommit() as connection:
                info = active_token(connection, token_id)
            if info is not None:
                return Principal(info.name, info.role, "session", csrf)
        raise _unauthorized("the login session has expired or its token was revoked: log in again")
    raise _unauthorized("authentication needed: Authorization: Bearer TOKEN, or log in")


async def check_csrf(request: Request, principal: Principal) -> None:
    """A state-changing request of a login session must carry the session's CSRF token."""
    if principal.via != "session" or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or principal.csrf_token is None or not hmac.compare_digest(sent, principal.csrf_token):
        raise CsrfError(f"CSRF token missing or wrong: send the header {CSRF_HEADER} or the field {CSRF_FIELD}")


def _role_dependency(role: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(request: Request, principal: Principal = Depends(authenticate_request)) -> Principal:
        if not principal.can(role):
            raise HTTPException(403, f"the token {principal.name!r} is a {principal.role}; this needs {role} or above")
        await check_csrf(request, principal)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


_DEPENDENCIES = {role: _role_dependency(role) for role in ROLES}


def require(role: Role) -> Any:
    """`principal: Principal = require("approver")`: the request's principal, with at least `role`."""
    return Depends(_DEPENDENCIES[role])


def cookie_options(request: Request, max_age: int | None) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/",
        "max_age": max_age,
    }
