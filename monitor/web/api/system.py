"""The API's own state: health (no token needed) and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from monitor.web.auth import Principal, require

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str


class Me(BaseModel):
    name: str
    role: str
    via: str


@router.get("/health", response_model=Health, summary="Is the server up (no token needed)")
def health() -> Health:
    return Health(status="ok")


@router.get("/me", response_model=Me, summary="The caller's token name and role")
def me(principal: Principal = require("viewer")) -> Me:
    return Me(name=principal.name, role=principal.role, via=principal.via)
