"""The account: deposits, withdrawals and reconciled venue balances.

Fills change balances too, but they live on their orders; the account stream
holds only what moves money in or out, or what the venue says we hold.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from domain.aggregate import Aggregate, StartingEvent
from domain.events import EVENT_NAMESPACE, DomainError, DomainEvent, EventMeta, Money, Positive


def account_id(name: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"account:{name}")


class AccountOpened(StartingEvent):
    """Starts the account stream: its name and quote currency."""

    name: str
    currency: str

    @classmethod
    def _aggregate_class(cls):
        return Account

    def apply(self, account: Account) -> None:
        account.name = self.name
        account.currency = self.currency
        account.deposited = Decimal(0)
        account.withdrawn = Decimal(0)


class FundsDeposited(DomainEvent):
    """Money added to the account (the paper or backtest starting balance, or a top-up)."""

    amount: Positive
    currency: str

    def apply(self, account: Account) -> None:
        account.deposited += self.amount


class FundsWithdrawn(DomainEvent):
    """Money taken out of the account."""

    amount: Positive
    currency: str

    def apply(self, account: Account) -> None:
        account.withdrawn += self.amount


class BalanceReconciled(DomainEvent):
    """The venue's balance differed from ours; this records the difference."""

    currency: str
    recorded: Money
    venue: Money
    difference: Money

    def apply(self, account: Account) -> None:
        pass


class Account(Aggregate):
    name: str
    currency: str
    deposited: Decimal
    withdrawn: Decimal

    @classmethod
    def open_account(cls, name: str, currency: str, meta: EventMeta) -> Account:
        return cls._start(AccountOpened.build(account_id(name), 1, meta, name=name, currency=currency))

    def deposit(self, amount: Decimal, meta: EventMeta) -> None:
        self._trigger(FundsDeposited, meta, amount=amount, currency=self.currency)

    def withdraw(self, amount: Decimal, meta: EventMeta, available: Decimal) -> None:
        """Withdraw at most what is available (the caller computes it from fills)."""
        if amount > available:
            raise DomainError(f"cannot withdraw {amount} {self.currency}: only {available} available")
        self._trigger(FundsWithdrawn, meta, amount=amount, currency=self.currency)

    def reconcile(self, currency: str, recorded: Decimal, venue: Decimal, meta: EventMeta) -> bool:
        if recorded == venue:
            return False
        self._trigger(
            BalanceReconciled, meta, currency=currency, recorded=recorded, venue=venue, difference=venue - recorded
        )
        return True
