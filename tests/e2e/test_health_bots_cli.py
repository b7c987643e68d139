"""`tradecore health --bot ID`: one bot's halts and alerts (and those every bot shares); without --bot, every
bot's alerts. Real `python -m api.cli` processes on a SQLite store that three bots share."""

from __future__ import annotations

import json

from api.bootstrap import open_store
from domain.alerts import Alert
from domain.control import Severity
from domain.events import EventMeta
from tests.e2e.test_bots_cli import T0, store_with_bots
from tests.e2e.test_cli_errors import cli, one_line_error
from tests.e2e.test_health_cli import CALM
from tests.support.recording import record


def _raise(url: str, check: str, severity: Severity, scope: str) -> None:
    app = open_store(url)
    try:
        record(app, Alert.first(check, EventMeta(T0, "health"), severity=severity, status="critical", value=1,
                                threshold=0, unit="", message=f"{check} of {scope}", scope=scope))
    finally:
        app.close()


def _checks(result) -> dict:
    assert result.returncode in (0, 1), result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_health_of_one_bot_sees_its_halt_and_alerts_and_the_shared_ones_not_another_bots(tmp_path):
    url = store_with_bots(tmp_path)
    assert cli("halt", "--bot", "paper-eth-usd", "--reason", "probation", "--store", url).returncode == 0
    _raise(url, "market_data_age", Severity.P1, "paper-eth-usd")  # raised by that bot's own watch

    eth = _checks(cli("health", "--bot", "paper-eth-usd", "--json", "--store", url, env=CALM))
    assert eth["trading_halted"]["value"] == 1, eth["trading_halted"]
    assert eth["alerts"]["status"] == "warn" and "market_data_age of bot paper-eth-usd (P1)" in eth["alerts"]["message"]

    btc = _checks(cli("health", "--bot", "paper-btc-usd", "--json", "--store", url, env=CALM))
    assert btc["trading_halted"]["value"] == 0, btc["trading_halted"]
    assert btc["alerts"]["status"] == "ok", btc["alerts"]

    every = _checks(cli("health", "--json", "--store", url, env=CALM))  # every bot's alerts
    assert "market_data_age of bot paper-eth-usd" in every["alerts"]["message"]

    _raise(url, "disk", Severity.P0, "tradecore")  # a shared watch's (or a pre-bot log's) alert counts for each bot
    btc = _checks(cli("health", "--bot", "paper-btc-usd", "--json", "--store", url, env=CALM))
    assert btc["alerts"]["status"] == "critical" and "disk (P0)" in btc["alerts"]["message"]


def test_health_of_an_unknown_bot_is_one_line_naming_the_known_ones(tmp_path):
    url = store_with_bots(tmp_path)
    one_line_error(cli("health", "--bot", "paper-btc-usdd", "--store", url), "no bot 'paper-btc-usdd'", "paper-btc-usd")
