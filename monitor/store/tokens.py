"""API tokens: create one (the token is returned once, only its SHA-256 is stored), list, revoke,
and find the active token a request presents.

A token is `pm_` + 32 random bytes (URL-safe base64), so its hash needs no salt or slow KDF: it
cannot be guessed, and a stolen table of hashes gives no token back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError, PricemonError
from monitor.store.models import ApiToken, utcnow

#: the roles, weakest first: each may do everything the ones before it may
ROLES = ("viewer", "approver", "admin")
TOKEN_PREFIX = "pm_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
#: `last_used_at` is written at most this often per token: a write per API request would halve
#: the requests per second SQLite can serve
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token without its secret."""

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active,
        }


def _info(row: Any) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, row.created_at, row.last_used_at, row.revoked_at)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def create_token(session: Session, name: str, role: str) -> tuple[str, TokenInfo]:
    """A new token for `name` with `role`: (the token, shown this once; what is stored)."""
    if role not in ROLES:
        raise PricemonError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    if not NAME_PATTERN.fullmatch(name):
        raise PricemonError(
            f"token name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise PricemonError(f"a token named {name!r} exists already (revoked ones keep their name for the audit trail)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token), created_at=utcnow())
    session.add(row)
    session.flush()
    return token, _info(row)


def list_tokens(session: Session) -> list[TokenInfo]:
    return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.name))]


def revoke_token(session: Session, name: str, *, now: datetime | None = None) -> TokenInfo:
    """Revoke the token `name` at once: requests and sessions made with it are refused from now on."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise NotFoundError(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return _info(row)


def has_active_tokens(session: Session) -> bool:
    count = session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None)))
    return bool(count)


# Every request reads its token: columns, not an ORM object, and a statement built once (the
# object and the statement's construction were half of the lookup's ~0.4 ms).
_COLUMNS = (ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.created_at, ApiToken.last_used_at,
            ApiToken.revoked_at, ApiToken.token_hash)
_BY_HASH = select(*_COLUMNS).where(ApiToken.token_hash == bindparam("digest"))
_BY_ID = select(*_COLUMNS).where(ApiToken.id == bindparam("token_id"))


def authenticate(session: Session | Connection, token: str, *, now: datetime | None = None) -> TokenInfo | None:
    """The active token `token` is, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = session.execute(_BY_HASH, {"digest": digest}).one_or_none()
    # The lookup is by hash, so timing tells nothing about the token; the comparison is
    # constant-time all the same, as the check that counts.
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        return None
    _touch(session, row, now or utcnow())
    return _info(row)


def active_token(session: Session | Connection, token_id: int, *, now: datetime | None = None) -> TokenInfo | None:
    """The token of a login session, while it is active."""
    row = session.execute(_BY_ID, {"token_id": token_id}).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    _touch(session, row, now or utcnow())
    return _info(row)


def _touch(session: Session | Connection, row: Any, now: datetime) -> None:
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == row.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
