"""logged_candles reads each series back as the store's mapper decodes it, also from pages where series of
several products and bar sizes, corrections and names JSON writes escaped lie interleaved; candles_from_columns
makes the candles Candle(...) makes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from api.bootstrap import open_store
from application.trading.candle_history import CANDLE_TOPICS, candles_from_columns, import_candles, logged_candles
from domain.events import EventMeta
from domain.market import Candle, granularity_delta

T0 = datetime(2021, 3, 1, tzinfo=timezone.utc)
SERIES = (("BTC-USD", "1h"), ("ETH-USD", "1h"), ("BTC-USD", "5m"), ("ÉTH-€", "1h"))


def _series(product: str, granularity: str, count: int, shift: int = 0) -> list[Candle]:
    step = granularity_delta(granularity)
    return [Candle(product, granularity, T0 + k * step, D(f"{100 + k}.{shift}5"), D(f"{110 + k}.5"), D(f"{90 + k}"),
                   D(f"{105 + k}.125"), D(f"{k}.00{shift}")) for k in range(count)]


def _record(url: str, candles: list[Candle]) -> None:
    """Import ``candles`` into the store at ``url`` as `tradecore data import` does, then close it (a later
    reader is a new store object, so the import's hand-over to logged_candles does not apply)."""
    store = open_store(url)
    try:
        import_candles(store, candles, EventMeta(T0, actor="import"))
    finally:
        store.close()


def test_candles_made_from_columns_are_candles_made_one_by_one():
    made = _series("BTC-USD", "1h", 3)
    columns = [[getattr(c, name) for c in made] for name in ("open", "high", "low", "close", "volume")]
    again = candles_from_columns("BTC-USD", "1h", [c.start for c in made], columns)
    assert again == made and list(map(hash, again)) == list(map(hash, made))
    assert [list(c.__dict__.items()) for c in again] == [list(c.__dict__.items()) for c in made]


def test_interleaved_series_read_back_as_the_mapper_decodes_them(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        wanted = {key: _series(*key, 60) for key in SERIES}
        for at in range(0, 60, 15):  # each series recorded in runs of 15, one after another: mixed pages
            for key, candles in wanted.items():
                import_candles(store, candles[at:at + 15], EventMeta(T0, actor="import"))
        corrected = _series("ETH-USD", "1h", 60, shift=7)[20:25]
        assert import_candles(store, corrected, EventMeta(T0, actor="import"), on_conflict="correct").corrected == 5
        wanted["ETH-USD", "1h"][20:25] = corrected
        decoded: dict[tuple[str, str], dict[datetime, Candle]] = {}
        for logged in store.iter_log(topics=CANDLE_TOPICS, page=1000):
            e = logged.event
            decoded.setdefault((e.product, e.granularity), {})[e.start] = Candle(
                e.product, e.granularity, e.start, e.open, e.high, e.low, e.close, e.volume)
    finally:
        store.close()
    reader = open_store(f"sqlite:///{tmp_path}/events.db")  # nothing an import handed over: every candle read
    try:
        for key, candles in wanted.items():
            read = logged_candles(reader, *key).candles
            assert read == candles == [decoded[key][s] for s in sorted(decoded[key])], key
            assert {c.start.tzinfo for c in read} == {timezone.utc}
        assert logged_candles(reader, "ETH-USD", "5m").candles == []
    finally:
        reader.close()


def test_a_page_of_one_series_reads_back_as_recorded(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    candles = _series("BTC-USD", "1h", 500)
    _record(url, candles)
    reader = open_store(url)
    try:
        assert logged_candles(reader, "BTC-USD", "1h").candles == candles
    finally:
        reader.close()


def test_the_doubles_read_beside_the_candles_are_their_values_nearest_floats(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    candles = _series("BTC-USD", "1h", 300)
    candles[7] = Candle("BTC-USD", "1h", candles[7].start, D("0.1000000000000000055511151231257827"), D("1E+3"),
                        D("0.1"), D("0.30000000000000004"), D("0"))  # texts float() and Decimal read differently
    _record(url, candles)
    reader = open_store(url)
    try:
        logged = logged_candles(reader, "BTC-USD", "1h")
    finally:
        reader.close()
    names = ("open", "high", "low", "close", "volume")
    nearest = [[float(getattr(c, name)) for c in logged.candles] for name in names]
    assert [list(column) for column in logged.floats_of(logged.candles)] == nearest
    run = logged.before(candles[250].start, 40) + logged.between(candles[250].start, candles[260].start)
    assert [list(column) for column in logged.floats_of(run)] == [column[210:260] for column in nearest]
    assert logged.floats_of(run[:5] + run[6:]) is None  # not a run of the candles: made from the candles instead
    assert logged.floats_of([]) is None
    logged.candles.append(Candle("BTC-USD", "1h", candles[-1].end, *candles[0].values()))  # floats of fewer candles
    assert logged.floats_of(logged.candles[:3]) is None
