"""The REST API tells bots apart: GET /bots, ?bot= wherever ?run_id= is taken, controls and incidents for one bot."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from domain.control import Run, RunMode
from domain.events import EventMeta
from domain.order import Order
from tests.integration.test_api import RUN, auth, built, node  # noqa: F401 - the fixtures
from tests.support.recording import record, funded_account

T1 = datetime(2018, 1, 22, tzinfo=timezone.utc)


def paper_bot(node, bot: str, product: str, *, fill: bool = False) -> uuid.UUID:
    run_id = uuid.uuid4()
    meta = EventMeta(T1, "system", run_id, None, run_id)
    run = Run.begin(run_id, meta, mode=RunMode.PAPER, product=product, granularity="1h", strategy="rules",
                    config_hash="h", code_version="t", initial_balance=Decimal(1000), bot_id=bot)
    record(node.store, run, funded_account(f"run-{run_id}", Decimal(1000), meta, product.split("-")[1]))
    if fill:
        order = Order.place(uuid.uuid4(), meta, product=product, side="BUY", order_type="MARKET", quantity=Decimal("0.5"),
                            bot_id=bot)
        order.submit(meta)
        order.accept(meta, venue_order_id=f"v-{bot}")
        order.fill(meta, fill_id=f"f-{bot}", quantity=Decimal("0.5"), price=Decimal("100"), fee=Decimal("0.3"),
                   fee_currency="USD", liquidity="TAKER")
        record(node.store, order)
    return run_id


def test_bots_and_the_bot_parameter(node):
    btc = paper_bot(node, "paper-btc-usd", "BTC-USD", fill=True)
    eth = paper_bot(node, "eth-probation", "ETH-USD")
    node.catch_up()
    bots = node.client.get("/bots", headers=auth("viewer")).json()
    assert [(b["bot_id"], b["run_id"], b["product"], b["status"], b["halted"]) for b in bots["items"]] == [
        ("eth-probation", str(eth), "ETH-USD", "running", False), ("paper-btc-usd", str(btc), "BTC-USD", "running", False)]
    for path in ("/positions", "/risk/metrics", "/pnl/daily", "/trades", "/orders", "/decisions", "/equity/curve",
                 "/indicators/status", "/llm/status"):
        answer = node.client.get(f"{path}?bot=paper-btc-usd", headers=auth("viewer"))
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["run"]["run_id"] == str(btc) and answer.json()["run"]["bot_id"] == "paper-btc-usd", path
        assert node.client.get(f"{path}?bot=eth-probation", headers=auth("viewer")).json()["run"]["run_id"] == str(eth)
        unknown = node.client.get(f"{path}?bot=nobody", headers=auth("viewer"))
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_bot", path
        mismatch = node.client.get(f"{path}?bot=eth-probation&run_id={btc}", headers=auth("viewer"))
        assert mismatch.status_code == 404, path
        assert node.client.get(f"{path}?bot=Not_A_Bot", headers=auth("viewer")).status_code == 422, path
    trades = node.client.get("/trades?bot=paper-btc-usd", headers=auth("viewer")).json()["items"]
    assert [t["order_id"] for t in trades] and node.client.get("/trades?bot=eth-probation", headers=auth("viewer")).json()["items"] == []
    orders = node.client.get("/orders?bot=paper-btc-usd", headers=auth("viewer")).json()["items"]
    assert orders[0]["client_order_id"].startswith("tc-paper-btc-usd-")
    assert [r["run_id"] for r in node.client.get("/runs?bot=eth-probation", headers=auth("viewer")).json()["items"]] == [str(eth)]
    assert node.client.get(f"/reports/daily?bot=paper-btc-usd", headers=auth("viewer")).status_code == 200
    assert node.client.get("/positions", headers=auth("viewer")).json()["run"]["run_id"] != str(RUN)  # an active bot first


def test_controls_and_incidents_for_one_bot_over_rest(node):
    paper_bot(node, "paper-btc-usd", "BTC-USD")
    paper_bot(node, "eth-probation", "ETH-USD")
    node.catch_up()
    halted = node.client.post("/control/halt", json={"reason": "probation over", "bot": "eth-probation"},
                              headers=auth("operator"))
    assert halted.status_code == 200, halted.text
    assert node.client.post("/control/halt", json={"reason": "x", "bot": "nobody"},
                            headers=auth("operator")).status_code == 404
    incident = node.client.post("/incidents", json={"severity": "P2", "kind": "slow", "details": "d", "bot": "paper-btc-usd"},
                                headers=auth("operator"))
    assert incident.status_code == 201
    node.catch_up()
    bots = {b["bot_id"]: b for b in node.client.get("/bots", headers=auth("viewer")).json()["items"]}
    assert bots["eth-probation"]["halted"] and bots["eth-probation"]["halted_by"] == "bot"
    assert not bots["paper-btc-usd"]["halted"]
    listed = node.client.get("/incidents?bot=paper-btc-usd", headers=auth("viewer")).json()["items"]
    assert [i["bot_id"] for i in listed] == ["paper-btc-usd"]
    assert node.client.get("/incidents?bot=eth-probation", headers=auth("viewer")).json()["items"] == []
    assert node.client.post("/control/resume", json={"reason": "ok", "bot": "eth-probation"},
                            headers=auth("operator")).status_code == 200
    node.catch_up()
    assert not any(b["halted"] for b in node.client.get("/bots", headers=auth("viewer")).json()["items"])
    metrics = node.client.get("/metrics").text
    assert 'trading_bot_halted{bot="eth-probation"} 0.0' in metrics
    assert 'trading_bot_equity{bot="paper-btc-usd",mode="paper"}' in metrics or "trading_bot_daily_pnl" in metrics


def test_alerts_of_one_bot(node):
    from domain.alerts import Alert

    meta = EventMeta(T1, "health", None, None, None)
    for bot in ("paper-btc-usd", "eth-probation"):
        node.store._save(Alert.first("disk", meta, severity="P2", status="warn", value=Decimal(85), threshold=Decimal(80),
                                     unit="%", message=f"{bot}: disk 85%", scope=bot))
    node.catch_up()
    mine = node.client.get("/alerts?bot=eth-probation", headers=auth("viewer")).json()["items"]
    assert [a["message"] for a in mine] == ["eth-probation: disk 85%"]
    assert len(node.client.get("/alerts", headers=auth("viewer")).json()["items"]) == 2


def test_every_bots_answers_computed_together_equal_each_runs_own(node):
    """The first ?bot= request after a page computes every bot's answer in one go (api/http/fleet.py): each must be
    what that bot's run alone gives (?run_id=), and the other bots' answers are kept at that position."""
    runs = {"paper-btc-usd": paper_bot(node, "paper-btc-usd", "BTC-USD", fill=True),
            "eth-probation": paper_bot(node, "eth-probation", "ETH-USD"),
            "sol-one": paper_bot(node, "sol-one", "SOL-USD", fill=True)}
    node.catch_up()
    access = node.access
    for query in ("/positions", "/positions?include_flat=false", "/positions?limit=1&offset=0", "/risk/metrics"):
        joiner = "&" if "?" in query else "?"
        first = node.client.get(f"{query}{joiner}bot=paper-btc-usd", headers=auth("viewer"))
        assert first.status_code == 200, first.text
        name = "risk" if query == "/risk/metrics" else "positions"
        assert any(k[0] == name and k[2] == "sol-one" for k in access._cache), (query, "the other bots' were not kept")
        for bot, run_id in runs.items():
            together = node.client.get(f"{query}{joiner}bot={bot}", headers=auth("viewer")).json()
            alone = node.client.get(f"{query}{joiner}run_id={run_id}", headers=auth("viewer")).json()
            assert together == alone, (query, bot)
            assert together["run"]["run_id"] == str(run_id)
    risk = node.client.get("/risk/metrics?bot=sol-one", headers=auth("viewer")).json()
    assert risk["exposure"] is not None and Decimal(risk["exposure"]) > 0  # its filled order counts
    positions = node.client.get("/positions?bot=sol-one", headers=auth("viewer")).json()["items"]
    assert [(p["product"], p["side"]) for p in positions] == [("SOL-USD", "long")]


def test_answers_computed_ahead_after_a_page_are_the_requests_own(node):
    """After a ?bot= request the family is hot: the projector computes every bot's answer at the next position
    before the API sees it (server.py: access.moved(position, answers.warm(position))); they equal what a request
    computes at that position."""
    paper_bot(node, "paper-btc-usd", "BTC-USD", fill=True)
    node.catch_up()
    for path in ("/risk/metrics", "/positions"):
        assert node.client.get(f"{path}?bot=paper-btc-usd", headers=auth("viewer")).status_code == 200
    answers = node.app.state.node.answers
    assert {("risk", "every bot"), ("positions", "every bot", True, 100, 0)} <= set(answers.hot)
    paper_bot(node, "sol-one", "SOL-USD", fill=True)  # the next page: a new bot and its fill
    from projections.engine import runner

    runner.catch_up(node.store, node.con, runner.ALL_PROJECTIONS, 5000)
    position = node.access.read_position()
    ready = answers.warm(position)
    node.access.moved(position, ready)
    assert ready[("risk", None, "sol-one")] and ready[("positions", None, "sol-one", True, 100, 0)]
    for key, path in ((("risk", None, "sol-one"), "/risk/metrics"), (("positions", None, "sol-one", True, 100, 0), "/positions")):
        served = node.client.get(f"{path}?bot=sol-one", headers=auth("viewer"))
        assert served.content == ready[key]
        node.access._cache.clear()  # computed afresh by the request path, at the same position
        assert node.client.get(f"{path}?bot=sol-one&again=1", headers=auth("viewer")).content == ready[key], path


def test_health_of_one_bot_and_of_every_bot(node):
    """GET /health?bot=: that bot's halt and alerts (and the shared ones), never another bot's; without ?bot= every
    bot's alerts count (the verdict `tradecore health --bot` gives: application/health/verdict.py)."""
    from domain.alerts import Alert

    paper_bot(node, "paper-btc-usd", "BTC-USD")
    paper_bot(node, "eth-probation", "ETH-USD")
    node.catch_up()
    assert node.client.post("/control/halt", json={"reason": "probation over", "bot": "eth-probation"},
                            headers=auth("operator")).status_code == 200
    node.store._save(Alert.first("disk", EventMeta(T1, "health", None, None, None), severity="P2", status="warn",
                                 value=Decimal(85), threshold=Decimal(80), unit="%", message="disk 85%",
                                 scope="eth-probation"))
    node.catch_up()

    def verdict(query: str) -> dict:
        answer = node.client.get(f"/health{query}", headers=auth("viewer"))
        assert answer.status_code in (200, 503), answer.text
        return {c["name"]: c for c in answer.json()["verdict"]}

    eth = verdict("?bot=eth-probation")
    assert eth["trading_halted"]["value"] == 1, eth["trading_halted"]
    assert eth["alerts"]["status"] == "warn" and "disk of bot eth-probation" in eth["alerts"]["message"]
    btc = verdict("?bot=paper-btc-usd")
    assert btc["trading_halted"]["value"] == 0, btc["trading_halted"]
    assert btc["alerts"]["status"] == "ok", btc["alerts"]
    assert "disk of bot eth-probation" in verdict("")["alerts"]["message"]
    unknown = node.client.get("/health?bot=nobody", headers=auth("viewer"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_bot"
