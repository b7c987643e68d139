"""Today's backtest results pinned for fixed inputs, so speed work cannot change them.

The bundled candles of 2017-07-01 .. 2018-01-31 (trades, stops, take-profits, halts) are imported into
a fresh SQLite log and backtested from the log (the path `tradecore backtest` takes) with a fixed run
id, and a recorded-candle run (`run_backtest`, the bench's log builder) of 2017-07 .. 2017-10 follows it
in the same log. Pinned: each run's summary, a sha256 over the log's content in log order (each
event's position, type and every field: the runs read no clock and their ids derive from the fixed
run ids and stream positions, so nothing is meant to differ and the whole content is pinned), and
every read-model table's checksum after a full rebuild.

When a change is meant to change results, this test says which figure moved; update the pins in the
same commit and say why in its message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from decimal import Decimal as D

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import candles_of, plan_backtest, run_backtest, run_planned_backtest
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner

RUN = uuid.UUID("00000000-0000-4000-8000-0000000015a1")
RUN_FRAME = uuid.UUID("00000000-0000-4000-8000-0000000015a2")

PINNED_SUMMARY = {
    'candles': '5049',
    'decisions': '5049',
    'drawdown_halt_reason': 'max_drawdown: equity 7937.7696480759 is 20.622304% below the peak 10000 (limit 20%); flat and halted until an operator resumes',
    'drawdown_halted_at': '2017-09-14 20:00:00+00:00',
    'events': '5520',
    'fees': '1097.84325764',
    'fills': '82',
    'final_equity': '7937.7696480759',
    'halts': '5',
    'initial_equity': '10000',
    'max_drawdown_pct': '20.62230351924100',
    'orders': '82',
    'realized_pnl': '-964.3870942841',
    'rejected': '0',
    'trades': '41',
    'wins': '5',
}
PINNED_FRAME_SUMMARY = {
    'candles': '2941',
    'decisions': '2941',
    'drawdown_halt_reason': 'max_drawdown: equity 4007.5565928222 is 20.149519% below the peak 5018.8258543410 (limit 20%); flat and halted until an operator resumes',
    'drawdown_halted_at': '2017-09-14 16:00:00+00:00',
    'events': '6296',
    'fees': '552.95419957',
    'fills': '82',
    'final_equity': '4007.5565928222',
    'halts': '5',
    'initial_equity': '5000',
    'max_drawdown_pct': '20.14951884899750778889883551',
    'orders': '82',
    'realized_pnl': '-439.4892076078',
    'rejected': '0',
    'trades': '41',
    'wins': '6',
}
PINNED_LOG = {
    'AccountOpened': ('f2bfd98b55ad0746100a59a0e738c5b3326f96a0f3b1e9bb1cea68f306de1619', 2),
    'CandleClosed': ('d644d907846bfd5ce1bfcf766efce0268edbb79a652b144238b70195e9f07a76', 8090),
    'ControlStarted': ('46d0e25aa01cc301f925f13edb8959baec989848abf6f68151cf46bccc75492b', 2),
    'DecisionMade': ('3471d90b99d4748fd0232261dccbd30855e6f251f0db747f5f56070aba39742e', 7990),
    'FundsDeposited': ('e22491eb2e9e655c22be1153c01500017f23e64c21327d3beea1b49dd415d109', 2),
    'OrderAccepted': ('aeef5792ac7742690d3b5641ba2e498b55c2d081860f4dc43f6188505ef82567', 164),
    'OrderFilled': ('8ddae5ebd20cf83bd484b5e9d6ab4aa4220481ed5f1f33136ab8123386995b83', 164),
    'OrderPlaced': ('c363687ff1ace34a4d2fcd0c632eb85a71295eeded2978cb8e193fbb0fd5cf1f', 164),
    'OrderSubmitted': ('c4e5abd6d546c0299973a632584bb54c67eb928a413f1e4b51f30645bd4ba042', 164),
    'RiskAssessed': ('1cb4f8d563a394f1ea632b2cdd7b9ae70a2d19e336d695d5876f69aadd0b812c', 201),
    'RunEnded': ('cd32ed90f1351ef5f4e30f0e7ea34f53721f8d06b0de7bc5353fdb9532673645', 2),
    'RunStarted': ('7acd1a9d1516fb530ef2968b24a4057abffcdb55a42f013ded9163ef7265551d', 2),
    'TradingHalted': ('b12ea9c9ca8e71d0c142cb257ff08792c194517c27d903e1fb10956f5adb41bb', 10),
    'TradingResumed': ('a8b9a146512289e8289edc354ea487f6515ad19735cf75a2d79324aa45511123', 8),
}
PINNED_CHECKSUMS = {
    'candles': '867459b5e08a74e31c3bf52f79da16cffe046e96c1ff92fde5ce34ebbe2109ef',
    'decisions': 'b9b62fa43b8961c644be86d12be78e6c82f92730d3e78b94ea7033995251f5e5',
    'risk_assessments': '415cf45e5a06a4db9c1bb95830c1452cc21b85ffb046fa1b26b1c9f9be3d7330',
    'llm_stats': '29d49b0b476f2131e792a9a2ecf972b3e42664deeef1cac19e0ea3c48a7aa577',
    'orders': 'ad8f12ca33f9c67d72b5ccf5cb7eedb674230b9538f996e73628b5a57193cabb',
    'fills': '4ac9497816139babbd80ee4ed511eff272ec5c6c34334a69366dc44922eeaacc',
    'config_history': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'config_drift': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'controls': '50c87ad8975b84cd75167ea12163db7648a54936cb2ccd7bd16f5374c3033cb6',
    'incidents': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'runs': '78fd10595b188a13669227eb439cb9993124baf86bbc52290d3bd891492deb31',
    'positions': '86caabf850feb652bb54b1b3dfe30b380b04d62cf5e7ad9a4cdc111b60fbe069',
    'position_history': 'e7c9bfe9dfcb96920a60e3214870271816d3524c7c4463021a6840990b811d2d',
    'positions__state': '43218c4a438152e310a60d3334f04d9f8276892702f5004e0c6637687719fb4c',
    'positions__orders': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'positions__marks': '97cd06fa0525504ba6a747b86b7af39fd6f8ef2affd81592790ed57a92b84a95',
    'pnl_daily': '65400426abe97a3365fc53e4b422e0b6095309dac29de6eec54c6724e648eab9',
    'equity_curve': '847c13ac7f56bb89eb374030c682540b423c8f4ab84630be97418f23594fa9b0',
    'pnl__state': '30f4f0fc7b8191fde4a087145850ed2c5a1a8fde5055601c7b1efd33cc13c0dc',
    'pnl__orders': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'pnl__marks': '97cd06fa0525504ba6a747b86b7af39fd6f8ef2affd81592790ed57a92b84a95',
    'risk_usage': '02b277846c6a42fc83d7ed50ec524e293f6c57c754e448799fa69f454ac41bd9',
    'risk_usage__state': '43218c4a438152e310a60d3334f04d9f8276892702f5004e0c6637687719fb4c',
    'risk_usage__orders': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'risk_usage__marks': '97cd06fa0525504ba6a747b86b7af39fd6f8ef2affd81592790ed57a92b84a95',
    'alerts': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
}


def summary_of(summary) -> dict:
    return {k: str(v) for k, v in sorted(vars(summary).items())}


def log_digest(store) -> dict[str, tuple[str, int]]:
    """Per event type: sha256 over its events' (log position, fields) in log order, and their count
    (per type, so a change says which events moved)."""
    digests: dict[str, "hashlib._Hash"] = {}
    counts: dict[str, int] = {}
    for logged in store.iter_log():
        event = logged.event
        name = type(event).__name__
        body = event.model_dump(mode="json")
        digests.setdefault(name, hashlib.sha256()).update(
            json.dumps([logged.notification_id, body], sort_keys=True, default=str).encode())
        counts[name] = counts.get(name, 0) + 1
    return {name: (digests[name].hexdigest(), counts[name]) for name in sorted(digests)}


@pytest.fixture(scope="module")
def pinned_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pinned")
    frame = read_candle_file(bundled_candles_path()).frame
    history = frame[(frame.index >= "2017-07-01") & (frame.index < "2018-02-01")]
    candles = candles_of(history, "BTC-USD", "1h")
    store = open_store(f"sqlite:///{tmp / 'events.db'}")
    import_candles(store, candles, EventMeta(candles[-1].end, actor="import"))
    settings = load_settings(env={})
    plan = plan_backtest(logged_candles(store, "BTC-USD", "1h"), candles[100].start, None,
                         settings.data.indicator_warmup)
    summary = run_planned_backtest(
        store, plan, exchange=paper_exchange(settings, id_prefix="paper-pin"), strategy=decision_model(settings),
        settings=loop_settings(settings, flush_every=500), initial_balance=D(10000), config_hash="pin",
        code_version="pin", run_id=RUN)
    other = frame[(frame.index >= "2017-07-01") & (frame.index < "2017-11-01")]
    frame_summary = run_backtest(
        store, other, exchange=paper_exchange(settings, id_prefix="paper-pin2"), strategy=decision_model(settings),
        settings=loop_settings(settings, product="ETH-USD", flush_every=250), initial_balance=D(5000),
        config_hash="pin", code_version="pin", run_id=RUN_FRAME)
    digest = log_digest(store)
    con = runner.open_readmodel(tmp / "rm.duckdb")
    runner.rebuild(store, con, runner.ALL_PROJECTIONS, 5000)
    sums = runner.checksums(con)
    con.close()
    store.close()
    return summary_of(summary), summary_of(frame_summary), digest, sums


def test_the_backtest_summaries_are_todays(pinned_run):
    summary, frame_summary, _, _ = pinned_run
    assert summary == PINNED_SUMMARY
    assert frame_summary == PINNED_FRAME_SUMMARY


def test_the_log_content_is_todays(pinned_run):
    _, _, digest, _ = pinned_run
    assert digest == PINNED_LOG  # {event type: (sha256, events)}


def test_every_read_model_checksum_is_todays(pinned_run):
    *_, sums = pinned_run
    assert sums == PINNED_CHECKSUMS
