"""Reading the bundled candle file, recording it, reading it back and computing its indicators imports neither
pandas nor pyarrow (~0.25 s of a short process such as `tradecore backtest --bundled`): the plain CSV path
(infrastructure/candles/plain.py) and the indicator kernels (domain/indicators/kernels.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from api.bootstrap import open_store
from application.trading.candle_history import import_candles, logged_candles, candles_from_columns
from domain.events import EventMeta
from domain.indicators.cipher import indicator_columns
from infrastructure.candles.files import bundled_candles_path, read_candle_file
import numpy as np

parsed = read_candle_file(bundled_candles_path())
names = ("open", "high", "low", "close", "volume")
candles = candles_from_columns("BTC-USD", "1h", parsed.starts(), [parsed.values[n].tolist() for n in names])
app = open_store(sys.argv[1])
import_candles(app, candles, EventMeta(candles[-1].end, actor="import"))
logged = logged_candles(app, "BTC-USD", "1h").candles
app.close()
arrays = tuple(np.array([float(getattr(c, n)) for c in logged]) for n in names)
columns = indicator_columns(arrays, [c.start for c in logged])
print(len(logged), int(np.count_nonzero(columns["buy_signal"])),
      ",".join(m for m in ("pandas", "pyarrow") if m in sys.modules) or "-")
"""


def test_the_bundled_candles_and_their_indicators_need_no_pandas(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, f"sqlite:///{tmp_path}/events.db"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, buys, loaded = done.stdout.split()
    assert int(count) == 20_111 and int(buys) > 0
    assert loaded == "-", f"imported: {loaded}"


WHOLE_COMMAND = """
import runpy, sys
sys.argv = ["tradecore", "backtest", "--bundled", "--store", sys.argv[1], "--json"]
try:
    runpy.run_module("api.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(",".join(m for m in ("pandas", "pyarrow", "numpy.ma") if m in sys.modules) or "-", file=sys.stderr)
sys.exit(code)
"""


def test_the_whole_bundled_backtest_command_imports_no_pandas(tmp_path):
    done = subprocess.run([sys.executable, "-c", WHOLE_COMMAND, f"sqlite:///{tmp_path}/events.db"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"candles": 20111' in done.stdout
    loaded = done.stderr.strip().splitlines()[-1]
    assert loaded == "-", f"imported: {loaded}"
