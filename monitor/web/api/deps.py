"""What the API's routes share: the store and settings of the app, opaque keyset cursors, page sizes."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import HTTPException, Query, Request

from monitor.settings import Settings
from monitor.store.database import Store

MAX_LIMIT = 500


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def page_limit(request: Request, limit: int | None) -> int:
    return limit if limit is not None else settings_of(request).web.page_size


Limit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Rows per page (default: web.page_size).")]
Cursor = Annotated[str | None, Query(max_length=2000, description="`next_cursor` of the page before.")]


def encode_cursor(key: str | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (ValueError, binascii.Error):
        raise HTTPException(422, "cursor: not a cursor this server gave out") from None


def decode_int_cursor(cursor: str | None) -> int | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if not key.isdigit():
        raise HTTPException(422, "cursor: not a cursor this server gave out")
    return int(key)
