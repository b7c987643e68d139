"""The one eventsourcing Application that owns the log, and the one way to write to it.

The trading loop, reconciliation and the health watch change aggregates (orders, decisions, runs,
accounts, the run's control) and append what they collected with ``record_in_order``: the events of
several aggregates, in the order they happened, in one transaction. The commands here are the writes
that do not come from the loop: candles from imports and feeds, operator controls, incidents,
configuration changes, balance reconciliation and closing an abandoned run. Each reads as
get -> change -> save. Library errors are translated here: a stale write becomes
``ConcurrencyConflict``, a missing stream ``NotFound``.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent

from application.errors import ConcurrencyConflict, NotFound
from application.stored_rows import StoredRows
from domain.account import Account, account_id
from domain.config import CONFIG_LEDGER_ID, ConfigLedger
from domain.control import TRADING_CONTROL_ID, Incident, Run, Severity, TradingControl
from domain.events import DomainEvent, EventMeta
from domain.candle_columns import ClosedCandles
from domain.event_columns import ColumnBatch
from domain.market import Candle, CandleClosed, CandleConflict, CandleRecord, candle_id


@dataclass
class CandleRecording:
    """What recording a batch of candles did."""

    recorded: int = 0
    duplicates: int = 0
    corrected: int = 0
    conflicts: list[CandleConflict] = field(default_factory=list)


class LoggedEvent(NamedTuple):
    """One event of the log with its notification id."""

    notification_id: int
    topic: str
    event: DomainEvent


class TradingApplication(Application):
    """Writes every fact of the bot to one notification log."""

    name = "tradecore"

    def __init__(self, env: dict[str, str], mapper: Mapper, batch_size: int = 1000):
        self._mapper = mapper
        self.batch_size = batch_size
        super().__init__(env=env)

    def construct_mapper(self) -> Mapper:
        return self._mapper

    # --- plumbing --------------------------------------------------------

    def _save(self, *objs: Any) -> None:
        try:
            self.save(*objs)
        except IntegrityError as exc:
            names = ", ".join(f"{type(o).__name__} {getattr(o, 'id', getattr(o, 'originator_id', '?'))}" for o in objs)
            raise ConcurrencyConflict(
                f"another writer changed {names} first; nothing of this command was recorded ({exc})"
            ) from None

    def _get(self, kind: str, aggregate_id: uuid.UUID) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(kind, aggregate_id) from None

    def _put(self, events: Sequence[DomainEvent | ColumnBatch]) -> None:
        """Map and insert events in one transaction (``EventStore.put`` without the
        per-event ``Recording`` objects it builds and nobody here reads). A ``ColumnBatch`` among them
        (HOLD decisions, new candles) is validated per column and encoded as the mapper writes each event."""
        to_row = getattr(self.mapper, "to_row", None)
        insert_rows = getattr(self.recorder, "insert_rows", None)
        if to_row is not None and insert_rows is not None:  # the chained SQLite recorder: no StoredEvents
            insert_rows(self._stored_rows_for(to_row).rows_in_order(events))
            return
        stored = self._stored_rows_for(_as_row(self.mapper.to_stored_event)).rows_in_order(events)
        self.recorder.insert_events([StoredEvent(*row) for row in stored])

    def _stored_rows_for(self, encode: Any) -> StoredRows:
        rows = getattr(self, "_stored_rows", None)
        if rows is None:
            rows = self._stored_rows = StoredRows(encode)
        return rows

    def record_in_order(self, events: Sequence[DomainEvent | ColumnBatch]) -> None:
        """Append events made by several aggregates, in the order they happened, atomically.

        The trading loop's unit of work. A candle already in the log (a second
        run over the same data) is dropped when identical and refused when it
        differs; anything else already there is a concurrency conflict.
        """
        try:
            with paused_gc():
                self._put(events)
            return
        except IntegrityError:
            pass
        kept: list[DomainEvent] = []
        for event in events:
            if isinstance(event, CandleClosed):
                try:
                    record: CandleRecord = self.repository.get(event.originator_id)
                except AggregateNotFoundError:
                    kept.append(event)
                    continue
                if record.values != event.values():
                    raise CandleConflict(
                        Candle(event.product, event.granularity, event.start, *event.values()), record.values
                    )
                continue
            kept.append(event)
        try:
            self._put(kept)
        except IntegrityError as exc:
            streams = ", ".join(dict.fromkeys(f"{type(e).__name__} {getattr(e, 'originator_id', '(batch)')}" for e in kept))
            raise ConcurrencyConflict(
                f"another writer changed the stream of {streams} first; nothing of this batch was recorded ({exc})"
            ) from None

    # --- market ----------------------------------------------------------

    def record_candles(self, candles: Iterable[Candle], meta: EventMeta, on_conflict: str = "refuse",
                       batch_size: int | None = None) -> CandleRecording:
        """Record closed candles in batches (one transaction each, ``batch_size`` candles, the store's by default).

        The same candle again is a no-op; a different candle for a recorded
        start is refused (``on_conflict="refuse"``, returned in ``conflicts``)
        or recorded as ``CandleCorrected`` (``on_conflict="correct"``).
        Each candle's event is dated at its close.
        """
        batch_size = batch_size or self.batch_size
        if on_conflict not in ("refuse", "correct"):
            raise ValueError(f"on_conflict must be 'refuse' or 'correct', not {on_conflict!r}")
        result = CandleRecording()
        batch: dict[uuid.UUID, Candle] = {}
        for candle in candles:
            key = candle_id(candle.product, candle.granularity, candle.start)
            seen = batch.get(key)
            if seen is not None:
                if seen.values() == candle.values():
                    result.duplicates += 1
                else:
                    result.conflicts.append(CandleConflict(candle, seen.values()))
                continue
            batch[key] = candle
            if len(batch) >= batch_size:
                self._record_candle_batch(batch, meta, on_conflict, result)
                batch = {}
        if batch:
            self._record_candle_batch(batch, meta, on_conflict, result)
        return result

    def _record_candle_batch(self, batch: dict[uuid.UUID, Candle], meta: EventMeta, on_conflict: str, result: CandleRecording) -> None:
        try:
            with paused_gc():
                # Straight to the event store: no aggregates to collect from, and save()'s per-object
                # protocol checks cost more than the insert. One product and bar size: as columns.
                candles = list(batch.values())
                if len({(c.product, c.granularity) for c in candles}) == 1:
                    events: Sequence[DomainEvent] | ClosedCandles = ClosedCandles(list(batch), candles, meta)
                    self._put([events])
                else:
                    events = CandleRecord.closed_events(batch.items(), meta)
                    self._put(events)
            result.recorded += len(events)
            return
        except IntegrityError:
            pass  # some are recorded already: sort them out one by one
        if isinstance(events, ClosedCandles):
            events = events.events()
        fresh: list[DomainEvent] = []
        corrections: list[CandleRecord] = []
        for event, candle in zip(events, batch.values()):
            try:
                record: CandleRecord = self.repository.get(event.originator_id)
            except AggregateNotFoundError:
                fresh.append(event)
                continue
            if record.values == candle.values():
                result.duplicates += 1
            elif on_conflict == "correct":
                record.correct(candle, _at(meta, candle.end))
                corrections.append(record)
            else:
                result.conflicts.append(CandleConflict(candle, record.values))
        self._save(*fresh, *corrections)
        result.recorded += len(fresh)
        result.corrected += len(corrections)

    # --- account -------------------------------------------------------------

    def _account(self, name: str, currency: str, meta: EventMeta) -> Account:
        try:
            return self.repository.get(account_id(name))
        except AggregateNotFoundError:
            return Account.open_account(name, currency, meta)

    def reconcile_balance(
        self, currency: str, recorded: Decimal, venue: Decimal, meta: EventMeta, account: str = "main"
    ) -> bool:
        acct = self._account(account, currency, meta)
        changed = acct.reconcile(currency, recorded, venue, meta)
        if changed or acct.version == 1:
            self._save(acct)
        return changed

    # --- configuration ---------------------------------------------------------

    def _ledger(self, meta: EventMeta) -> ConfigLedger:
        try:
            return self.repository.get(CONFIG_LEDGER_ID)
        except AggregateNotFoundError:
            return ConfigLedger.start(meta)

    def change_config(
        self, path: str, new_value: str | None, reason: str, config_hash: str, meta: EventMeta, **in_effect: Any
    ) -> bool:
        """Record one setting's change; False when that value is already in effect.

        Pass ``in_effect=VALUE, knows_effective=True`` when the caller knows the
        effective value (so ``old_value`` is what was really in effect).
        """
        ledger = self._ledger(meta)
        changed = ledger.change(path, new_value, reason, config_hash, meta, **in_effect)
        if changed:
            self._save(ledger)
        return changed

    def set_config_baseline(self, values: dict[str, str], config_hash: str, meta: EventMeta, reason: str = "") -> None:
        ledger = self._ledger(meta)
        ledger.set_baseline(values, config_hash, meta, reason)
        self._save(ledger)

    # --- control, incidents, runs -------------------------------------------

    def _control(self, meta: EventMeta, control_id: uuid.UUID = TRADING_CONTROL_ID) -> TradingControl:
        try:
            return self.repository.get(control_id)
        except AggregateNotFoundError:
            return TradingControl.start(meta, control_id)

    def operator_halt(self, reason: str, severity: Severity | str, meta: EventMeta,
                      control_id: uuid.UUID = TRADING_CONTROL_ID) -> tuple[TradingControl, bool]:
        """An operator's halt (a P0 also requests cancel-all) of one bot's stream or every bot's (the default);
        returns the control and whether it was already halted."""
        control = self._control(meta, control_id)
        already = control.operator_halt(reason, severity, meta)
        self._save(control)
        return control, already

    def request_cancel_all(self, reason: str, meta: EventMeta,
                           control_id: uuid.UUID = TRADING_CONTROL_ID) -> TradingControl:
        control = self._control(meta, control_id)
        control.request_cancel_all(reason, meta)
        self._save(control)
        return control

    def resume_trading(self, reason: str, meta: EventMeta, control_id: uuid.UUID = TRADING_CONTROL_ID) -> TradingControl:
        control = self._control(meta, control_id)
        control.resume(reason, meta)
        self._save(control)
        return control

    def get_trading_control(self, control_id: uuid.UUID = TRADING_CONTROL_ID) -> TradingControl | None:
        try:
            return self.repository.get(control_id)
        except AggregateNotFoundError:
            return None

    def open_incident(self, incident_id: uuid.UUID, meta: EventMeta, *, severity: Severity | str, kind: str, details: str,
                      bot_id: str | None = None) -> Incident:
        incident = Incident.declare(incident_id, meta, severity=severity, kind=kind, details=details, bot_id=bot_id)
        self._save(incident)
        return incident

    def resolve_incident(self, incident_id: uuid.UUID, note: str, meta: EventMeta) -> Incident:
        incident = self._get("incident", incident_id)
        incident.resolve(note, meta)
        self._save(incident)
        return incident

    def end_run(self, run_id: uuid.UUID, status: str, reason: str, meta: EventMeta) -> Run:
        run = self._get("run", run_id)
        run.end(status, reason, meta)
        self._save(run)
        return run

    # --- reading the log ---------------------------------------------------------

    def read_log(self, after: int = 0, limit: int = 1000, topics: Sequence[str] = ()) -> list[LoggedEvent]:
        """One page of the notification log after a notification id, decoded."""
        decode_rows = getattr(self.mapper, "decode_rows", None)
        with paused_gc():
            rows = self.recorder.select_log_rows(after, limit, topics)
            if decode_rows is not None:
                return decode_rows(rows, LoggedEvent)
            decode = self.mapper.decode
            return [LoggedEvent(nid, topic, decode(topic, state)) for nid, topic, state in rows]

    def read_stored(self, after: int = 0, limit: int = 1000, topics: Sequence[str] = ()) -> list[tuple[int, str, bytes]]:
        """One page of the log as stored: (notification id, topic, state), not decoded (a reader of columns)."""
        return self.recorder.select_log_rows(after, limit, topics)

    def iter_log(self, after: int = 0, page: int = 5000, topics: Sequence[str] = ()) -> Iterator[LoggedEvent]:
        """Every event after a notification id, in log order, read page by page and decoded one by one.

        Each event is decoded whole when the consumer asks for it (not a page into a list first): an event
        the consumer drops is freed before the next is made, so the cyclic collector's count of new objects
        stays level and no collection walks a page of live events (events kept count as usual). The
        recorder's ``iter_log_pages`` gives the pages of ``page`` rows (PostgreSQL's fetches the next while
        this one is decoded; with 5,000 rows a page is ready before it is wanted, with 2,000 it was waited
        for; SQLite's reads at most ROWS_PER_READ rows at a time, still in the core's cache when decoded);
        they are closed when the iteration ends, however it ends. The mapper's ``iter_decoded_pages``
        is the iterator returned: one generator for the whole log, not one here around one per page."""
        pages = self.recorder.iter_log_pages
        iter_decoded_pages = getattr(self.mapper, "iter_decoded_pages", None)
        if iter_decoded_pages is not None:
            return iter_decoded_pages(pages(after, page, topics), LoggedEvent)
        return self._decoded_one_by_one(pages(after, page, topics))

    def _decoded_one_by_one(self, log_pages: Iterator[list[tuple[int, str, bytes]]]) -> Iterator[LoggedEvent]:
        """``iter_log`` through the mapper's ``decode`` of one (topic, state) at a time."""
        decode = self.mapper.decode
        with closing(log_pages):
            for rows in log_pages:
                for nid, topic, state in rows:
                    yield LoggedEvent(nid, topic, decode(topic, state))
                del rows

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk decode or append.

    A page of events allocates tens of thousands of small acyclic objects
    (dicts, Decimals, UUIDs); each 700 allocations would otherwise trigger a
    collection that walks them all again, which more than halves throughput.
    Reference counting still frees everything; the collector resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_row(to_stored: Any) -> Any:
    def encode(event: DomainEvent) -> tuple[Any, int, str, bytes]:
        s = to_stored(event)
        return s.originator_id, s.originator_version, s.topic, s.state
    return encode


def _at(meta: EventMeta, occurred_at: datetime) -> EventMeta:
    return EventMeta(occurred_at, meta.actor, meta.correlation_id, meta.causation_id, meta.run_id)
