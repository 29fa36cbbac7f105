"""Placeholder of the review pages (the `pages` branch replaces this module): the home page only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from monitor.web.auth import Principal, require
from monitor.web.templating import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: Principal = require("viewer")) -> HTMLResponse:
    return render(request, "home.html")
