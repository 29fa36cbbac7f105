"""schemathesis against the running server's own OpenAPI document: for generated requests to every
operation (as an admin, so none stops at authorisation), no 5xx, and every answer's status,
content type and body match what the document says. Few examples, derandomised: fast and repeatable."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.served import Served


def test_the_api_keeps_its_openapi_contract(served_sqlite: Served) -> None:
    # (schemathesis' pytest plugin does not run with this pytest; its Python API does)
    schema = schemathesis.openapi.from_url(f"{served_sqlite.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {served_sqlite.tokens['admin']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        check()
    assert len(tried) >= 18
