"""A plain candle CSV is read without pandas (infrastructure/candles/plain.py) into exactly what the general
path (formats.read_rows + validation.validate) gives; any other file is left to the general path."""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.candles.formats import read_rows
from infrastructure.candles.plain import read_plain_csv
from infrastructure.candles.validation import validate

HOUR_US = 3_600_000_000


def _general(path: Path, granularity: str = "1h", step_us: int = HOUR_US, mapping: dict | None = None):
    return validate(read_rows(path, mapping or {}), step_us, granularity)


def _assert_same(plain, general) -> None:
    assert plain is not None
    pd.testing.assert_frame_equal(plain.frame, general.frame)
    assert (plain.starts_us == general.starts_us).all()
    for name, values in plain.values.items():
        assert [str(v) for v in values] == [str(v) for v in general.values[name]]
    assert (plain.rejected, plain.duplicates, plain.gaps, plain.source_rows) == \
        (general.rejected, general.duplicates, general.gaps, general.source_rows)
    assert plain.starts() == list(general.frame.index.to_pydatetime())


def _write(tmp_path: Path, lines: list[str], name: str = "c.csv", ending: str = "\n") -> Path:
    path = tmp_path / name
    data = (ending.join(lines) + ending).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _rows(times: list[str], seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for t in times:
        o, c = rng.randint(9000, 9100), rng.randint(9000, 9100)
        high, low = max(o, c) + rng.randint(0, 30), min(o, c) - rng.randint(0, 30)
        out.append(f"{t},{o}.{rng.randint(0, 99):02d},{high}.99,{low},{c},{rng.randint(0, 500)}.{rng.randint(0, 9999)}")
    return out


def test_the_bundled_file_is_plain_and_reads_as_the_general_path_reads_it():
    path = bundled_candles_path()
    _assert_same(read_plain_csv(path, {}, HOUR_US, "1h"), _general(path))
    assert type(read_candle_file(path).frame) is pd.DataFrame


START = datetime(2024, 2, 28, 20, tzinfo=UTC)
HOURS = [START + timedelta(hours=k) for k in range(60) if k not in (7, 8, 30)]  # gaps, a leap day


@pytest.mark.parametrize("notation", [
    lambda t: t.strftime("%Y-%m-%d %I-%p"),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda t: t.strftime("%Y-%m-%d %H:%M:%S"),
    lambda t: t.strftime("%Y-%m-%dT%H:%M+00:00"),
    lambda t: str(int(t.timestamp())),
    lambda t: str(int(t.timestamp()) * 1000),
])
@pytest.mark.parametrize("ending, name", [("\n", "c.csv"), ("\r\n", "c.csv"), ("\n", "c.csv.gz")])
def test_plain_files_in_every_notation_read_as_the_general_path_reads_them(tmp_path, notation, ending, name):
    rows = _rows([notation(t) for t in HOURS])
    random.Random(5).shuffle(rows)  # out of order: sorted by start
    path = _write(tmp_path, ["time,open,high,low,close,volume"] + rows, name, ending)
    _assert_same(read_plain_csv(path, {}, HOUR_US, "1h"), _general(path))


def test_a_banner_and_a_mapped_volume_column(tmp_path):
    header = "date,open,high,low,close,volume_btc,VolumeFrom"
    rows = [r + ",5" for r in _rows([t.strftime("%Y-%m-%d %I-%p") for t in HOURS])]
    path = _write(tmp_path, ["CryptoDataDownload banner,https://example.org", header] + rows)
    mapping = {"volume": "VolumeFrom"}
    _assert_same(read_plain_csv(path, mapping, HOUR_US, "1h"), _general(path, mapping=mapping))


def test_daily_dates(tmp_path):
    days = [f"2024-03-{d:02d}" for d in range(1, 20)]
    path = _write(tmp_path, ["date,open,high,low,close,volume"] + _rows(days))
    step = 24 * HOUR_US
    _assert_same(read_plain_csv(path, {}, step, "1d"), _general(path, "1d", step))


@pytest.mark.parametrize("change", [
    lambda rows: rows + [rows[3]],  # a duplicate start
    lambda rows: rows[:5] + ['"2024-02-29 03-AM",1,2,1,1,1'] + rows[5:],  # quotes
    lambda rows: rows[:5] + [""] + rows[5:],  # a blank line
    lambda rows: rows[:5] + [rows[5] + ",9"] + rows[6:],  # a field too many
    lambda rows: rows[:5] + ["2024-02-29 03-AM,1,0.5,1,1,1"] + rows[6:],  # high below low
    lambda rows: rows[:5] + ["2024-02-29 03-AM,1e1,20,1,10,1"] + rows[6:],  # an exponent
    lambda rows: rows[:5] + ["2024-02-29 03-AM,-1,2,1,1,1"] + rows[6:],  # a sign
    lambda rows: rows[:5] + ["2024-02-29 00-AM,1,2,1,1,1"] + rows[6:],  # no such hour
    lambda rows: rows[:5] + ["2023-02-29 03-AM,1,2,1,1,1"] + rows[6:],  # no such day
    lambda rows: rows[:5] + ["2024-02-29 3-AM,1,2,1,1,1"] + rows[6:],  # another spelling of the hour
    lambda rows: rows[:5] + ["2024-02-29T03:30:00Z,1,2,1,1,1"] + rows[6:],  # not on the hour, another notation
    lambda rows: rows[:5] + ["2024-02-29 03-AM,10,10.0,10,10,1"] + rows[6:],  # equal as floats, not as text
    lambda rows: rows[:5] + ["2024-02-29 03-AM,10.00000000000000001,10,10,10,1"] + rows[6:],  # open above high, exactly
])
def test_anything_but_a_plain_file_of_candles_goes_the_general_way(tmp_path, change):
    rows = change(_rows([t.strftime("%Y-%m-%d %I-%p") for t in HOURS]))
    path = _write(tmp_path, ["time,open,high,low,close,volume"] + rows)
    plain = read_plain_csv(path, {}, HOUR_US, "1h")
    general = _general(path)
    if plain is not None:  # only a file whose every row is a candle may be read the plain way
        assert not general.rejected and not general.duplicates
        _assert_same(plain, general)
    result = read_candle_file(path)
    assert (result.rejected, result.duplicates, result.source_rows) == \
        (general.rejected, general.duplicates, general.source_rows)
    pd.testing.assert_frame_equal(result.frame, general.frame)


def test_mixed_line_endings_and_unknown_mappings_go_the_general_way(tmp_path):
    rows = _rows([t.strftime("%Y-%m-%d %I-%p") for t in HOURS])
    path = tmp_path / "mixed.csv"
    path.write_bytes(("time,open,high,low,close,volume\r\n" + "\n".join(rows) + "\n").encode())
    assert read_plain_csv(path, {}, HOUR_US, "1h") is None
    clean = _write(tmp_path, ["time,open,high,low,close,volume"] + rows)
    assert read_plain_csv(clean, {"turnover": "volume"}, HOUR_US, "1h") is None


def test_a_file_of_another_bar_size_is_refused_as_the_general_path_refuses_it(tmp_path):
    rows = _rows([t.strftime("%Y-%m-%d %I-%p") for t in HOURS])
    path = _write(tmp_path, ["time,open,high,low,close,volume"] + rows)
    with pytest.raises(ValueError) as general:
        _general(path, "1m", 60_000_000)
    with pytest.raises(ValueError) as plain:
        read_plain_csv(path, {}, 60_000_000, "1m")
    assert str(plain.value) == str(general.value)


@pytest.mark.parametrize("micros", [
    [-86_400_000_000, 0, 3_600_000_000, 1_700_000_000_000_000, 253_402_297_200_000_000],  # whole seconds, 1969-9999
    [1_500_000_000_000_000, 1_500_000_000_250_000, -1],  # any microsecond
])
def test_starts_are_the_utc_times_of_their_epoch_microseconds(micros):
    import numpy as np

    from infrastructure.candles.validation import CandleFile

    starts = CandleFile(np.array(micros, dtype=np.int64), {}, [], 0, [], len(micros)).starts()
    assert starts == [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=m) for m in micros]
    assert all(s.tzinfo is UTC and type(s) is datetime for s in starts)
