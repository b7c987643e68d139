"""The auditor's paging of the event log, the replay timeline, incidents and the daily report."""

from __future__ import annotations

import importlib
import uuid
from datetime import date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from api.http import schemas
from api.http.auth import AUDITOR, VIEWER
from api.http.errors import COMMON_RESPONSES, NOT_FOUND, BadParameter, ErrorBody, Missing, NotImplementedYet
from api.http.jsonio import JsonBytes, dumps
from api.http.reading import BOT_PATTERN, MAX_ID, MAX_LIMIT, Bot, Offset, cached_json, choose_run, utc

router = APIRouter(responses={**COMMON_RESPONSES})

SCAN_CAP = 50_000  # events examined per request when since/until filter most of them out


def event_row(logged) -> dict[str, Any]:
    """One logged event as the API (and `tradecore events --json`) shows it."""
    event = logged.event
    return {
        "notification_id": logged.notification_id, "type": event.event_type, "occurred_at": event.occurred_at,
        "event_id": str(event.event_id), "stream_id": str(event.originator_id), "version": event.originator_version,
        "actor": event.actor, "correlation_id": str(event.correlation_id) if event.correlation_id else None,
        "causation_id": str(event.causation_id) if event.causation_id else None,
        "run_id": str(event.run_id) if event.run_id else None, "payload": event.payload(),
    }


def _topics(types: list[str] | None) -> list[str]:
    if not types:
        return []
    from domain.events import event_classes
    from api.bootstrap import event_topic

    known = event_classes()
    unknown = [t for t in types if t not in known]
    if unknown:
        raise BadParameter(f"query parameter 'type': unknown event type(s) {', '.join(repr(t) for t in unknown)}; "
                           f"known: {', '.join(sorted(known))}")
    return [event_topic(known[t]) for t in types]


def events_page(store, after: int, limit: int, topics: list[str], since: datetime | None, until: datetime | None) -> dict:
    """Up to ``limit`` events after ``after``; ``next_after`` is null once the end of the log is reached."""
    items: list[dict] = []
    cursor, scanned, more = after, 0, True
    batch = min(max(limit * 2, 200), 5000)
    while len(items) < limit and scanned < SCAN_CAP:
        page = store.read_log(cursor, batch, topics)
        if not page:
            more = False
            break
        for logged in page:
            cursor = logged.notification_id
            scanned += 1
            occurred = logged.event.occurred_at
            if (since and occurred < since) or (until and occurred >= until):
                continue
            items.append(event_row(logged))
            if len(items) == limit:
                break
        if len(page) < batch and cursor == page[-1].notification_id:
            more = False  # the whole of a short page was read: the end of the log, for now
            break
    return {"items": items, "next_after": cursor if more else None, "scanned_to": cursor,
            "last_notification_id": store.max_notification_id()}


@router.get("/events", tags=["audit"], response_model=schemas.EventsPage,
            summary="page through the event log in order (stable cursor: the notification id)")
async def events(request: Request,
                 after: int = Query(0, ge=0, le=MAX_ID, description="cursor: start after this notification id"),
                 limit: int = Query(100, ge=1, le=MAX_LIMIT, description=f"at most this many events (1 to {MAX_LIMIT})"),
                 type: list[str] | None = Query(None, description="only these event types, e.g. OrderFilled (repeatable)"),
                 since: datetime | None = Query(None, description="only events that occurred at or after this time"),
                 until: datetime | None = Query(None, description="only events that occurred before this time"),
                 _caller=AUDITOR):
    topics = _topics(type)
    since_at, until_at = utc(since, "since"), utc(until, "until")
    if since_at and until_at and since_at >= until_at:
        raise BadParameter(f"query parameter 'since' ({since_at.isoformat()}) is not before 'until' ({until_at.isoformat()})")
    store = request.app.state.node.store
    return JsonBytes(await run_in_threadpool(lambda: dumps(events_page(store, after, limit, topics, since_at, until_at))))


FIRST_REPLAY_DAY, LAST_REPLAY_DAY = date(1970, 1, 1), date.max - timedelta(days=1)


def replay_timeline_function():
    """A JSON-ready timeline builder over application.replay.timeline, or None while replay does not exist.

    Uses ``load_day`` (the day's run and events, from the log) and
    ``build_timeline(...).as_dict()`` (each event with the state after it).
    """
    try:
        module = importlib.import_module("application.replay.timeline")
    except ModuleNotFoundError as exc:
        if exc.name == "application.replay.timeline":
            return None
        raise
    load_day, build_timeline = getattr(module, "load_day", None), getattr(module, "build_timeline", None)
    if load_day is None or build_timeline is None:
        return None
    refused = getattr(module, "ReplayError", ValueError)

    def timeline(store, day: date, *, run_id: uuid.UUID | None, limits) -> dict[str, Any]:
        try:
            log = load_day(store, day, run_id=run_id)
        except refused as exc:
            message = str(exc)
            if message.startswith("no run"):
                raise Missing(message, code="unknown_run") from None
            raise BadParameter(f"query parameter 'run_id': {message}", code="ambiguous_run") from None
        return build_timeline(log, limits).as_dict()

    return timeline


@router.get("/replay/{day}", tags=["audit"], response_model=dict[str, Any],
            responses={**NOT_FOUND, 501: {"model": ErrorBody, "description": "replay is not available in this version"}},
            summary="the replay timeline of one UTC day: each event with the state after it")
async def replay(request: Request, day: date = Path(description="the UTC day, YYYY-MM-DD"),
                 run_id: uuid.UUID | None = Query(None, description="the run (default: the only run, or the only "
                                                  "paper/live run, with events that day)"),
                 bot: str | None = Bot,
                 after: int = Query(0, ge=0, le=MAX_ID, description="paging: only events after this notification id"),
                 limit: int = Query(1000, ge=1, le=5000, description="at most this many events (1 to 5000)"),
                 _caller=AUDITOR):
    from api.bootstrap import risk_limits

    if not FIRST_REPLAY_DAY <= day <= LAST_REPLAY_DAY:  # the day after date.max overflows
        raise BadParameter(f"path parameter 'day': {day.isoformat()} is outside {FIRST_REPLAY_DAY} .. {LAST_REPLAY_DAY}")
    build = replay_timeline_function()
    if build is None:
        raise NotImplementedYet("replay is not available in this version (application.replay.timeline has no timeline)")
    node = request.app.state.node
    if bot is not None:  # the bot's run (run_id, if given, must be the bot's)
        run_id = uuid.UUID(choose_run(node, run_id, bot)["run_id"])

    def page() -> dict[str, Any]:
        whole = node.access.cached(("replay", day, run_id),
                                   lambda: build(node.store, day, run_id=run_id, limits=risk_limits(node.settings)))
        events = [e for e in whole.get("events", []) if e["notification_id"] > after]
        more = len(events) > limit
        return {**whole, "events": events[:limit], "next_after": events[limit - 1]["notification_id"] if more else None}

    return await cached_json(node, ("replay-page", day, run_id, after, limit), page)


@router.get("/incidents", tags=["audit"], response_model=schemas.IncidentsPage, summary="incidents, newest first")
async def incidents(request: Request,
                    status: Literal["open", "resolved"] | None = Query(None, description="only open or resolved ones"),
                    bot: str | None = Query(None, pattern=BOT_PATTERN, description="only those about this bot or every bot"),
                    limit: int = Query(100, ge=1, le=MAX_LIMIT), offset: int = Offset, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        where, params = ["lower(status) = ?"] if status else [], [status] if status else []
        if bot:
            where.append("(bot_id = ? OR bot_id IS NULL)")
            params.append(bot)
        rows = node.access.rows(
            "SELECT incident_id::VARCHAR AS incident_id, severity, kind, details, status, opened_at, opened_by, resolved_at, "
            f"resolved_by, note, run_id::VARCHAR AS run_id, bot_id FROM incidents "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY opened_at DESC NULLS LAST, incident_id LIMIT ? OFFSET ?", [*params, limit + 1, offset])
        return {"items": rows[:limit], "next_offset": offset + limit if len(rows) > limit else None}

    return await cached_json(node, ("incidents", status, bot, limit, offset), compute)


@router.get("/reports/daily", tags=["reports"], response_model=dict[str, Any], responses={**NOT_FOUND},
            summary="the operations manual's daily report: trades, success rate, P&L, risk, recommendations")
async def daily_report(request: Request,
                       day: date | None = Query(None, alias="date", description="the UTC day (default: the run's latest)"),
                       run_id: uuid.UUID | None = Query(None, description="the run (default: the latest with P&L that day)"),
                       bot: str | None = Bot, _caller=VIEWER):
    from projections.reading.reports import daily_report as build

    node = request.app.state.node
    if bot is not None:  # the bot's run (run_id, if given, must be the bot's)
        run_id = uuid.UUID(choose_run(node, run_id, bot)["run_id"])
    return await cached_json(node, ("report", day, run_id),
                             lambda: build(node.access.cursor(), day, str(run_id) if run_id else None))


@router.get("/alerts", tags=["audit"], response_model=schemas.AlertsPage,
            summary="health alerts (one row per episode of a check), newest first")
async def alerts(request: Request,
                 status: Literal["active", "resolved"] | None = Query(None, description="only active or resolved ones"),
                 bot: str | None = Query(None, pattern=BOT_PATTERN, description="only this bot's (its health watch's)"),
                 limit: int = Query(100, ge=1, le=MAX_LIMIT), offset: int = Offset, _caller=VIEWER):
    from application.health.checks import CHECKS
    from domain.alerts import alert_id

    node = request.app.state.node

    def compute() -> dict:
        where, params = (["status = ?"], [status]) if status else ([], [])
        if bot:  # a bot's alert streams are its checks' streams scoped by its id (domain/alerts.py alert_id)
            where.append(f"alert_id::VARCHAR IN ({', '.join('?' for _ in CHECKS)})")
            params += [str(alert_id(check.name, bot)) for check in CHECKS]
        rows = node.access.rows(
            f"SELECT * FROM alerts {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY raised_at DESC, check_name, episode DESC LIMIT ? OFFSET ?", [*params, limit + 1, offset])
        for row in rows:
            row["alert_id"] = str(row["alert_id"])
        return {"items": rows[:limit], "next_offset": offset + limit if len(rows) > limit else None}

    return await cached_json(node, ("alerts", status, bot, limit, offset), compute)
