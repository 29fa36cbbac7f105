"""The REST API under /api/v1: one router per area, every error an RFC 9457 problem."""

from __future__ import annotations

from fastapi import APIRouter

from monitor.web.api import catalog, demand, matches, operations, suggestions, system
from monitor.web.problems import API_PROBLEMS

router = APIRouter(prefix="/api/v1", responses=API_PROBLEMS)
for area in (system, catalog, suggestions, matches, operations, demand):
    router.include_router(area.router)
