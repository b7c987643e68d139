"""Whole processes, timed from outside: `tradecore --help` and `tradecore backtest --bundled` into a fresh store.

Each is started once untimed (a warm-up: the OS file cache), then 3 times; the figure is the median
wall time from start to exit (time.perf_counter around subprocess.run); the median CPU seconds
(user + system, from RUSAGE_CHILDREN) are printed beside it: on a shared machine the wall waits for a core. The backtest run imports the
bundled 20,111 candles into a fresh SQLite store, then backtests them from the log and prints the
summary (--json), as a user's first run does; one more run lists which packages it need not import (pandas,
pyarrow, ...) it imported all the same. The breakdown (median CPU seconds, 3 runs after a warm-up each):
``startup_cli_imports_cpu_seconds``, a process that only imports the full CLI (api.cli.main: typer, pydantic,
the events, the store, numpy) and the settings; ``startup_bundled_import_cpu_seconds``, `tradecore data import`
of the bundled file into a fresh store (those imports, reading the file, recording its 20,111 candles);
``startup_backtest_after_import_cpu_seconds``, the backtest's CPU less the import's (the loop and the summary).
The project's modules run from their bytecode, as an installed package's do (`make bench` compiles it first:
`make bytecode`); where PYTHONDONTWRITEBYTECODE is set and nothing was compiled, each start compiles every
module from source (~0.5 s more for the backtest).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api.bootstrap import bundled_candles

TRADECORE = str(Path(sys.executable).parent / "tradecore")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_wall(make_args, runs: int = 3, timeout: float = 120) -> tuple[float, list[float], float]:
    """(median wall seconds, each run's, median CPU seconds: user + system of the finished child)."""
    times, cpus = [], []
    for i in range(runs + 1):
        args = make_args(i)
        cpu = _children_cpu()
        began = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
        if i:  # the first is the warm-up
            times.append(time.perf_counter() - began)
            cpus.append(_children_cpu() - cpu)
    return statistics.median(times), times, statistics.median(cpus)


def run() -> dict:
    help_median, help_runs, help_cpu = _median_wall(lambda i: [TRADECORE, "--help"])
    with tempfile.TemporaryDirectory() as tmp:
        backtest_median, backtest_runs, backtest_cpu = _median_wall(
            lambda i: [TRADECORE, "backtest", "--bundled", "--store", f"sqlite:///{tmp}/run{i}.db", "--json"])
        heavy = _heavy_imports([TRADECORE, "backtest", "--bundled", "--store", f"sqlite:///{tmp}/imports.db", "--json"])
        _, _, record_cpu = _median_wall(
            lambda i: [TRADECORE, "data", "import", str(bundled_candles()[0]), "--store", f"sqlite:///{tmp}/import{i}.db"])
    _, _, imports_cpu = _median_wall(lambda i: [sys.executable, "-c", CLI_IMPORTS])
    return {
        "startup_help_seconds": round(help_median, 3),
        "startup_help_runs": [round(t, 3) for t in help_runs],
        "startup_help_cpu_seconds": round(help_cpu, 3),
        "startup_backtest_bundled_seconds": round(backtest_median, 3),
        "startup_backtest_bundled_runs": [round(t, 3) for t in backtest_runs],
        "startup_backtest_bundled_cpu_seconds": round(backtest_cpu, 3),
        "startup_backtest_bundled_heavy_imports": heavy,
        "startup_cli_imports_cpu_seconds": round(imports_cpu, 3),
        "startup_bundled_import_cpu_seconds": round(record_cpu, 3),
        "startup_backtest_after_import_cpu_seconds": round(backtest_cpu - record_cpu, 3),
    }


CLI_IMPORTS = "import gc; gc.disable(); import api.cli.main, infrastructure.settings.loading; gc.freeze()"
"""What every full CLI process imports, as api.cli.launcher.run_full_cli imports it (the collector off, then frozen)."""

HEAVY = ("pandas", "pyarrow", "duckdb", "psycopg", "numpy.ma")
"""Packages a bundled backtest does not need (each costs a short process 0.01-0.25 s of CPU to import)."""


def _heavy_imports(args: list[str]) -> list[str]:
    """Which of HEAVY the command imported (one more, untimed run, with Python's import-time report on stderr)."""
    done = subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120,
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in imported]


if __name__ == "__main__":
    print(json.dumps(run()))
