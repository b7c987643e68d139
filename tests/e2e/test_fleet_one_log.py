"""Three bots on one PostgreSQL log: `tradecore run --mode paper` processes for BTC-USD, ETH-USD and ETH-BTC (BTC-quoted),
each against its own loopback Coinbase stand-in, all writing one store. Each is killed with SIGKILL while the others
trade, and restarted once. Afterwards: no bot's run was ended by another, no order (client order id) twice and none at
the venue (paper), every bot's books reconcile (the read model's positions of each run equal the fills its own
orders recorded, and every order a killed run left working was reconciled by the same bot's restart), and
`tradecore audit verify` passes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal

import pytest

from api.bootstrap import open_store
from domain.order_states import TERMINAL
from projections.engine import runner
from tests.conftest import fresh_pg_url, require_postgres
from tests.e2e.test_run_live import ROOT, Run, run_env
from tests.support.coinbase_standin import CoinbaseStandIn, wait_for
from tests.support.market_replay import Replay, buy_signal_replay

pytestmark = pytest.mark.postgres

BOTS = {  # bot id: (product, price factor on the bundled BTC-USD candles, its settings)
    "paper-btc-usd": ("BTC-USD", Decimal(1), {}),
    "paper-eth-usd": ("ETH-USD", Decimal("0.05"), {}),
    "paper-eth-btc": ("ETH-BTC", Decimal("0.00002"), {"TRADING__INITIAL_BALANCE": "2", "RISK__MIN_BALANCE": "0.001"}),
}


def scaled(replay: Replay, product: str, factor: Decimal) -> Replay:
    def one(c):
        return replace(c, product=product, open=c.open * factor, high=c.high * factor, low=c.low * factor,
                       close=c.close * factor)
    return Replay([one(c) for c in replay.history], [one(c) for c in replay.live], replay.signal)


class Bot:
    def __init__(self, bot_id: str, tmp_path, url: str):
        self.bot_id, self.url = bot_id, url
        product, factor, extra = BOTS[bot_id]
        self.product = product
        (tmp_path / bot_id).mkdir(exist_ok=True)
        self.stand = CoinbaseStandIn(tmp_path / bot_id, product=product, granularity="5m", heartbeat_every=0.2).start()
        if product == "ETH-BTC":  # the venue's listing, in BTC: the run trades on this grid
            self.stand.product_specs[product] = {"price_increment": "0.00001", "quote_increment": "0.00001",
                                                 "base_increment": "0.00000001", "base_min_size": "0.00000001",
                                                 "quote_min_size": "0.00001"}
        self.stand.balances.update({product.split("-")[0]: Decimal(0), product.split("-")[1]: Decimal(10000)})
        self.replay = scaled(buy_signal_replay(), product, factor)
        self.stand.set_history(self.replay.history)
        self.env = run_env(self.stand, keys=False, TRADING__PRODUCT=product, TRADING__BOT_ID=bot_id, **extra)
        self.pushed = 0
        self.run: Run | None = None

    def start(self) -> None:
        before = sum(m.get("channel") == "candles" for m in self.stand.subscriptions)
        self.run = Run(["--mode", "paper", "--no-api", "--tick", "0.2", "--store", self.url], self.env)
        wait_for(lambda: sum(m.get("channel") == "candles" for m in self.stand.subscriptions) > before
                 or self.run.proc.poll() is not None, timeout=60, what=f"{self.bot_id} to subscribe")
        assert self.run.proc.poll() is None, self.run.output

    def push(self) -> None:
        """One more live candle (closing the one before)."""
        self.stand.trade(self.replay.live[self.pushed], updates=2)
        self.pushed += 1

    def kill(self) -> None:
        self.run.proc.kill()
        self.run.proc.wait(timeout=10)


def logged(url: str):
    app = open_store(url)
    try:
        return [e.event for e in app.iter_log()]
    finally:
        app.close()


def kinds(url: str, name: str) -> list:
    return [e for e in logged(url) if type(e).__name__ == name]


def bot_of_runs(url: str) -> dict[uuid.UUID, str]:
    return {e.originator_id: e.bot for e in kinds(url, "RunStarted")}


def stepped(url: str, bot: Bot) -> int:
    runs = {r for r, b in bot_of_runs(url).items() if b == bot.bot_id}
    return sum(1 for e in kinds(url, "DecisionMade") if e.run_id in runs)


def trade_until(url: str, bots: list[Bot], done, most: int = 10) -> None:
    """Push candles to every bot in lockstep until ``done(events)``: each candle is decided before the next."""
    for _ in range(most):
        for bot in bots:
            seen = stepped(url, bot)
            bot.push()
            if bot.pushed > 1:
                wait_for(lambda: stepped(url, bot) > seen or bot.run.proc.poll() is not None, timeout=30,
                         what=f"{bot.bot_id} to decide on its candle {bot.pushed - 1}")
                assert bot.run.proc.poll() is None, bot.run.output
        if done(logged(url)):
            return
    raise AssertionError("not reached: " + "\n".join(b.run.output for b in bots))


def test_three_paper_bots_on_one_postgres_log_survive_sigkills_without_touching_each_other(tmp_path):
    require_postgres()
    url = fresh_pg_url()
    open_store(url).close()
    bots = [Bot(name, tmp_path, url) for name in BOTS]
    try:
        for bot in bots:
            bot.start()
        filled_bots = lambda evs: {bot_of_runs(url).get(e.run_id) for e in evs if type(e).__name__ == "OrderFilled"}
        trade_until(url, bots, lambda evs: filled_bots(evs) >= set(BOTS), most=bots[0].replay.signal + 4)
        killed: set[uuid.UUID] = set()
        for bot in bots:  # each killed while the others trade on, then restarted
            others = [b for b in bots if b is not bot]
            ended = {e.originator_id for e in kinds(url, "RunEnded")}
            (running,) = [r for r, b in bot_of_runs(url).items() if b == bot.bot_id and r not in ended]
            bot.kill()
            killed.add(running)
            trade_until(url, others, lambda evs: True, most=1)
            bot.start()
            # the restart closed its own killed run, and no run of the bots still trading
            assert {e.originator_id for e in kinds(url, "RunEnded")} == killed
            trade_until(url, bots, lambda evs: True, most=1)
    finally:
        for bot in bots:
            if bot.run is not None and bot.run.proc.poll() is None:
                assert bot.run.stop() == 0, bot.run.output
            bot.stand.stop()

    evs = logged(url)
    runs = {e.originator_id: e for e in evs if type(e).__name__ == "RunStarted"}
    bot_of = {r: e.bot for r, e in runs.items()}
    assert Counter(bot_of.values()) == {name: 2 for name in BOTS}  # each bot: the killed run and its restart
    assert all(runs[r].bot_id == bot_of[r] for r in runs)
    ended = [e for e in evs if type(e).__name__ == "RunEnded"]
    assert len(ended) == 6 and Counter(e.status for e in ended) == {"abandoned": 3, "stopped": 3}
    for e in ended:  # every run was ended by its own bot: itself, or the same bot's next run
        assert bot_of[e.run_id] == bot_of[e.originator_id], f"{bot_of[e.run_id]} ended {bot_of[e.originator_id]}'s run"
    placed = [e for e in evs if type(e).__name__ == "OrderPlaced"]
    assert len({e.client_order_id for e in placed}) == len(placed)  # no order twice
    for e in placed:
        assert e.client_order_id.startswith(f"tc-{bot_of[e.run_id]}-") and e.product == runs[e.run_id].product
    assert {bot_of[e.run_id] for e in placed} == set(BOTS)
    assert all(b.stand.order_count() == 0 for b in bots)  # paper orders never reach a venue

    # Books: every order ends terminal; what a killed run left working was reconciled by its own bot's restart.
    orders, first_run = {}, {}
    for e in evs:
        if hasattr(e, "client_order_id") and type(e).__name__ == "OrderPlaced":
            first_run[e.originator_id] = e.run_id
        if e.originator_id in first_run and type(e).__module__ == "domain.order":
            orders[e.originator_id] = e.mutate(orders.get(e.originator_id))
            if type(e).__name__ == "OrderReconciled":
                assert bot_of[e.run_id] == bot_of[first_run[e.originator_id]], "another bot reconciled an order"
    assert all(o.status in TERMINAL for o in orders.values())
    fills = defaultdict(Decimal)
    for e in evs:
        if type(e).__name__ in ("OrderFilled", "OrderPartiallyFilled", "FillDiscovered"):
            order = orders[e.originator_id]
            fills[(first_run[e.originator_id], order.product)] += e.quantity if order.side.value == "BUY" else -e.quantity
    con = runner.open_readmodel(tmp_path / "readmodel.duckdb")
    try:
        app = open_store(url)
        try:
            runner.catch_up(app, con, runner.ALL_PROJECTIONS, 5000)
        finally:
            app.close()
        projected = {(uuid.UUID(str(r)), p): Decimal(q) for r, p, q in
                     con.execute("SELECT run_id, product, quantity FROM positions").fetchall()}
        bots_in_model = dict(con.execute("SELECT run_id::VARCHAR, bot_id FROM runs").fetchall())
    finally:
        con.close()
    assert {k: v for k, v in projected.items() if v} == {k: v for k, v in fills.items() if v}
    assert {uuid.UUID(r): b for r, b in bots_in_model.items()} == bot_of

    verify = subprocess.run([sys.executable, "-m", "api.cli", "audit", "verify", "--store", url], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    listed = subprocess.run([sys.executable, "-m", "api.cli", "bots", "--store", url], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == sorted(BOTS)
