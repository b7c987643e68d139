"""`make bench`: run every benchmark, then print each figure beside its target and whether it was met.

`python -m bench NAME...` runs only the named ones (e.g. `python -m bench backtest api`). The machine's
load average (os.getloadavg: 1, 5, 15 minutes) is printed at the start and at the end: the machine is
shared, and a figure means little without it. The projections and backup benchmarks share one 1M-event
log, built once into a temporary file (or kept at TRADECORE_BENCH_LOG). Stdout: the table, then one JSON
object of every figure (the table's verdicts under "verdicts").
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone

from bench.targets import TARGETS

BENCHMARKS = ("eventstore", "backtest", "startup", "year", "indicators", "projections", "replay", "backup", "api",
              "fleet")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} cores)"


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(figures: dict) -> tuple[list[str], dict]:
    """One line per figure: measured, target, verdict (MET / MISSED / -, no target or no figure)."""
    lines, verdicts = [], {}
    width = max((len(k) for k in figures), default=10)
    lines.append(f"{'figure':<{width}}  {'measured':>16}  {'target':>14}  verdict")
    for key, value in figures.items():
        target = TARGETS.get(key)
        if target is None:
            lines.append(f"{key:<{width}}  {_text(value):>16}")
            continue
        met = target.met(value)
        verdicts[key] = {None: "no figure", True: "met", False: "missed"}[met]
        wanted = f"{target.op} {_text(target.value)}{(' ' + target.unit) if target.unit else ''}"
        lines.append(f"{key:<{width}}  {_text(value):>16}  {wanted:>14}  {verdicts[key].upper()}  ({target.what})")
    for key, target in TARGETS.items():  # a target whose benchmark ran but gave no figure
        if key not in figures and any(key.startswith(p) for p in _prefixes(figures)):
            verdicts[key] = "no figure"
            lines.append(f"{key:<{width}}  {'-':>16}  {target.op} {_text(target.value)} {target.unit}  NO FIGURE")
    return lines, verdicts


def _prefixes(figures: dict) -> set[str]:
    return {k.split("_")[0] + "_" for k in figures}


def main() -> None:
    wanted = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    started = time.monotonic()
    load_start = _load()
    print(f"bench: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average at start {load_start}", flush=True)
    scratch = None
    if "TRADECORE_BENCH_LOG" not in os.environ and {"projections", "backup"} <= set(wanted):
        scratch = tempfile.mkdtemp(prefix="tradecore-bench-log-")
        os.environ["TRADECORE_BENCH_LOG"] = os.path.join(scratch, "events.db")
    figures: dict = {}
    seconds: dict = {}
    try:
        for name in wanted:
            print(f"running {name} ... (load {_load()})", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                figures.update(importlib.import_module(f"bench.bench_{name}").run())
            except Exception as exc:  # noqa: BLE001 - one benchmark's failure is reported, the others still run
                traceback.print_exc()
                figures[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
            seconds[name] = round(time.monotonic() - began, 1)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
            del os.environ["TRADECORE_BENCH_LOG"]
    load_end = _load()
    lines, verdicts = table(figures)
    print("\n".join(lines))
    missed = [k for k, v in verdicts.items() if v != "met"]
    print(f"targets: {sum(v == 'met' for v in verdicts.values())} of {len(verdicts)} met"
          + (f"; not met: {', '.join(missed)}" if missed else ""))
    print(f"benchmark seconds: {json.dumps(seconds)}; whole run {time.monotonic() - started:.0f} s")
    print(f"load average at start {load_start}; at end {load_end}")
    print(json.dumps({**figures, "verdicts": verdicts, "bench_seconds": seconds,
                      "load_average_start": load_start, "load_average_end": load_end}, indent=2))


if __name__ == "__main__":
    main()
