"""A fuzzing run of the service's OpenAPI schema (schemathesis) against the real service over loopback with
the token: no request makes a server error, and every refused one gets a JSON error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from service_helpers import running_service

EXAMPLES = 25


def test_no_request_made_from_the_schema_makes_a_server_error():
    schemathesis = pytest.importorskip("schemathesis")
    with running_service() as svc:
        svc.start("--http", "127.0.0.1:0")
        info = svc.info()
        auth = {"Authorization": f"Bearer {info['token']}"}
        schema = schemathesis.openapi.from_url(f"http://{info['http']}/v1/openapi.json", headers=auth)
        operations = [r.ok() for r in schema.get_all_operations()]
        tried: list[str] = []
        calls = [0]
        for operation in operations:
            if operation.path == "/v1/shutdown":  # it would end the run
                continue
            tried.append(f"{operation.method.upper()} {operation.path}")

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
            )
            def call(case) -> None:
                response = case.call(headers=auth, timeout=30)
                calls[0] += 1
                assert response.status_code < 500, (case.method, case.formatted_path, response.text)
                if response.status_code >= 400:
                    body = response.json()
                    assert isinstance(body.get("error"), str) and body["error"], body

            call()
        assert len(tried) >= 12, tried
        assert calls[0] >= 5 * len(tried)
