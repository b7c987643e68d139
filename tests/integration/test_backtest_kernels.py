"""A backtest over the log computes its indicators with kernels.py's loops when the process has not loaded
pandas, and with pandas' kernels when it has: the two runs write the same log, event for event."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading import backtest
from application.trading.backtest import candles_of, plan_backtest, run_planned_backtest
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings

RUN = uuid.UUID("00000000-0000-4000-8000-00000000ce11")


def _run(url: str, candles, pandas_loaded: bool, monkeypatch) -> tuple[dict, list]:
    monkeypatch.setattr(backtest, "_pandas_loaded", lambda: pandas_loaded)
    store = open_store(url)
    try:
        import_candles(store, candles, EventMeta(candles[-1].end, actor="import"))
        settings = load_settings(env={})
        plan = plan_backtest(logged_candles(store, "BTC-USD", "1h"), candles[200].start, None,
                             settings.data.indicator_warmup)
        summary = run_planned_backtest(
            store, plan, exchange=paper_exchange(settings, id_prefix="paper-k"), strategy=decision_model(settings),
            settings=loop_settings(settings, flush_every=500), initial_balance=D(10000), config_hash="k",
            code_version="k", run_id=RUN)
        log = [json.dumps([e.notification_id, type(e.event).__name__, e.event.model_dump(mode="json")],
                          sort_keys=True, default=str) for e in store.iter_log()]
        return vars(summary), log
    finally:
        store.close()


@pytest.mark.parametrize("first, last", [("2017-07-01", "2017-11-01"), ("2019-01-01", "2019-04-01")])
def test_the_python_kernels_and_pandas_write_the_same_run(tmp_path, monkeypatch, first, last):
    frame = read_candle_file(bundled_candles_path()).frame
    candles = candles_of(frame[(frame.index >= first) & (frame.index < last)], "BTC-USD", "1h")
    python = _run(f"sqlite:///{tmp_path}/python.db", candles, False, monkeypatch)
    pandas = _run(f"sqlite:///{tmp_path}/pandas.db", candles, True, monkeypatch)
    assert python[0] == pandas[0]
    assert python[1] == pandas[1]
    assert python[0]["decisions"] > 1500 and python[0]["orders"] > 0
