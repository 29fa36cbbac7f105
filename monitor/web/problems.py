"""Errors as RFC 9457 problem details (`application/problem+json`), for every status the app
answers with: 401, 403, 404, 405, 409, 422, 503 and the 500 of a bug.

Pages get the same answers, except that a browser without a login is sent to the login page.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.errors import DatabaseUnavailableError, NotFoundError, PricemonError
from monitor.redact import redact_text
from monitor.store.browse import InvalidRequestError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: `type` of the problems that are more than their HTTP status (RFC 9457 section 3.1.1)
PROBLEM_TYPES = {
    "csrf": "urn:pricemon:problem:csrf",
    "validation": "urn:pricemon:problem:validation",
    "conflict": "urn:pricemon:problem:conflict",
    "unavailable": "urn:pricemon:problem:database-unavailable",
}

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    loc: list[str | int] = Field(description="Where: e.g. ['query', 'limit'] or ['body', 'ids', 0].")
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field("about:blank", description="URI naming the kind of problem; about:blank: just the status.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="The request path the problem is about.")
    errors: list[FieldProblem] | None = Field(None, description="Each invalid part of the request (422 only).")


def problem_content(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a problem answer."""
    return {"description": description, "model": Problem, "content": {PROBLEM_JSON: {}}}


#: the error answers every API operation may give
API_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem_content("No token, or an unknown, revoked or expired one"),
    403: problem_content("The token's role may not do this, or a form post lacks its CSRF token"),
    404: problem_content("No such object"),
    409: problem_content("The objects are not in a state that allows this"),
    422: problem_content("The request's parameters or body are invalid"),
    503: problem_content("The database is unavailable for now"),
}


def problem(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPES.get(kind, "about:blank") if kind else "about:blank",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=redact_text(detail) if detail else None,
        instance=request.url.path,
        errors=[FieldProblem(**e) for e in errors] if errors is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not htmx): it gets redirects, not problem JSON."""
    if request.url.path.startswith("/api/") or request.headers.get("HX-Request"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 401 and wants_page(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    kind = getattr(exc, "problem_kind", None)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _TITLES.get(exc.status_code):
        detail = None
    return problem(request, exc.status_code, detail, kind=kind, headers=getattr(exc, "headers", None))


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    shown = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem(request, 422, shown or "invalid request", kind="validation", errors=errors)


def _pricemon_error(request: Request, exc: Exception) -> Response:
    from monitor.demand.imports import RowsDataError
    from monitor.store.review import ReviewQueryError

    if isinstance(exc, RowsDataError):
        # each bad value where the request put it: body.rows[index].field
        errors = [
            {"loc": ["body", "rows", p.position, p.field], "msg": p.message, "type": "value_error"} for p in exc.rows
        ]
        shown = "; ".join(f"rows[{p.position}].{p.field}: {p.message}" for p in exc.rows[:5])
        more = f" (and {len(exc.rows) - 5} more)" if len(exc.rows) > 5 else ""
        detail = f"{len(exc.rows)} bad value(s), nothing written: {shown}{more}"
        return problem(request, 422, detail, kind="validation", errors=errors)
    if isinstance(exc, InvalidRequestError | ReviewQueryError):
        return problem(request, 422, str(exc), kind="validation")
    if isinstance(exc, NotFoundError):
        return problem(request, 404, str(exc))
    if isinstance(exc, DatabaseUnavailableError):
        return problem(request, 503, str(exc), kind="unavailable", headers={"Retry-After": "5"})
    return problem(request, 409, str(exc), kind="conflict")


def _bug(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "the server failed; the error is in its log")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PricemonError, _pricemon_error)
    app.add_exception_handler(Exception, _bug)
