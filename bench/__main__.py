"""`make bench`: run every benchmark and print one JSON object of figures.

`python -m bench NAME...` runs only the named ones (e.g. `python -m bench backup api`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys

BENCHMARKS = ("eventstore", "backtest", "indicators", "projections", "replay", "backup", "api")


def main() -> None:
    wanted = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    figures: dict = {}
    for name in wanted:
        module_name = f"bench.bench_{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures.update(importlib.import_module(module_name).run())
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
