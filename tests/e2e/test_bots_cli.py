"""`tradecore bots`, and `halt | resume | cancel-all | incident open` with `--bot ID` or `--all`, as an operator
types them (a real `python -m api.cli` process on a SQLite store)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

from api.bootstrap import open_store
from domain.control import Run, RunMode
from domain.events import EventMeta
from tests.e2e.test_cli_errors import cli, one_line_error
from tests.support.recording import record

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def store_with_bots(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/events.db"
    app = open_store(url)
    for product, bot in (("BTC-USD", None), ("ETH-USD", "paper-eth-usd"), ("ETH-BTC", "eth-btc-probation")):
        run_id = uuid.uuid4()
        record(app, Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode=RunMode.PAPER,
                              product=product, granularity="1h", strategy="rules", config_hash="h", code_version="t",
                              initial_balance=Decimal(1000), bot_id=bot))
    app.close()
    return url


def test_bots_lists_each_bot_with_its_state_and_halts_scope_to_one_bot_or_all(tmp_path):
    url = store_with_bots(tmp_path)
    listed = cli("bots", "--store", url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["eth-btc-probation", "paper-btc-usd", "paper-eth-usd"]
    assert all("running" in line and line.endswith("trading") for line in lines)

    halted = cli("halt", "--bot", "paper-eth-usd", "--reason", "new strategy misbehaves", "--store", url)
    assert halted.returncode == 0 and "for bot paper-eth-usd" in halted.stdout
    bots = {b["bot_id"]: b for b in json.loads(cli("bots", "--json", "--store", url).stdout)}
    assert bots["paper-eth-usd"]["halted"] and bots["paper-eth-usd"]["halted_by"] == "bot"
    assert not bots["paper-btc-usd"]["halted"] and not bots["eth-btc-probation"]["halted"]

    resumed = cli("resume", "--store", url)  # no every-bot halt: says which bots are halted on their own
    one_line_error(resumed, "paper-eth-usd", "--bot")
    assert cli("halt", "--all", "--severity", "P0", "--reason", "venue outage", "--store", url).returncode == 0
    bots = {b["bot_id"]: b for b in json.loads(cli("bots", "--json", "--store", url).stdout)}
    assert all(b["halted"] for b in bots.values()) and bots["paper-btc-usd"]["halted_by"] == "all"
    assert bots["paper-eth-usd"]["halted_by"] == "bot"  # its own halt is shown first
    assert cli("resume", "--all", "--reason", "venue back", "--store", url).returncode == 0
    assert cli("resume", "--bot", "paper-eth-usd", "--reason", "fixed", "--store", url).returncode == 0
    assert not any(b["halted"] for b in json.loads(cli("bots", "--json", "--store", url).stdout))

    assert cli("cancel-all", "--bot", "eth-btc-probation", "--store", url).returncode == 0
    opened = cli("incident", "open", "--severity", "P2", "--kind", "slow-fills", "--details", "x",
                 "--bot", "paper-btc-usd", "--json", "--store", url)
    assert opened.returncode == 0 and json.loads(opened.stdout)["halted"] is False


def test_user_mistakes_with_bots_are_one_line(tmp_path):
    url = store_with_bots(tmp_path)
    one_line_error(cli("halt", "--bot", "paper-btc-usdd", "--reason", "typo", "--store", url),
                   "no bot 'paper-btc-usdd'", "paper-btc-usd")
    one_line_error(cli("halt", "--bot", "paper-btc-usd", "--all", "--reason", "x", "--store", url), "choose one")
    missing = tmp_path / "none" / "events.db"
    one_line_error(cli("bots", "--store", f"sqlite:///{missing}"))
    assert not missing.exists()  # read-only: never creates a store
    empty = f"sqlite:///{tmp_path}/empty.db"
    open_store(empty).close()
    assert "no bot has run" in cli("bots", "--store", empty).stdout
