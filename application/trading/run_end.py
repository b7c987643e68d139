"""Every run ends: ``RunEnded`` reaches the log even when the run failed while writing its events.

The loop buffers a run's events and writes them in batches; when a batch is what fails (the store
refuses it, the disk is full), finishing the run the ordinary way would try the same batch again.
``end_run_anyway`` first lets the loop finish (writing what it still holds), and when that fails,
records ``RunEnded(status, reason)`` on the run's own stream alone. Backtests call it; a paper or
live runner can call it the same way.
"""

from __future__ import annotations

from datetime import datetime

from application.trading.loop import TradingLoop
from application.trading_app import TradingApplication
from domain.events import EventMeta


def end_run_anyway(loop: TradingLoop, store: TradingApplication, at: datetime, status: str, reason: str,
                   exc: BaseException) -> bool:
    """Record RunEnded for a run that failed (``exc``); True when it reached the log.

    When even RunEnded alone cannot be written (the store is gone), a note saying so is added to
    ``exc`` and False returned: the first error is what the caller reports.
    """
    try:
        loop.finish(at, status, reason)
        return True
    except Exception:  # noqa: BLE001 - the buffered batch cannot be written: end the run without it
        pass
    try:
        run = store.repository.get(loop.run_id)
        if run.ended:
            return True
        run.end(status, reason, EventMeta(at, "system", loop.run_id, None, loop.run_id))
        store.record_in_order(run.collect_events())
        return True
    except Exception as secondary:  # noqa: BLE001 - e.g. the store itself is gone
        exc.add_note(f"recording RunEnded also failed: {secondary!r}")
        return False
