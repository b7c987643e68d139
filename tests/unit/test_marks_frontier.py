"""The marks tables' frontier (projections/ledger/marks.py ``beyond``): a page's candles are known to have no row
only when each starts after the greatest start the table holds for its product and granularity."""

from __future__ import annotations

import pyarrow as pa

from projections.ledger.marks import beyond


def marks(*rows: tuple[str, str, int]) -> pa.Table:
    return pa.table({"product": [r[0] for r in rows], "granularity": [r[1] for r in rows],
                     "start_us": pa.array([r[2] for r in rows], pa.int64()), "close": ["1"] * len(rows)})


def test_candles_after_the_frontier_are_new_and_move_it():
    known, after = beyond({("BTC-USD", "1h"): 100}, marks(("BTC-USD", "1h", 101), ("BTC-USD", "1h", 300),
                                                          ("ETH-BTC", "1m", 5)))
    assert known is False and after == {("BTC-USD", "1h"): 300, ("ETH-BTC", "1m"): 5}


def test_a_candle_at_or_before_the_frontier_may_have_a_row():
    assert beyond({("BTC-USD", "1h"): 100}, marks(("BTC-USD", "1h", 100)))[0] is None
    known, after = beyond({("BTC-USD", "1h"): 100}, marks(("BTC-USD", "1h", 500), ("BTC-USD", "1h", 7)))
    assert known is None and after == {("BTC-USD", "1h"): 500}
    # another granularity of the same product is another frontier
    assert beyond({("BTC-USD", "1h"): 100}, marks(("BTC-USD", "5m", 7)))[0] is False


def test_no_frontier_known_asks_the_table_and_an_empty_page_changes_nothing():
    assert beyond(None, marks(("BTC-USD", "1h", 1))) == (None, None)
    assert beyond({("A", "1h"): 3}, marks()) == (False, {("A", "1h"): 3})
