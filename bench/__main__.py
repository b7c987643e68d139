"""`make bench`: run every benchmark and print one JSON object of figures."""

from __future__ import annotations

import json
import sys

from bench import bench_backtest, bench_eventstore, bench_indicators, bench_projections


def main() -> None:
    figures: dict = {}
    for name, module in (("eventstore", bench_eventstore), ("backtest", bench_backtest), ("indicators", bench_indicators), ("projections", bench_projections)):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures.update(module.run())
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
