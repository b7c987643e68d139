"""Reading candle files: formats, column matching, per-row rejections, duplicates, gaps."""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infrastructure.candles.files import (
    CandleGap,
    RejectedRow,
    bundled_candles_path,
    parse_granularity,
    read_candle_file,
)

SHARED_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "coinbase_btcusd_1h.csv"
HEADER = "time,open,high,low,close,volume"
GOOD = "10,11,9,10.5,1.25"  # open, high, low, close, volume that pass every check


def write(tmp_path: Path, text: str, name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def hourly_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    return write(tmp_path, "\n".join((header, *rows)) + "\n")


def read_rows(tmp_path: Path, *rows: str, header: str = HEADER):
    """``read_candle_file`` of an hourly CSV of ``rows``."""
    return read_candle_file(hourly_csv(tmp_path, *rows, header=header))


def utc(*args: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


# --- the bundled Coinbase file ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return read_candle_file(bundled_candles_path())


def test_bundled_file_reads_all_20111_hourly_bars_ascending_without_gaps(bundled):
    frame = bundled.frame
    assert len(frame) == 20_111 == bundled.source_rows
    assert frame.index[0] == utc(2017, 7, 1, 11)
    assert frame.index[-1] == utc(2019, 10, 17, 9)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert frame.index.name == "start" and str(frame.index.tz) == "UTC"
    assert (bundled.rejected, bundled.duplicates, bundled.gaps) == ([], 0, [])


def test_bundled_file_keeps_exact_decimals_and_uses_btc_volume(bundled):
    first = bundled.frame.iloc[0]
    assert list(bundled.frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(type(value) is Decimal for value in first)
    assert tuple(first) == tuple(map(Decimal, ("2505.56", "2513.38", "2495.12", "2509.17", "114.6")))
    last = bundled.frame.iloc[-1]
    assert (last["close"], last["volume"]) == (Decimal("8035.88"), Decimal("61.25"))


def test_bundled_file_decompresses_to_the_shared_csv_byte_for_byte():
    if not SHARED_CSV.exists():
        pytest.skip(f"{SHARED_CSV} not present on this machine")
    assert gzip.decompress(bundled_candles_path().read_bytes()) == SHARED_CSV.read_bytes()


def test_bundled_file_reads_equal_to_the_shared_csv(bundled):
    if not SHARED_CSV.exists():
        pytest.skip(f"{SHARED_CSV} not present on this machine")
    shared = read_candle_file(SHARED_CSV)
    pd.testing.assert_frame_equal(bundled.frame, shared.frame)
    assert (shared.rejected, shared.duplicates, shared.gaps) == ([], 0, [])


# --- granularity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1m", timedelta(minutes=1)),
        ("5m", timedelta(minutes=5)),
        ("15m", timedelta(minutes=15)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2h", timedelta(hours=2)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
    ],
)
def test_parse_granularity_supported_text_gives_bar_length(text, expected):
    assert parse_granularity(text) == expected


@pytest.mark.parametrize("text", ["", "1H", "4h", "60", "1w", "hour"])
def test_parse_granularity_unsupported_text_raises_value_error_listing_choices(text):
    with pytest.raises(ValueError, match=r"unsupported granularity .*1m, 5m, 15m, 30m, 1h, 2h, 6h, 1d"):
        parse_granularity(text)


def test_read_unsupported_granularity_raises_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unsupported granularity '3h'"):
        read_candle_file(hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}"), granularity="3h")


# --- time formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", utc(2024, 3, 1, 10)),
        ("2024-03-01T10:00:00.000Z", utc(2024, 3, 1, 10)),
        ("2024-03-01T12:00:00+02:00", utc(2024, 3, 1, 10)),
        ("2024-03-01T05:00:00-05:00", utc(2024, 3, 1, 10)),
        ("2024-03-01 10:00:00", utc(2024, 3, 1, 10)),  # naive: taken as UTC
        ("2024-03-01T10:00", utc(2024, 3, 1, 10)),
        ("1709287200", utc(2024, 3, 1, 10)),  # epoch seconds
        ("1709287200000", utc(2024, 3, 1, 10)),  # epoch milliseconds (> 1e11)
        ("2024-03-01 10-AM", utc(2024, 3, 1, 10)),  # CryptoDataDownload
        ("2024-03-01 10-PM", utc(2024, 3, 1, 22)),
        ("2024-03-01 12-AM", utc(2024, 3, 1, 0)),
        ("2024-03-01 12-PM", utc(2024, 3, 1, 12)),
    ],
)
def test_read_time_format_gives_utc_open_time(tmp_path, text, expected):
    candles = read_candle_file(hourly_csv(tmp_path, f"{text},{GOOD}"))
    assert candles.rejected == []
    assert list(candles.frame.index) == [expected]


def test_read_daily_iso_dates_align_to_utc_midnight(tmp_path):
    path = hourly_csv(tmp_path, f"2024-03-01,{GOOD}", f"2024-03-02,{GOOD}")
    candles = read_candle_file(path, granularity="1d")
    assert list(candles.frame.index) == [utc(2024, 3, 1), utc(2024, 3, 2)]


def test_read_fifteen_minute_epoch_milliseconds_keep_minutes(tmp_path):
    path = hourly_csv(tmp_path, f"1709287200000,{GOOD}", f"1709288100000,{GOOD}")
    candles = read_candle_file(path, granularity="15m")
    assert list(candles.frame.index) == [utc(2024, 3, 1, 10), utc(2024, 3, 1, 10, 15)]
    assert candles.gaps == []


# --- columns -----------------------------------------------------------------------------------


def test_read_column_names_are_matched_case_insensitively_and_stripped(tmp_path):
    candles = read_rows(
        tmp_path, f"2024-01-01T00:00:00Z,{GOOD}", header=" Timestamp ,OPEN, High,low ,Close,VOLUME"
    )
    assert candles.frame.iloc[0]["close"] == Decimal("10.5")


@pytest.mark.parametrize("time_column", ["time", "date", "timestamp", "datetime", "start"])
def test_read_time_column_alias_is_recognised(tmp_path, time_column):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}", header=HEADER.replace("time", time_column))
    assert len(read_candle_file(path).frame) == 1


def test_read_first_time_alias_in_priority_order_wins(tmp_path):
    path = hourly_csv(
        tmp_path,
        f"1704070800,2024-01-01T00:00:00Z,{GOOD}",
        header="date,time,open,high,low,close,volume",
    )
    assert list(read_candle_file(path).frame.index) == [utc(2024, 1, 1)]


def test_read_mapping_takes_volume_from_named_column(tmp_path):
    path = hourly_csv(
        tmp_path,
        "2024-01-01T00:00:00Z,10,11,9,10.5,3.5,35",
        header="time,open,high,low,close,VolumeFrom,VolumeTo",
    )
    candles = read_candle_file(path, columns={"volume": "VolumeFrom"})
    assert candles.frame.iloc[0]["volume"] == Decimal("3.5")


def test_read_mapping_overrides_a_present_volume_and_time_column(tmp_path):
    path = hourly_csv(
        tmp_path,
        "2024-01-01T05:00:00Z,2024-01-01T00:00:00Z,10,11,9,10.5,35,3.5",
        header="time,opened_at,open,high,low,close,volume,base_volume",
    )
    candles = read_candle_file(path, columns={"time": "Opened_At", "volume": "base_volume"})
    assert list(candles.frame.index) == [utc(2024, 1, 1)]
    assert candles.frame.iloc[0]["volume"] == Decimal("3.5")


def test_read_mapping_to_an_absent_column_raises_naming_it(tmp_path):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}")
    with pytest.raises(ValueError, match=r"mapped column 'VolumeFrom' \(for volume\) not found"):
        read_candle_file(path, columns={"volume": "VolumeFrom"})


def test_read_mapping_of_an_unknown_logical_name_raises_naming_it(tmp_path):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}")
    with pytest.raises(ValueError, match="unknown logical column.*vwap"):
        read_candle_file(path, columns={"vwap": "open"})


def test_read_both_volume_btc_and_volume_prefers_base_currency_volume_btc(tmp_path):
    path = hourly_csv(
        tmp_path,
        "2024-01-01 12-AM,BTCUSD,10,11,9,10.5,2,21",
        header="date,symbol,open,high,low,close,volume_btc,volume",
    )
    assert read_candle_file(path).frame.iloc[0]["volume"] == Decimal("2")


def test_read_missing_required_column_raises_naming_missing_and_found_columns(tmp_path):
    path = hourly_csv(tmp_path, "2024-01-01T00:00:00Z,10,11,9,1", header="time,open,high,low,volume")
    with pytest.raises(ValueError) as raised:
        read_candle_file(path)
    message = str(raised.value)
    assert "missing column(s) close" in message
    assert "'time', 'open', 'high', 'low', 'volume'" in message


def test_read_without_time_column_raises_naming_time(tmp_path):
    path = hourly_csv(tmp_path, GOOD, header="open,high,low,close,volume")
    with pytest.raises(ValueError, match=r"missing column\(s\) time;"):
        read_candle_file(path)


def test_read_repeated_column_name_raises_as_ambiguous(tmp_path):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD},10", header=HEADER + ",Open")
    with pytest.raises(ValueError, match="'open' .*appears more than once"):
        read_candle_file(path)


# --- banner, empty files, file types --------------------------------------------------------------


def test_read_banner_line_before_header_is_skipped_and_counted_in_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\r\n"
        "date,symbol,open,high,low,close,volume_btc,volume\r\n"
        "2019-10-17 09-AM,BTCUSD,8051,8056.83,8021.23,8035.88,61.25,492394.56\r\n"
        "2019-10-17 08-AM,BTCUSD,8051,8000,8021.23,8035.88,61.25,492394.56\r\n",
    )
    candles = read_candle_file(path)
    assert list(candles.frame.index) == [utc(2019, 10, 17, 9)]
    assert candles.rejected == [RejectedRow(4, "high '8000' < low '8021.23'")]
    assert candles.source_rows == 2


def test_read_gzipped_csv_gives_the_same_candles_as_plain(tmp_path):
    text = f"{HEADER}\n2024-01-01T01:00:00Z,{GOOD}\n2024-01-01T00:00:00Z,{GOOD}\n"
    plain = write(tmp_path, text)
    zipped = tmp_path / "candles.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    pd.testing.assert_frame_equal(read_candle_file(zipped).frame, read_candle_file(plain).frame)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{HEADER}\n",
        f"{HEADER}\n\n\n",
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n",
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
        "date,symbol,open,high,low,close,volume_btc,volume\n",
    ],
    ids=["empty", "header-only", "header-and-blank-lines", "banner-only", "banner-and-header"],
)
def test_read_file_without_candle_rows_raises_no_candle_rows(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match="no candle rows in .*candles.csv"):
        read_candle_file(path)


def test_read_unsupported_suffix_raises(tmp_path):
    path = write(tmp_path, f"{HEADER}\n", name="candles.json")
    with pytest.raises(ValueError, match="unsupported candle file type"):
        read_candle_file(path)


# --- per-row rejections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f"yesterday,{GOOD}", "unparseable time 'yesterday'"),
        (f"2024-13-01T00:00:00Z,{GOOD}", "unparseable time '2024-13-01T00:00:00Z'"),
        (f",{GOOD}", "missing time"),
        (f"2024-01-01T00:30:00Z,{GOOD}", "time '2024-01-01T00:30:00Z' is not aligned to 1h"),
        (f"1704069000,{GOOD}", "time '1704069000' is not aligned to 1h"),
        ("2024-01-01T00:00:00Z,ten,11,9,10.5,1", "unparseable open 'ten'"),
        ("2024-01-01T00:00:00Z,10,11,9,10.5,1;5", "unparseable volume '1;5'"),
        ("2024-01-01T00:00:00Z,10,11,,10.5,1", "missing low"),
        ("2024-01-01T00:00:00Z,10,NaN,9,10.5,1", "non-finite high 'NaN'"),
        ("2024-01-01T00:00:00Z,10,inf,9,10.5,1", "non-finite high 'inf'"),
        ("2024-01-01T00:00:00Z,10,11,9,10.5,-Infinity", "non-finite volume '-Infinity'"),
        ("2024-01-01T00:00:00Z,0,11,9,10.5,1", "open must be > 0, got '0'"),
        ("2024-01-01T00:00:00Z,10,11,-9,10.5,1", "low must be > 0, got '-9'"),
        ("2024-01-01T00:00:00Z,10,8,9,8.5,1", "high '8' < low '9'"),
        ("2024-01-01T00:00:00Z,10,10.4,9,10.5,1", "high '10.4' < close '10.5'"),
        ("2024-01-01T00:00:00Z,12,11,9,10.5,1", "high '11' < open '12'"),
        ("2024-01-01T00:00:00Z,10,11,9.5,9.2,1", "low '9.5' > close '9.2'"),
        ("2024-01-01T00:00:00Z,9,11,9.5,10.5,1", "low '9.5' > open '9'"),
        ("2024-01-01T00:00:00Z,10,11,9,10.5,-0.01", "negative volume '-0.01'"),
    ],
)
def test_read_invalid_row_is_rejected_with_its_line_and_field(tmp_path, row, reason):
    path = hourly_csv(tmp_path, f"2024-01-01T01:00:00Z,{GOOD}", row, f"2024-01-01T02:00:00Z,{GOOD}")
    candles = read_candle_file(path)
    assert candles.rejected == [RejectedRow(3, reason)]
    assert list(candles.frame.index) == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 2)]
    assert candles.source_rows == 3


def test_read_prices_differing_beyond_float_precision_are_compared_exactly(tmp_path):
    candles = read_rows(
        tmp_path,
        "2024-01-01T00:00:00Z,10.000000000000000001,10.000000000000000000,9,10,1",
        "2024-01-01T01:00:00Z,10.000000000000000001,10.000000000000000001,9,10,1",
    )
    assert candles.rejected == [
        RejectedRow(2, "high '10.000000000000000000' < open '10.000000000000000001'")
    ]
    assert candles.frame.iloc[0]["high"] == Decimal("10.000000000000000001")


def test_read_zero_volume_and_equal_ohlc_are_accepted(tmp_path):
    candles = read_candle_file(hourly_csv(tmp_path, "2024-01-01T00:00:00Z,10,10,10,10,0"))
    assert candles.rejected == [] and candles.frame.iloc[0]["volume"] == Decimal("0")


def test_read_values_keep_their_exact_decimal_text(tmp_path):
    path = hourly_csv(tmp_path, "2024-01-01T00:00:00Z,0.1,0.30,0.1,0.2,0.00000001")
    row = read_candle_file(path).frame.iloc[0]
    texts = ["0.1", "0.30", "0.1", "0.2", "0.00000001"]  # digits and exponent as written, no float noise
    assert [v.as_tuple() for v in row] == [Decimal(t).as_tuple() for t in texts]


def test_read_blank_lines_are_skipped_and_do_not_shift_line_numbers(tmp_path):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}", "", "  ", f"2024-01-01T00:30:00Z,{GOOD}", "")
    candles = read_candle_file(path)
    assert candles.rejected == [RejectedRow(5, "time '2024-01-01T00:30:00Z' is not aligned to 1h")]
    assert candles.source_rows == 2


def test_read_row_with_extra_fields_is_rejected_with_its_line(tmp_path):
    candles = read_rows(
        tmp_path,
        f"2024-01-01T00:00:00Z,{GOOD}",
        f"2024-01-01T01:00:00Z,{GOOD},7",
        f"2024-01-01T02:00:00Z,{GOOD}",
    )
    assert candles.rejected == [RejectedRow(3, "expected 6 fields, found 7")]
    assert len(candles.frame) == 2 and candles.source_rows == 3


def test_read_short_row_is_rejected_for_its_first_missing_field(tmp_path):
    path = hourly_csv(tmp_path, f"2024-01-01T00:00:00Z,{GOOD}", "2024-01-01T01:00:00Z,10,11,9")
    assert read_candle_file(path).rejected == [RejectedRow(3, "missing close")]


def test_read_quoted_line_break_keeps_physical_line_numbers(tmp_path):
    candles = read_rows(
        tmp_path,
        '"2024-01-01T00:00:00Z",10,11,9,"10\n.5",1',
        "2024-01-01T01:00:00Z,10,11,9,10.5,x",
    )
    assert candles.rejected == [
        RejectedRow(2, "unparseable close '10\\n.5'"),
        RejectedRow(4, "unparseable volume 'x'"),
    ]


def test_read_quoted_fields_are_unquoted(tmp_path):
    path = hourly_csv(tmp_path, '"2024-01-01T00:00:00Z","10","11","9","10.5","1"')
    assert read_candle_file(path).frame.iloc[0]["close"] == Decimal("10.5")


# --- duplicates, order, gaps -------------------------------------------------------------------


def test_read_exact_duplicate_rows_are_dropped_and_counted(tmp_path):
    candles = read_rows(
        tmp_path,
        f"2024-01-01T00:00:00Z,{GOOD}",
        f"2024-01-01T01:00:00Z,{GOOD}",
        f"2024-01-01T00:00:00Z,{GOOD}",
        f"1704067200,{GOOD}",  # the same start written as epoch seconds
    )
    assert candles.duplicates == 2
    assert candles.rejected == []
    assert list(candles.frame.index) == [utc(2024, 1, 1, 0), utc(2024, 1, 1, 1)]


def test_read_conflicting_duplicate_keeps_first_and_rejects_later(tmp_path):
    candles = read_rows(
        tmp_path,
        f"2024-01-01T01:00:00Z,{GOOD}",
        "2024-01-01T00:00:00Z,10,11,9,10.5,1",
        "2024-01-01T00:00:00Z,10,11,9,10.6,1",
        "2024-01-01T00:00:00Z,10,11,9,10.7,1",
    )
    assert candles.rejected == [
        RejectedRow(4, "conflicting duplicate of line 3"),
        RejectedRow(5, "conflicting duplicate of line 3"),
    ]
    assert candles.duplicates == 0
    assert candles.frame.loc[utc(2024, 1, 1, 0), "close"] == Decimal("10.5")


def test_read_duplicate_of_a_rejected_row_is_kept(tmp_path):
    path = hourly_csv(tmp_path, "2024-01-01T00:00:00Z,10,8,9,10.5,1", f"2024-01-01T00:00:00Z,{GOOD}")
    candles = read_candle_file(path)
    assert candles.rejected == [RejectedRow(2, "high '8' < low '9'")]
    assert len(candles.frame) == 1


def test_read_shuffled_rows_come_out_sorted_ascending(tmp_path):
    starts = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(50)]
    rows = [f"{s:%Y-%m-%dT%H:%M:%SZ},{GOOD}" for s in starts]
    random.Random(7).shuffle(rows)
    candles = read_candle_file(hourly_csv(tmp_path, *rows))
    assert list(candles.frame.index) == [pd.Timestamp(s) for s in starts]
    assert candles.gaps == []


def test_read_missing_bars_are_reported_as_gaps_not_errors(tmp_path):
    candles = read_rows(
        tmp_path,
        f"2024-01-01T00:00:00Z,{GOOD}",
        f"2024-01-01T01:00:00Z,{GOOD}",
        f"2024-01-01T04:00:00Z,{GOOD}",
        f"2024-01-01T06:00:00Z,{GOOD}",
    )
    hour = lambda h: datetime(2024, 1, 1, h, tzinfo=UTC)  # noqa: E731
    assert candles.gaps == [CandleGap(hour(1), hour(4), 2), CandleGap(hour(4), hour(6), 1)]
    assert candles.rejected == [] and len(candles.frame) == 4


# --- Parquet -------------------------------------------------------------------------------------


def test_read_parquet_with_timestamps_and_floats_gives_shortest_decimals(tmp_path):
    frame = pd.DataFrame(
        {
            "Start": pd.to_datetime(["2024-01-01T01:00:00Z", "2024-01-01T00:00:00Z"]),
            "Open": [0.1, 10.0],
            "High": [0.3, 11.0],
            "Low": [0.1, 9.0],
            "Close": [0.2, 10.5],
            "Volume": [1.25, 3.0],
        }
    )
    path = tmp_path / "candles.parquet"
    frame.to_parquet(path, index=False)
    candles = read_candle_file(path)
    assert list(candles.frame.index) == [utc(2024, 1, 1, 0), utc(2024, 1, 1, 1)]
    assert candles.frame.loc[utc(2024, 1, 1, 1), "open"] == Decimal("0.1")
    assert candles.frame.loc[utc(2024, 1, 1, 1), "close"] == Decimal("0.2")
    assert candles.source_rows == 2 and candles.rejected == []


def test_read_parquet_decimal_and_epoch_ms_columns_stay_exact(tmp_path):
    decimals = pa.decimal128(20, 8)
    table = pa.table(
        {
            "time": pa.array([1704067200000, 1704070800000], pa.int64()),
            "open": pa.array([Decimal("10.12345678"), Decimal("10")], decimals),
            "high": pa.array([Decimal("11"), Decimal("11")], decimals),
            "low": pa.array([Decimal("9"), Decimal("9")], decimals),
            "close": pa.array([Decimal("10.5"), Decimal("10.5")], decimals),
            "volume": pa.array([Decimal("0.00000001"), Decimal("1")], decimals),
        }
    )
    path = tmp_path / "candles.parquet"
    pq.write_table(table, path)
    candles = read_candle_file(path)
    assert list(candles.frame.index) == [utc(2024, 1, 1, 0), utc(2024, 1, 1, 1)]
    assert candles.frame.iloc[0]["open"] == Decimal("10.12345678")
    assert candles.frame.iloc[0]["volume"] == Decimal("0.00000001")


def test_read_parquet_rejections_use_one_based_row_numbers(tmp_path):
    table = pa.table(
        {
            "timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", None],
            "open": [10.0, 10.0, 10.0],
            "high": [11.0, 8.0, 11.0],
            "low": [9.0, 9.0, 9.0],
            "close": [10.5, 10.5, None],
            "volume": [1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "candles.parquet"
    pq.write_table(table, path)
    candles = read_candle_file(path)
    assert candles.rejected == [RejectedRow(2, "high '8' < low '9'"), RejectedRow(3, "missing time")]
    assert len(candles.frame) == 1


def test_read_parquet_naive_timestamps_are_taken_as_utc(tmp_path):
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01 00:00"]),
            "open": [10.0],
            "high": [11.0],
            "low": [9.0],
            "close": [10.5],
            "volume": [1.0],
        }
    )
    path = tmp_path / "candles.parquet"
    frame.to_parquet(path, index=False)
    assert list(read_candle_file(path).frame.index) == [utc(2024, 1, 1)]


def test_read_parquet_missing_column_raises_naming_it(tmp_path):
    path = tmp_path / "candles.parquet"
    frame = pd.DataFrame({"time": [1704067200], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})
    frame.to_parquet(path, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) volume"):
        read_candle_file(path)


def test_read_parquet_without_rows_raises_no_candle_rows(tmp_path):
    path = tmp_path / "candles.parquet"
    pd.DataFrame({c: pd.Series([], dtype="float64") for c in HEADER.split(",")}).to_parquet(path, index=False)
    with pytest.raises(ValueError, match="no candle rows"):
        read_candle_file(path)


def test_a_file_of_another_bar_size_is_refused_naming_the_one_it_has(tmp_path):
    minutes = tmp_path / "minutes.csv"
    minutes.write_text("time,open,high,low,close,volume\n" + "".join(
        f"2024-01-01T00:{m:02d}:00Z,{GOOD}\n" for m in range(30)))
    with pytest.raises(ValueError, match="candles are 0:01:00 apart, not 1h; pass --granularity 1m"):
        read_candle_file(minutes, granularity="1h")
    hours = tmp_path / "hours.csv"
    hours.write_text("time,open,high,low,close,volume\n" + "".join(
        f"2024-01-01T{h:02d}:00:00Z,{GOOD}\n" for h in range(24)))
    with pytest.raises(ValueError, match="candles are 1:00:00 apart, not 5m; pass --granularity 1h"):
        read_candle_file(hours, granularity="5m")
    assert len(read_candle_file(hours, granularity="1h").frame) == 24
