"""Schemathesis over every operation of the OpenAPI schema: no 5xx, no answer that breaks the schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.test_api import Node, auth, backtest_read_model

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("schema")
    url, path = backtest_read_model(directory, "2018-01-01", "2018-01-08")
    node = Node(url, path)
    yield node
    node.close()


def test_no_operation_answers_5xx_or_breaks_its_schema(api_node):
    """Every operation, a dozen generated requests each (with an operator token): the checks must all pass."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_node.app)
    failures: dict[str, str] = {}
    operations, calls = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def exercise(case):
            response = case.call_and_validate(headers=auth("operator"), checks=CHECKS)
            calls.append((operation.label, response.status_code))

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collected per operation, reported together
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert operations >= 25
    assert failures == {}
    assert len(calls) >= operations * 3  # hypothesis really generated requests for each operation
    assert {code for _, code in calls} >= {200, 422}


def test_the_schema_covers_every_endpoint_of_the_issue(api_node):
    paths = set(api_node.client.get("/openapi.json").json()["paths"])
    for path in ("/health", "/health/detailed", "/positions", "/risk/metrics", "/market/status", "/market/data",
                 "/indicators/status", "/llm/status", "/pnl/daily", "/trades", "/orders", "/decisions", "/config",
                 "/config/drift", "/incidents", "/reports/daily", "/events", "/replay/{day}", "/metrics",
                 "/control/halt", "/control/resume", "/control/cancel-all", "/config/{path}"):
        assert path in paths, path
