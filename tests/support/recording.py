"""Write test facts the way production does: change aggregates, then ``record_in_order`` their events.

The trading loop, reconciliation and the health watch build aggregates (``Order.place``,
``order.fill``, ``Run.begin``, ``Account.open_account``...) and append what they collected with
``TradingApplication.record_in_order``, one transaction per batch. Tests that need a known log use the
same path, so they test what production writes rather than a second way of writing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.account import Account
from domain.events import EventMeta


def record(store: Any, *aggregates: Any) -> None:
    """Append the pending events of ``aggregates``, in that order, in one transaction."""
    events = [event for aggregate in aggregates for event in aggregate.collect_events()]
    if events:
        store.record_in_order(events)


def funded_account(name: str, amount: Decimal, meta: EventMeta, currency: str = "USD") -> Account:
    """A new account with one deposit (what a paper or backtest run opens with), not yet recorded."""
    account = Account.open_account(name, currency, meta)
    account.deposit(amount, meta)
    return account
