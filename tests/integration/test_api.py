"""The REST read API over a real backtest's read model: answers, paging, auth, errors, controls, metrics."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from api.http.readmodel import ReadModelAccess
from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from domain.control import Run
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from tests.support.machine import CALM_MACHINE
from tests.support.recording import record

RUN = uuid.UUID("00000000-0000-4000-8000-0000000000a7")
TOKENS = {"viewer": "viewer-token-1", "auditor": "auditor-token-1", "operator": "operator-token-1"}
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


class FixedClock:
    def __init__(self, now: datetime = NOW):
        self.now_value = now

    def now(self) -> datetime:
        return self.now_value


def api_settings(**env: str):
    """Settings with one token per role (names: vera, audrey, otto)."""
    tokens = [{"name": name, "token": TOKENS[role], "role": role}
              for name, role in (("vera", "viewer"), ("audrey", "auditor"), ("otto", "operator"))]
    return load_settings(env={"SYSTEM__API_TOKENS": json.dumps(tokens), **CALM_MACHINE, **env})


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def backtest_read_model(directory: Path, start: str = "2018-01-01", end: str = "2018-01-21",
                        run_id: uuid.UUID = RUN, summaries: list | None = None) -> tuple[str, Path]:
    """A backtest of the bundled candles of [start, end) into a SQLite store, and its DuckDB read model, both
    closed (``summaries`` receives the run's summary)."""
    frame = read_candle_file(bundled_candles_path()).frame
    frame = frame[(frame.index >= start) & (frame.index < end)]
    settings = load_settings(env={})
    url = f"sqlite:///{directory / 'events.db'}"
    store = open_store(url)
    try:
        summary = run_backtest(store, frame, exchange=paper_exchange(settings, id_prefix="paper"),
                               strategy=decision_model(settings), settings=loop_settings(settings, flush_every=250),
                               initial_balance=Decimal(10000), config_hash="test", code_version="test", run_id=run_id)
        if summaries is not None:
            summaries.append(summary)
        path = directory / "readmodel.duckdb"
        con = runner.open_readmodel(path)
        runner.catch_up(store, con, runner.ALL_PROJECTIONS, 5000)
        con.close()
    finally:
        store.close()
    return url, path


class Node:
    """An app over a copy of the module's read model (so a test's writes stay its own)."""

    def __init__(self, url: str, path: Path, settings=None, clock=None):
        self.store = open_store(url)
        self.con = runner.open_readmodel(path)
        self.access = ReadModelAccess(self.con)
        self.clock = clock or FixedClock()
        self.app = create_app(self.store, self.access, settings or api_settings(), clock=self.clock)
        self.client = TestClient(self.app)

    def catch_up(self) -> None:
        runner.catch_up(self.store, self.con, runner.ALL_PROJECTIONS, 5000)
        self.access.moved()

    def close(self) -> None:
        self.access.close()
        self.con.close()
        self.store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return backtest_read_model(tmp_path_factory.mktemp("api"))


@pytest.fixture
def node(built, tmp_path):
    import shutil

    url, path = built
    shutil.copy(Path(url[len("sqlite:///"):]), tmp_path / "events.db")
    shutil.copy(path, tmp_path / "readmodel.duckdb")
    n = Node(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "readmodel.duckdb")
    yield n
    n.close()


# --- answers from the read model ------------------------------------------------------------


def test_health_of_a_caught_up_backtest_read_model_is_healthy(node):
    body = node.client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["checks"]["store_reachable"] is True
    assert body["checks"]["projector_lag_events"] == 0
    assert body["checks"]["halted"] is False


def test_positions_are_the_read_models_rows_with_decimals_as_strings(node):
    body = node.client.get("/positions", headers=auth("viewer")).json()
    expected = node.con.execute("SELECT product, quantity, realized_pnl, fees FROM positions WHERE run_id = ?",
                                [str(RUN)]).fetchall()
    assert body["run"]["run_id"] == str(RUN) and body["run"]["mode"] == "backtest"
    assert len(body["items"]) == len(expected) >= 1
    for item, (product, quantity, realized, fees) in zip(body["items"], expected):
        assert item["product"] == product
        assert isinstance(item["quantity"], str) and Decimal(item["quantity"]) == quantity
        assert Decimal(item["realized_pnl"]) == realized and Decimal(item["fees"]) == fees
        assert Decimal(item["fees"]) > 0  # the run traded


def test_risk_metrics_report_the_daily_loss_limit_and_drawdown(node):
    body = node.client.get("/risk/metrics", headers=auth("viewer")).json()
    assert body["max_daily_loss_pct"] == "3"
    assert body["day"] == "2018-01-21"
    assert Decimal(body["equity"]) > 0
    assert Decimal(body["run_max_drawdown_pct"]) > 0  # the run's, over its equity curve
    assert Decimal(body["max_drawdown_pct"]) >= 0  # the day's (the run book's figure)
    day = node.client.get("/pnl/daily?from=2018-01-21&to=2018-01-21", headers=auth("viewer")).json()["items"][0]
    for name in ("max_drawdown_pct", "day_pnl", "end_equity", "worst_daily_loss_pct", "risk_score"):
        assert body[name] == day[name], name
    assert body["risk_level"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL")


def test_pnl_daily_filters_by_day_and_pages_with_next_from(node):
    body = node.client.get("/pnl/daily?from=2018-01-05&to=2018-01-10&limit=4", headers=auth("viewer")).json()
    assert [d["day"] for d in body["items"]] == ["2018-01-05", "2018-01-06", "2018-01-07", "2018-01-08"]
    assert body["next_from"] == "2018-01-09"
    rest = node.client.get(f"/pnl/daily?from={body['next_from']}&to=2018-01-10", headers=auth("viewer")).json()
    assert [d["day"] for d in rest["items"]] == ["2018-01-09", "2018-01-10"] and rest["next_from"] is None
    bad = node.client.get("/pnl/daily?from=2018-01-10&to=2018-01-05", headers=auth("viewer"))
    assert bad.status_code == 422 and "'from'" in bad.json()["detail"]


def test_trades_and_decisions_page_newest_first_without_gaps(node):
    trades = node.con.execute("SELECT count(*) FROM fills").fetchone()[0]
    seen, before = [], None
    while True:
        page = node.client.get("/trades?limit=7" + (f"&before={before}" if before else ""), headers=auth("viewer")).json()
        seen += [t["fill_id"] for t in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == len(set(seen)) == trades > 0
    decisions = node.client.get("/decisions?trades_only=true&limit=5", headers=auth("viewer")).json()["items"]
    assert decisions and all(d["action"] != "HOLD" and d["rationale"] for d in decisions)
    assert [d["notification_id"] for d in decisions] == sorted((d["notification_id"] for d in decisions), reverse=True)


def test_market_data_is_an_array_of_the_latest_candles_oldest_first(node):
    candles = node.client.get("/market/data?limit=5", headers=auth("viewer")).json()
    assert isinstance(candles, list) and len(candles) == 5
    assert candles[-1]["start"] == "2018-01-20T23:00:00Z"
    assert [c["start"] for c in candles] == sorted(c["start"] for c in candles)
    status = node.client.get("/market/status", headers=auth("viewer")).json()
    assert status["feed_connected"] is False and status["products"][0]["stale"] is True


def test_every_list_endpoint_caps_its_limit_and_names_the_parameter(node):
    for path in ("/positions", "/trades", "/orders", "/decisions", "/incidents", "/runs", "/market/data", "/events",
                 "/pnl/daily"):
        response = node.client.get(f"{path}?limit=100000", headers=auth("operator"))
        assert response.status_code == 422, path
        assert response.json()["error"] == "invalid_parameter"
        assert "query parameter 'limit'" in response.json()["detail"]


def test_daily_report_for_a_day_without_data_is_404_with_a_json_error(node):
    ok = node.client.get("/reports/daily?date=2018-01-10", headers=auth("viewer")).json()
    assert ok["date"] == "2018-01-10" and ok["recommendations"]
    missing = node.client.get("/reports/daily?date=2020-01-01", headers=auth("viewer"))
    assert missing.status_code == 404 and set(missing.json()) == {"error", "detail"}
    bad = node.client.get("/reports/daily?date=yesterday", headers=auth("viewer"))
    assert bad.status_code == 422 and "'date'" in bad.json()["detail"]


# --- the auditor's paging of the log --------------------------------------------------------


def test_events_pages_concatenate_to_the_whole_log_in_order(node):
    ids, after = [], 0
    while after is not None:
        page = node.client.get(f"/events?after={after}&limit=250", headers=auth("auditor")).json()
        ids += [e["notification_id"] for e in page["items"]]
        after = page["next_after"]
    assert ids == list(range(1, node.store.max_notification_id() + 1))


def test_events_filter_by_type_and_time_and_refuse_an_unknown_type(node):
    page = node.client.get("/events?type=OrderFilled&type=TradingHalted&since=2018-01-10T00:00:00Z&until=2018-01-15",
                           headers=auth("auditor")).json()
    assert page["items"] and {e["type"] for e in page["items"]} <= {"OrderFilled", "TradingHalted"}
    assert all("2018-01-10" <= e["occurred_at"] < "2018-01-15" for e in page["items"])
    unknown = node.client.get("/events?type=OrderFiled", headers=auth("auditor"))
    assert unknown.status_code == 422 and "'OrderFiled'" in unknown.json()["detail"]


# --- auth ----------------------------------------------------------------------------------


def test_no_token_is_401_the_wrong_role_is_403_and_health_and_metrics_are_open(node):
    c = node.client
    assert c.get("/positions", headers=auth("viewer")).status_code == 200  # now cached: still no answer without a token
    assert c.get("/positions").status_code == 401
    assert c.get("/positions").headers["www-authenticate"] == "Bearer"
    assert c.get("/positions", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert c.get("/positions", headers=auth("viewer")).status_code == 200
    assert c.get("/events", headers=auth("viewer")).status_code == 403
    assert c.post("/control/halt", json={"reason": "x"}, headers=auth("auditor")).status_code == 403
    assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
    assert c.get("/health/detailed").status_code == 401


def test_health_and_metrics_can_be_closed_by_settings(built, tmp_path):
    url, path = built
    closed = Node(url, path, settings=api_settings(SYSTEM__API_OPEN_ENDPOINTS="[]"))
    try:
        assert closed.client.get("/health").status_code == 401
        assert closed.client.get("/metrics").status_code == 401
        assert closed.client.get("/metrics", headers=auth("viewer")).status_code == 200
    finally:
        closed.close()


def test_tokens_never_appear_in_logs_or_answers(node, caplog):
    caplog.set_level(logging.DEBUG)
    for token in ("Bearer wrong-token-xyz", f"Bearer {TOKENS['operator']}"):
        response = node.client.get("/positions", headers={"Authorization": token})
        assert token.split()[1] not in response.text
    node.client.get("/config", headers=auth("operator"))
    assert "wrong-token-xyz" not in caplog.text and TOKENS["operator"] not in caplog.text
    config = node.client.get("/config", headers=auth("operator")).text
    assert all(secret not in config for secret in TOKENS.values())


# --- controls ------------------------------------------------------------------------------


def test_halt_and_resume_are_recorded_with_the_tokens_name_and_show_in_health(node):
    c = node.client
    halted = c.post("/control/halt", json={"reason": "exchange outage", "severity": "P1"}, headers=auth("operator"))
    assert halted.status_code == 200 and halted.json()["state"]["halted"] is True
    health = c.get("/health").json()
    assert health["status"] == "degraded" and any("halted" in r and "exchange outage" in r for r in health["reasons"])
    again = c.post("/control/halt", json={"reason": "twice", "severity": "P2"}, headers=auth("operator"))
    assert again.status_code == 409 and again.json()["error"] == "already_halted"
    assert c.post("/control/resume", json={"reason": "venue back"}, headers=auth("operator")).status_code == 200
    assert c.post("/control/resume", headers=auth("operator")).status_code == 409
    assert c.post("/control/cancel-all", headers=auth("operator")).json()["cancel_requested"] is True
    events = [e.event for e in node.store.iter_log() if e.event.event_type in
              ("TradingHalted", "TradingResumed", "CancelAllRequested") and e.event.actor == "otto"]
    assert [e.event_type for e in events] == ["TradingHalted", "TradingResumed", "CancelAllRequested"]
    node.catch_up()
    assert c.get("/health").json()["status"] == "healthy"


def test_a_bad_halt_body_is_422_naming_the_field(node):
    response = node.client.post("/control/halt", json={"reason": "x", "severity": "P9"}, headers=auth("operator"))
    assert response.status_code == 422 and "body field 'severity'" in response.json()["detail"]
    blank = node.client.post("/control/halt", json={"reason": "   "}, headers=auth("operator"))
    assert blank.status_code == 422 and blank.json()["error"] == "refused"


def test_incident_open_and_resolve_reach_the_incidents_list_after_projection(node):
    opened = node.client.post("/incidents", json={"severity": "P2", "kind": "feed", "details": "gaps"}, headers=auth("operator"))
    assert opened.status_code == 201
    incident = opened.json()["incident_id"]
    node.catch_up()
    listed = node.client.get("/incidents?status=open", headers=auth("viewer")).json()["items"]
    assert [i["incident_id"] for i in listed] == [incident] and listed[0]["opened_by"] == "otto"
    resolved = node.client.post(f"/incidents/{incident}/resolve", json={"note": "fixed"}, headers=auth("operator"))
    assert resolved.status_code == 200
    missing = node.client.post(f"/incidents/{uuid.uuid4()}/resolve", json={"note": "x"}, headers=auth("operator"))
    assert missing.status_code == 404


def test_put_config_validates_and_records_a_config_change_by_the_token(node):
    c = node.client
    ok = c.put("/config/risk.max_daily_loss_pct", json={"value": "2.5", "reason": "tighter"}, headers=auth("operator"))
    assert ok.status_code == 200 and ok.json()["recorded"] is True and ok.json()["new"] == "2.5"
    change = [e.event for e in node.store.iter_log() if e.event.event_type == "ConfigChanged"][-1]
    assert change.actor == "otto" and change.path == "risk.max_daily_loss_pct"
    bad = c.put("/config/risk.max_daily_loss_pct", json={"value": "500", "reason": "oops"}, headers=auth("operator"))
    assert bad.status_code == 422 and "risk.max_daily_loss_pct" in bad.json()["detail"]
    unknown = c.put("/config/risk.max_dayly_loss_pct", json={"value": "2", "reason": "typo"}, headers=auth("operator"))
    assert unknown.status_code == 404 and "risk.max_daily_loss_pct" in unknown.json()["detail"]
    secret = c.put("/config/llm.api_key", json={"value": "sk-very-secret", "reason": "x"}, headers=auth("operator"))
    assert secret.status_code == 422 and "sk-very-secret" not in secret.text
    assert c.put("/config/risk.max_daily_loss_pct", json={"value": "2", "reason": "x"}, headers=auth("viewer")).status_code == 403
    node.catch_up()
    assert c.get("/config", headers=auth("viewer")).json()["config"]["risk"]["max_daily_loss_pct"] == "2.5"


# --- health, caching, metrics ----------------------------------------------------------------


def test_health_is_degraded_while_the_read_model_trails_the_log_and_answers_follow_the_position(node):
    before = node.client.get("/positions", headers=auth("viewer")).json()["as_of_position"]
    record(node.store, Run.begin(uuid.uuid4(), _meta(), mode="paper", product="BTC-USD", granularity="1h",
                                 strategy="rules", config_hash="x", code_version="test"))
    health = node.client.get("/health").json()
    assert health["checks"]["projector_lag_events"] == 1 and any("Read model trails" in r for r in health["reasons"])
    node.catch_up()
    assert node.client.get("/positions", headers=auth("viewer")).json()["as_of_position"] == before + 1
    # A paper run is active and its market data (2018) is stale at the clock's 2024: a P1 check fails, as
    # `tradecore health` says too (one verdict), and the lag is gone.
    health = node.client.get("/health").json()
    assert health["status"] == "unhealthy" and any("Market data age" in r for r in health["reasons"])
    assert not any("Read model" in r for r in health["reasons"])


def test_an_active_health_alert_degrades_health_a_p0_makes_it_unhealthy_and_a_recovery_clears_it(node):
    from domain.alerts import Alert

    disk = Alert.first("disk", _meta(), severity="P1", status="critical", value=Decimal("93.1"),
                       threshold=Decimal(90), unit="%", message="disk 93.1% used")
    node.store._save(disk)
    node.catch_up()
    health = node.client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert any("disk (P1) active since" in reason for reason in health.json()["reasons"])
    loss = Alert.first("daily_loss", _meta(), severity="P0", status="critical", value=Decimal("3.4"),
                       threshold=Decimal(3), unit="%", message="daily loss 3.4% past the 3% limit")
    node.store._save(loss)
    node.catch_up()
    assert node.client.get("/health").status_code == 503
    detailed = node.client.get("/health/detailed", headers=auth("viewer")).json()
    assert [a["check"] for a in detailed["components"]["alerts"]] == ["daily_loss", "disk"]
    for alert, value in ((disk, Decimal(70)), (loss, Decimal(1))):
        alert.resolve(_meta(), value=value, threshold=Decimal(80), unit="%", message="recovered")
        node.store._save(alert)
    node.catch_up()
    assert node.client.get("/health").json()["status"] == "healthy"


def test_fresh_market_data_of_an_active_paper_run_is_healthy(node):
    from domain.market import Candle

    record(node.store, Run.begin(uuid.uuid4(), _meta(), mode="paper", product="BTC-USD", granularity="1h",
                                 strategy="rules", config_hash="x", code_version="test"))
    start = NOW.replace(minute=0) - timedelta(hours=1)
    node.store.record_candles([Candle("BTC-USD", "1h", start, Decimal(1), Decimal(2), Decimal(1), Decimal(2), Decimal(5))],
                              _meta())
    node.catch_up()
    node.clock.now_value = NOW + timedelta(seconds=10)
    body = node.client.get("/health").json()
    assert body["status"] == "healthy", body
    assert body["checks"]["market_data_age_seconds"] == 10.0
    assert node.client.get("/market/status", headers=auth("viewer")).json()["feed_connected"] is True
    node.clock.now_value = NOW + timedelta(hours=2)  # stale market data: a P1 check fails (503), as in the CLI
    assert node.client.get("/health").json()["status"] == "unhealthy"


def test_metrics_use_the_dashboards_names_and_label_durations_by_endpoint(node):
    node.client.get("/positions", headers=auth("viewer"))
    text = node.client.get("/metrics").text
    for name in ("trading_bot_health_status 1.0", "trading_bot_daily_pnl", "trading_bot_positions{bot=\"backtest-btc-usd\",product=\"BTC-USD\"}",
                 "trading_bot_trades_total", "trading_bot_trade_success_rate", "trading_bot_memory_usage_bytes",
                 "trading_bot_cpu_usage_percent", "trading_bot_projector_lag_events", "trading_bot_events_appended_total",
                 "trading_bot_decisions_total{action=\"HOLD\",bot=\"backtest-btc-usd\"}",
                 'trading_bot_api_request_duration_seconds_count{endpoint="/positions",method="GET",status="200"}'):
        assert name in text, name
    assert node.con.execute("SELECT count(*) FROM fills").fetchone()[0] > 0  # the backtest's fills...
    assert 'trading_bot_trades_total{bot="none",mode="none"} 0.0' in text  # ...are not a paper/live run's trades


def test_replay_answers_the_days_timeline_as_json(node):
    response = node.client.get("/replay/2018-01-10", headers=auth("auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["day"] == "2018-01-10" and body["run"]["run_id"] == str(RUN)
    assert body["events"] and all("2018-01-10" <= e["at"] < "2018-01-11" for e in body["events"])
    assert body["next_after"] is None
    ids, after = [], 0
    while after is not None:
        page = node.client.get(f"/replay/2018-01-10?limit=10&after={after}", headers=auth("auditor")).json()
        ids += [e["notification_id"] for e in page["events"]]
        after = page["next_after"]
    assert ids == [e["notification_id"] for e in body["events"]]
    assert node.client.get("/replay/2018-01-10", headers=auth("viewer")).status_code == 403
    assert node.client.get(f"/replay/2018-01-10?run_id={uuid.uuid4()}", headers=auth("auditor")).status_code == 404
    bad = node.client.get("/replay/not-a-day", headers=auth("auditor"))
    assert bad.status_code == 422 and "path parameter 'day'" in bad.json()["detail"]


def test_the_dashboard_page_and_its_assets_are_served(node):
    page = node.client.get("/")
    assert page.status_code == 200 and "equity-chart" in page.text
    assert node.client.get("/static/app.js").status_code == 200


def _meta():
    from domain.events import EventMeta

    return EventMeta(NOW, actor="test")


def test_health_is_unhealthy_503_and_metrics_say_0_when_the_store_cannot_answer(node):
    node.store.close()  # as when the database goes away under the node
    response = node.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["checks"]["store_reachable"] is False
    assert body["reasons"][0].lower().startswith("event store unreachable")
    assert "trading_bot_health_status 0.0" in node.client.get("/metrics").text


def test_alerts_list_answers_from_the_read_model(node):
    response = node.client.get("/alerts?status=active", headers=auth("viewer"))
    assert response.status_code == 200 and response.json() == {"items": [], "next_offset": None}
    assert node.client.get("/alerts?status=sleeping", headers=auth("viewer")).status_code == 422
