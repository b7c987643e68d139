"""Runs whose process died end as ``abandoned``: a run never stays "running" for ever.

A run records the process running it in ``RunStarted.process`` (``host:pid:start``). Any process that
opens the store for writing asks, for every run without a ``RunEnded``, whether that process still
lives (``alive``, an adapter: infrastructure/process.py) and ends the runs whose process is gone,
saying why. A run whose process cannot be judged (another host, or recorded before processes were)
is never touched: a live bot of another process or machine is never ended by this.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from eventsourcing.utils import get_topic

from application.errors import ConcurrencyConflict
from application.trading_app import TradingApplication
from domain.control import RunEnded, RunStarted
from domain.events import DomainError, EventMeta

__all__ = ["end_dead_runs"]


def end_dead_runs(store: TradingApplication, alive: Callable[[str], bool | None], finder: str,
                  at: datetime) -> list[uuid.UUID]:
    """End (``abandoned``) every running run whose recorded process is gone; returns their ids."""
    ended = {e.event.originator_id for e in store.iter_log(topics=[get_topic(RunEnded)])}
    dead = [e.event for e in store.iter_log(topics=[get_topic(RunStarted)])
            if e.event.originator_id not in ended and e.event.process and alive(e.event.process) is False]
    done = []
    for started in dead:
        reason = (f"its process {started.process} is gone without recording RunEnded (killed or crashed); "
                  f"found by {finder}")
        try:
            store.end_run(started.originator_id, "abandoned", reason,
                          EventMeta(at, "system", started.originator_id, None, started.originator_id))
        except (ConcurrencyConflict, DomainError):
            continue  # another process ended it first
        done.append(started.originator_id)
    return done
