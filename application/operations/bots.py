"""The bots of a store: every run belongs to a bot (``RunStarted.bot``); a bot's state is its latest run
and its halts (its own control stream, and the one every bot obeys).

Read from the log alone (``tradecore bots``, ``GET /bots``); nothing is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.utils import get_topic

from application.trading_app import TradingApplication
from domain.control import RunEnded, RunMode, RunStarted, TradingControl, bot_control_id

__all__ = ["BotState", "bot_runs", "list_bots"]


@dataclass
class BotState:
    """One bot: what it trades, its latest run, and whether it is halted (and by which stream)."""

    bot_id: str
    mode: str
    product: str
    granularity: str
    strategy: str
    runs: int
    run_id: uuid.UUID
    started_at: datetime
    status: str  # running (no RunEnded yet) | completed | stopped | failed | abandoned
    ended_at: datetime | None = None
    halted: bool = False
    halted_by: str | None = None  # "bot" (its own stream) or "all" (every bot's)
    halt_reason: str | None = None
    halt_severity: str | None = None

    def to_dict(self) -> dict:
        return {"bot_id": self.bot_id, "mode": self.mode, "product": self.product, "granularity": self.granularity,
                "strategy": self.strategy, "runs": self.runs, "run_id": str(self.run_id),
                "started_at": self.started_at.isoformat(), "status": self.status,
                "ended_at": self.ended_at.isoformat() if self.ended_at else None, "halted": self.halted,
                "halted_by": self.halted_by, "halt_reason": self.halt_reason, "halt_severity": self.halt_severity}


def bot_runs(store: TradingApplication) -> dict[str, list[RunStarted]]:
    """Every bot's runs (their ``RunStarted``), in log order; backtests are not bots and are left out."""
    out: dict[str, list[RunStarted]] = {}
    for logged in store.iter_log(topics=[get_topic(RunStarted)]):
        if logged.event.mode is not RunMode.BACKTEST:
            out.setdefault(logged.event.bot, []).append(logged.event)
    return out


def list_bots(store: TradingApplication) -> list[BotState]:
    """Every paper or live bot that ever ran on the store, by id, with its latest run and its halt."""
    runs = bot_runs(store)
    ended = {e.event.originator_id: e.event for e in store.iter_log(topics=[get_topic(RunEnded)])}
    every = store.get_trading_control()
    bots = []
    for bot, started in sorted(runs.items()):
        latest = started[-1]
        end = ended.get(latest.originator_id)
        state = BotState(bot, latest.mode.value, latest.product, latest.granularity, latest.strategy, len(started),
                         latest.originator_id, latest.occurred_at, end.status if end else "running",
                         end.occurred_at if end else None)
        _halt(state, store.get_trading_control(bot_control_id(bot)), "bot") or _halt(state, every, "all")
        bots.append(state)
    return bots


def _halt(state: BotState, control: TradingControl | None, by: str) -> bool:
    if control is None or not control.halted:
        return False
    state.halted, state.halted_by = True, by
    state.halt_reason, state.halt_severity = control.halt_reason, control.severity.value if control.severity else None
    return True
