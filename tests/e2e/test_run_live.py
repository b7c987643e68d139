"""`tradecore run --mode paper|live` as a process, against the local Coinbase stand-in.

Real bundled Coinbase candles are replayed on a 5-minute grid through the
stand-in's WebSocket and REST endpoints; the run's events are read from the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from api.bootstrap import open_store
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.errors import RetryPolicy
from tests.support.coinbase_standin import CoinbaseStandIn, wait_for
from tests.support.market_replay import buy_signal_replay

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, granularity="5m", heartbeat_every=0.2).start()
    replay = buy_signal_replay()
    s.set_history(replay.history)
    s.replay = replay
    yield s
    s.stop()


def run_env(stand, keys: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE__", "SYSTEM__", "TRADING__"))}
    env.update(stand.env())
    if not keys:
        env.pop("EXCHANGE__API_KEY")
        env.pop("EXCHANGE__API_SECRET")
    env.update({"TRADING__GRANULARITY": "5m", "DATA__CANDLE_LIMIT": "100", "EXCHANGE__RETRY_WAIT_SECONDS": "0.05",
                "EXCHANGE__WS_STALE_SECONDS": "3", "EXCHANGE__FILL_WAIT_SECONDS": "0.5", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Run:
    """A `tradecore run` child process whose output is collected in the background."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "run", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def events(url: str, *types: str):
    app = open_store(url)
    try:
        return [e.event for e in app.iter_log() if not types or type(e.event).__name__ in types]
    finally:
        app.close()


def started(stand, run: Run, subscriptions_before: int = 0) -> None:
    wait_for(lambda: sum(m.get("channel") == "candles" for m in stand.subscriptions) > subscriptions_before
             or run.proc.poll() is not None, timeout=30, what="the run to subscribe to candles")
    assert run.proc.poll() is None, run.output


def push_until(stand, run: Run, url: str, done, upto: int | None = None) -> None:
    """Trade the replay's live candles one by one until ``done(events)`` holds."""
    live = stand.replay.live
    for i, candle in enumerate(live[:upto]):
        stand.trade(candle, updates=2)
        if i == 0:
            continue
        wait_for(lambda: any(getattr(e, "start", None) == live[i - 1].start for e in events(url, "CandleClosed"))
                 or run.proc.poll() is not None, timeout=15, what=f"live candle {i - 1} to be stepped")
        assert run.proc.poll() is None, run.output
        if done(events(url)):
            return
    raise AssertionError(f"condition not reached after {upto or len(live)} candles\n{run.output}")


def names(evs) -> list[str]:
    return [type(e).__name__ for e in evs]


def test_live_refuses_to_start_and_names_everything_missing(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    result = subprocess.run([sys.executable, "-m", "api.cli", "run", "--mode", "live", "--no-api", "--store", url],
                            cwd=ROOT, env=run_env(stand, keys=False), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    for missing in ("--live", "SYSTEM__DRY_RUN=false", "EXCHANGE__API_KEY", "EXCHANGE__API_SECRET"):
        assert missing in result.stderr
    with_keys = subprocess.run([sys.executable, "-m", "api.cli", "run", "--mode", "live", "--live", "--no-api",
                                "--store", url], cwd=ROOT, env=run_env(stand, keys=True), capture_output=True,
                               text=True, timeout=60)
    assert with_keys.returncode == 2 and "SYSTEM__DRY_RUN=false" in with_keys.stderr
    assert "EXCHANGE__API_KEY" not in with_keys.stderr
    assert stand.requests == []  # nothing reached the venue


def paper_run_until_a_fill(stand, url: str, env: dict) -> Run:
    """A paper run (no API) fed candles until it has filled an order, then stopped with SIGTERM."""
    run = Run(["--mode", "paper", "--no-api", "--tick", "0.2", "--store", url], env)
    try:
        started(stand, run)
        push_until(stand, run, url, lambda evs: "OrderFilled" in names(evs))
    finally:
        run.code = run.stop()
    return run


def test_paper_run_trades_live_candles_with_paper_fills_and_ends_cleanly_on_sigterm(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    anchors = {"AUDIT__ANCHOR_KEY": "anchor-key-for-the-test", "AUDIT__ANCHOR_DIR": str(tmp_path / "anchors")}
    run = paper_run_until_a_fill(stand, url, {**run_env(stand, keys=False), **anchors})
    assert run.code == 0, run.output
    # the run anchored the head it left, and the log still reaches it
    assert len(list((tmp_path / "anchors").iterdir())) == 1 and "anchor-key-for-the-test" not in run.output
    verify = subprocess.run([sys.executable, "-m", "api.cli", "audit", "verify", "--anchor", str(tmp_path / "anchors"),
                             "--store", url], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **anchors})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    evs = events(url)
    (run_started,) = [e for e in evs if type(e).__name__ == "RunStarted"]
    (run_ended,) = [e for e in evs if type(e).__name__ == "RunEnded"]
    assert run_started.mode.value == "paper" and run_ended.status == "stopped"
    # the product as the venue lists it, recorded before the run traded by it; the run's process is named
    (listing,) = [e for e in evs if type(e).__name__ == "ProductSpecRecorded"]
    assert listing.product == "BTC-USD" and listing.source == "venue" and run_started.process
    assert names(evs).count("OrderFilled") == 1
    fill = next(e for e in evs if type(e).__name__ == "OrderFilled")
    assert fill.fill_id.startswith("paper-")
    assert stand.order_count() == 0  # paper fills never reach the venue
    assert not any(p.endswith("/orders") for _, p, _ in stand.requests)


def test_live_run_killed_between_sending_an_order_and_recording_the_answer_reconciles_on_restart(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    args = ["--mode", "live", "--live", "--no-api", "--tick", "0.2", "--store", url]
    env = run_env(stand, keys=True, SYSTEM__DRY_RUN="false")
    stall = threading.Event()
    stand.knobs.stall_create = stall  # the venue takes the order, then never answers
    first = Run(args, env)
    try:
        started(stand, first)
        live = stand.replay.live
        for i, candle in enumerate(live[: stand.replay.signal + 2]):
            stand.trade(candle, updates=2)
            if stand.order_created.wait(timeout=0 if i <= stand.replay.signal else 15):
                break
            if i:
                wait_for(lambda: any(getattr(e, "start", None) == live[i - 1].start for e in events(url, "CandleClosed")),
                         timeout=15, what=f"candle {i - 1} stepped\n{first.output}")
        assert stand.order_created.is_set(), first.output
        first.proc.kill()  # SIGKILL while the create-order answer is outstanding
        first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    stand.knobs.stall_create = None
    stall.set()
    before = names(events(url))
    assert before.count("OrderPlaced") == 1 and "OrderSubmitted" in before
    assert "OrderAccepted" not in before and "RunEnded" not in before
    assert stand.order_count() == 1

    second = Run(args, env)
    try:
        started(stand, second, subscriptions_before=sum(m.get("channel") == "candles" for m in stand.subscriptions))
    finally:
        code = second.stop()
    assert code == 0, second.output
    assert stand.order_count() == 1  # nothing was sent twice
    evs = events(url)
    kinds = names(evs)
    assert kinds.count("OrderPlaced") == 1
    (reconciled,) = [e for e in evs if type(e).__name__ == "OrderReconciled"]
    (venue_order,) = stand.orders.values()
    assert reconciled.status.value == "ACCEPTED" and reconciled.venue_order_id == venue_order.order_id
    (discovered,) = [e for e in evs if type(e).__name__ == "FillDiscovered"]
    assert discovered.quantity == venue_order.size and discovered.completed
    assert discovered.fill_id == stand.fills[0]["trade_id"]
    assert "OrderFilled" not in kinds  # the fill is recorded once, as discovered, never synthesised
    # The first run recorded the opening USD balance; after the restart, the discovered fill explains every
    # change of the venue's balances, so there is no difference left to reconcile.
    balances = [(e.currency, e.recorded, e.venue) for e in evs if type(e).__name__ == "BalanceReconciled"]
    assert balances == [("USD", Decimal(0), Decimal(10000))]
    ended = [e for e in evs if type(e).__name__ == "RunEnded"]
    assert sorted(e.status for e in ended) == ["abandoned", "stopped"]
    audit = subprocess.run([sys.executable, "-m", "api.cli", "audit", "verify", "--store", url], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_p0_halt_cancels_open_orders_at_the_venue_blocks_entries_and_survives_a_restart(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    args = ["--mode", "live", "--live", "--no-api", "--tick", "0.2", "--store", url]
    env = run_env(stand, keys=True, SYSTEM__DRY_RUN="false")
    other = CoinbaseClient(stand.api_key, stand.api_secret, base_url=stand.base_url, ca_bundle=stand.ca_file,
                           retry=RetryPolicy(attempts=2, initial_wait=0.01))
    resting = other.create_order("manual-1", "BTC-USD", "SELL",
                                 {"limit_limit_gtc": {"base_size": "0.1", "limit_price": "99999", "post_only": False}})
    resting_id = resting["success_response"]["order_id"]
    run = Run(args, env)
    try:
        started(stand, run)
        halt = subprocess.run([sys.executable, "-m", "api.cli", "halt", "--severity", "P0", "--reason", "venue incident",
                               "--actor", "operator:test", "--store", url], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert halt.returncode == 0, halt.stderr
        wait_for(lambda: "cancel-all served" in run.output, timeout=15, what="the cancel-all served")
        assert stand.orders[resting_id].status == "OPEN"  # not the bot's order: a bot touches only its own
        # The buy signal arrives while halted: decided, refused by risk, nothing sent.
        push_until(stand, run, url, lambda evs: any(type(e).__name__ == "RiskAssessed" and not e.approved for e in evs),
                   upto=stand.replay.signal + 2)
    finally:
        code = run.stop()
    assert code == 0, run.output
    assert stand.order_count() == 1  # only the manual order, left open
    evs = events(url)
    assert "OrderPlaced" not in names(evs)
    # The halt is an event: a new run starts halted, until `tradecore resume`.
    again = Run(args, env)
    try:
        started(stand, again, subscriptions_before=sum(m.get("channel") == "candles" for m in stand.subscriptions))
        wait_for(lambda: "trading is halted" in again.output, timeout=10, what="the halt to be noticed on restart")
    finally:
        assert again.stop() == 0, again.output
    resume = subprocess.run([sys.executable, "-m", "api.cli", "resume", "--reason", "checked", "--actor", "operator:test",
                             "--store", url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert resume.returncode == 0, resume.stderr
    assert "TradingResumed" in names(events(url))


def test_run_serves_the_rest_api_beside_the_loop_unless_told_not_to(stand, tmp_path):
    import json
    import re
    import urllib.error
    import urllib.request

    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = run_env(stand, keys=False, READMODEL__PATH=str(tmp_path / "readmodel.duckdb"))
    run = Run(["--mode", "paper", "--port", "0", "--tick", "0.2", "--store", url], env)
    try:
        started(stand, run)
        match = wait_for(lambda: re.search(r"REST API on (http://\S+)", run.output), timeout=20, what="the API url")
        try:
            with urllib.request.urlopen(f"{match.group(1)}/health", timeout=10) as response:
                status, body = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: unhealthy is still an answer from the API
            status, body = exc.code, json.loads(exc.read())
        assert status in (200, 503) and "status" in body
    finally:
        assert run.stop() == 0, run.output


def test_the_health_watch_inside_run_records_and_posts_an_alert(stand, tmp_path):
    from tests.support.webhook_receiver import SECRET, Receiver

    receiver = Receiver()
    url = f"sqlite:///{tmp_path / 'events.db'}"
    # Any used disk crosses a 0.01 % alert level: the disk check must fail, page once, and be recorded.
    env = run_env(stand, keys=False, SYSTEM__ALERT_WEBHOOK_URL=receiver.url, MONITORING__DISK_ALERT_PCT="0.01",
                  MONITORING__DISK_TARGET_PCT="0.005", MONITORING__CHECK_INTERVAL_SECONDS="1")
    run = Run(["--mode", "paper", "--no-api", "--tick", "0.2", "--store", url], env)
    try:
        started(stand, run)
        wait_for(lambda: any(getattr(e, "check", None) == "disk" for e in events(url, "AlertRaised"))
                 or run.proc.poll() is not None, timeout=30, what="the disk alert to be recorded")
        wait_for(lambda: receiver.posts or run.proc.poll() is not None, timeout=15, what="the webhook post")
    finally:
        code = run.stop()
        receiver.close()
    assert code == 0, run.output
    (alert,) = [e for e in events(url, "AlertRaised") if e.check == "disk"]
    assert alert.threshold == Decimal("0.01") and alert.value > alert.threshold
    assert any("disk" in str(post["json"]).lower() for post in receiver.posts)
    assert SECRET not in run.output  # the webhook URL is never printed
