"""What the operators hear about without asking, from the running bot.

``OperationsNotifier`` is a background service of ``tradecore run``. Every few seconds it:

- notifies each ``IncidentOpened`` and ``IncidentResolved`` recorded since it started (by the CLI
  or the REST API), at the incident's severity, so opening a P0 pages at once, not only when the
  health watch later notices the halt;
- judges the trade success rate: winners among the last N closed paper/live trades; below the
  minimum it raises the ``trade_success_rate`` alert (``AlertRaised``, P2), and resolves it
  (``AlertResolved``) once the rate is back at or above it, like every other alert;
- once a day at the configured UTC time, posts the day's trading summary (decisions, fills,
  closed trades, win rate, realized P&L) to the team channel.

Sending goes through an ``AlertSink`` that queues (infrastructure/monitoring/notify.py): nothing
here waits on a channel, so nothing blocks trading.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from eventsourcing.application import AggregateNotFoundError
from application.errors import ConcurrencyConflict
from eventsourcing.utils import get_topic

from application.operations.trade_record import success_rate, trade_record
from application.ports import AlertSink, Clock
from application.trading_app import TradingApplication
from domain.alerts import Alert, alert_id
from domain.control import IncidentOpened, IncidentResolved, Severity
from domain.events import EventMeta

log = logging.getLogger("tradecore.notify")

CHECK = "trade_success_rate"
INCIDENT_TOPICS = (get_topic(IncidentOpened), get_topic(IncidentResolved))


@dataclass(frozen=True)
class NotifierSettings:
    """From ``[monitoring]`` and ``[alerting]``: the success-rate rule and the summary time."""

    success_rate_min_pct: Decimal
    success_rate_window: int
    daily_summary_at: time | None
    check_every_seconds: float = 60.0
    scope: str = "tradecore"


class OperationsNotifier:
    """Incidents, the trade-success-rate alert and the daily summary, for the process that trades."""

    def __init__(self, store: TradingApplication, sink: AlertSink, clock: Clock, settings: NotifierSettings,
                 correlated: Callable[[object], ContextManager] = lambda _id: nullcontext()):
        self.store, self.sink, self.clock, self.settings = store, sink, clock, settings
        self.correlated = correlated  # sets the correlation id of log lines (infrastructure/monitoring/logs.py)
        self.cursor = store.max_notification_id()  # incidents recorded from now on
        self.summary_sent_for = None
        now = clock.now()
        if settings.daily_summary_at is not None and now.time() >= settings.daily_summary_at:
            self.summary_sent_for = now.date()  # started after today's time: the next one is tomorrow's
        self._last_judged: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.incidents: dict = {}  # incident id -> severity, to route its resolution like its opening

    # --- one step -----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Notify new incidents; judge the success rate when due; post the summary when due."""
        self.notify_incidents()
        now = self.clock.now()
        if self._last_judged is None or now - self._last_judged >= timedelta(seconds=self.settings.check_every_seconds):
            self._last_judged = now
            self.judge_success_rate()
        self.post_summary_if_due()

    def notify_incidents(self) -> None:
        for logged in self.store.iter_log(after=self.cursor, topics=INCIDENT_TOPICS):
            self.cursor = logged.notification_id
            with self.correlated(logged.event.correlation_id):  # the incident's id on its log lines
                self._notify_incident(logged.event)

    def _notify_incident(self, event) -> None:
        if isinstance(event, IncidentOpened):
            severity = event.severity.value
            self.incidents[event.originator_id] = severity
            self.sink.alert(severity, f"[{severity}] incident opened: {event.kind}",
                            f"{event.details}\nOpened by {event.actor} at {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC "
                            f"(incident {event.originator_id}).")
        else:
            severity = self.incidents.get(event.originator_id, "OK")
            self.sink.alert("OK" if severity in ("P0", "P1", "OK") else severity,
                            f"[RESOLVED] incident {event.originator_id}",
                            f"{event.note}\nResolved by {event.actor} at {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC.")

    def judge_success_rate(self) -> None:
        s = self.settings
        record = trade_record(self.store, modes=("paper", "live"))
        rate, judged = success_rate(record.trades, s.success_rate_window)
        if rate is None:
            return
        at = self.clock.now()
        meta = EventMeta(at, "health", alert_id(CHECK, s.scope), None, None)
        for _attempt in range(3):
            alert = self._alert()
            if rate < s.success_rate_min_pct:
                fields = dict(severity=Severity.P2, status="critical", value=rate, threshold=s.success_rate_min_pct,
                              unit="%", message=f"{rate}% of the last {judged} closed trades won "
                                                f"(minimum {s.success_rate_min_pct}%)")
                if alert is None:
                    alert = Alert.first(CHECK, meta, scope=s.scope, **fields)
                elif not alert.raise_alert(meta, **fields):
                    return
                title = f"[P2] trade success rate: {rate}%"
                details = (f"{fields['message']}. What to do: review the strategy's recent decisions "
                           "(`tradecore logs analyze`, `tradecore replay`); consider `tradecore halt --severity P2`.")
                severity = "P2"
            elif alert is not None and alert.resolve(meta, value=rate, threshold=s.success_rate_min_pct, unit="%",
                                                     message=f"trade success rate recovered: {rate}%"):
                title, details, severity = (f"[RESOLVED] trade success rate: {rate}%",
                                            f"{rate}% of the last {judged} closed trades won.", "P2")
            else:
                return
            try:
                self.store.record_in_order(alert.collect_events())
            except ConcurrencyConflict:
                continue
            self.sink.alert(severity, title, details)
            return

    def _alert(self) -> Alert | None:
        try:
            return self.store.repository.get(alert_id(CHECK, self.settings.scope))
        except AggregateNotFoundError:
            return None

    def post_summary_if_due(self) -> bool:
        at = self.settings.daily_summary_at
        now = self.clock.now()
        if at is None or now.time() < at or self.summary_sent_for == now.date():
            return False
        self.summary_sent_for = now.date()
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        record = trade_record(self.store, start, now, modes=("paper", "live"))
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(record.decisions.items())) or "none"
        rate = (f"{Decimal(record.wins) * 100 / Decimal(len(record.trades)):.1f}%" if record.trades else "n/a")
        details = (f"Runs: {', '.join(f'{m} {r[:8]}' for r, m in record.runs.items()) or 'none'}\n"
                   f"Decisions: {decisions}\nFills: {record.fills}; closed trades: {len(record.trades)}, "
                   f"won {record.wins} ({rate})\nRealized P&L {format(record.realized_pnl, 'f')}, "
                   f"fees {format(record.fees, 'f')}, net {format(record.net_pnl, 'f')}")
        self.sink.alert("P3", f"Daily trading summary {now:%Y-%m-%d} (00:00-{now:%H:%M} UTC)", details)
        return True

    # --- as a service of `tradecore run` ------------------------------------------------------------

    def start(self, every_seconds: float = 2.0) -> None:
        def loop() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the notifier never takes the bot down
                    log.exception("operations notifier step failed")

        self._thread = threading.Thread(target=loop, name="tradecore-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        close = getattr(self.sink, "stop", None)
        if close is not None:
            close()
