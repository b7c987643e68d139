"""Input that must not hurt the REST API (issue 17 item 12): an overflowing day, a flood of unknown paths,
a body that is not JSON, and OPTIONS."""

from __future__ import annotations

import pytest

from api.bootstrap import open_store
from projections.engine import runner
from tests.integration.test_api import Node, auth


@pytest.fixture
def node(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    con = runner.open_readmodel(tmp_path / "readmodel.duckdb")
    runner.catch_up(store, con, runner.ALL_PROJECTIONS, 1000)
    con.close()
    store.close()
    n = Node(url, tmp_path / "readmodel.duckdb")
    yield n
    n.close()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_replay_day_at_the_edge_of_the_calendar_is_a_422_naming_the_parameter(node, day):
    answer = node.client.get(f"/replay/{day}", headers=auth("auditor"))
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_parameter" and body["detail"].startswith("path parameter 'day'")


def _duration_series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("trading_bot_api_request_duration_seconds_count")]


def test_a_thousand_unknown_paths_do_not_grow_the_metrics(node):
    client = node.client
    client.get("/positions", headers=auth("viewer"))
    before = _duration_series(client.get("/metrics").text)
    for i in range(1000):
        assert client.get(f"/fuzz/{i}/x{i * 7919}").status_code == 404
    text = client.get("/metrics").text
    after = _duration_series(text)
    assert len(after) <= len(before) + 2, after  # the unknown paths share one label value ("unmatched")
    assert "fuzz" not in text
    assert any('endpoint="unmatched"' in line for line in after)


def test_a_body_that_is_not_json_is_a_documented_400(node):
    answer = node.client.post("/control/halt", headers={**auth("operator"), "Content-Type": "application/json"},
                              content=b"{reason: drill")
    assert answer.status_code == 400
    assert answer.json()["error"] == "malformed_json" and "not valid JSON" in answer.json()["detail"]
    documented = node.client.get("/openapi.json").json()["paths"]["/control/halt"]["post"]["responses"]
    assert "400" in documented


@pytest.mark.parametrize("path, allowed", [
    ("/positions", "GET, HEAD, OPTIONS"),
    ("/control/halt", "OPTIONS, POST"),
    ("/metrics", "GET, HEAD, OPTIONS"),
])
def test_options_answers_with_every_allowed_method(node, path, allowed):
    answer = node.client.options(path)
    assert answer.status_code == 204 and answer.headers["allow"] == allowed


def test_options_on_an_unknown_path_is_a_404(node):
    assert node.client.options("/no/such/route").status_code == 404
