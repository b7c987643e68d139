"""CLI: `tradecore replay`: a trading day from the log, its state at any instant, verify and what-if.

    tradecore replay --date 2019-01-04 [--run ID] [--product P] [--from HH:MM] [--to HH:MM] [--json | --html FILE]
    tradecore replay --date 2019-01-04 --at 14:30
    tradecore replay --date 2019-01-04 --verify
    tradecore replay --date 2019-01-04 --what-if tighter.toml

Everything is read from the event store (never the read model). Verify and
what-if write only into a throwaway in-memory store. Exit codes: 0 ok,
1 verify found a divergence, 2 bad input or nothing to replay.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, resolve_store_url
from api.presentation import plain_figures
from api.cli.recorded_settings import config_note, run_settings, what_if_changes

console = Console(soft_wrap=True, highlight=False)

def register(app: typer.Typer) -> None:
    app.command("replay")(replay_command)


# --- inputs ---------------------------------------------------------------------------------


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r} is not a day (YYYY-MM-DD)")


def _clock(day: date, text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = time.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a time of day (HH:MM, UTC)")
    return datetime.combine(day, parsed.replace(tzinfo=None), tzinfo=timezone.utc)


def _run_id(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        fail(f"--run {text!r} is not a run id (a UUID, as printed by `tradecore backtest`)")


# --- the command ------------------------------------------------------------------------------


def replay_command(
    day: Annotated[str, typer.Option("--date", help="The UTC day to replay (YYYY-MM-DD)")],
    product: Annotated[Optional[str], typer.Option("--product", help="Only this product (and its runs)")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="The run to replay when several traded that day")] = None,
    since: Annotated[Optional[str], typer.Option("--from", help="Show events from HH:MM (UTC)")] = None,
    until: Annotated[Optional[str], typer.Option("--to", help="Show events up to and including HH:MM (UTC)")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Print the whole state at HH:MM (UTC)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML page of the day")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-execute the day and compare orders and fills (exit 1 on a divergence)")] = False,
    what_if: Annotated[Optional[Path], typer.Option("--what-if", help="Re-run the day with the settings of this TOML file")] = None,
    brief: Annotated[bool, typer.Option("--brief", help="Leave out candles and HOLD decisions (text and JSON)")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Replay a UTC day of the log: what the bot saw, decided, ordered and got, and its state after each step."""
    from application.replay.timeline import ReplayError, load_day

    the_day = _day(day)
    run_id = _run_id(run)
    if as_json and html:
        fail("give --json or --html, not both")
    if sum(bool(x) for x in (verify, what_if, at)) > 1:
        fail("give one of --verify, --what-if, --at")
    if html and (verify or what_if or at):
        fail("--html writes the timeline page; it does not go with --verify, --what-if or --at")
    start, end = _clock(the_day, since, "--from"), _clock(the_day, until, "--to")
    instant = _clock(the_day, at, "--at")
    if what_if is not None:
        what_if_overrides = what_if_changes(what_if)
    url = resolve_store_url(store, config)
    with opened_store(url, read_only=True) as trading:
        try:
            log = load_day(trading, the_day, run_id=run_id, product=product)
        except ReplayError as exc:
            fail(str(exc))
    if not log.events and log.run is None:
        from api.bootstrap import store_location

        where = store_location(url).redacted()
        fail(f"nothing was recorded on {the_day} in {where}" + (f" for {product}" if product else ""))
    settings, overrides, source, matched, digest = run_settings(log, config, url)
    note = config_note(log.run, source, matched, digest)
    from api.bootstrap import risk_limits

    limits = risk_limits(settings)
    if verify:
        _verify(log, settings, limits, as_json, note, url)
    elif what_if is not None:
        _what_if(log, settings, limits, overrides, what_if, what_if_overrides, config, as_json, note, url)
    elif instant is not None:
        _state_at(log, instant, limits, as_json, note)
    else:
        _timeline(log, limits, start, end + timedelta(minutes=1) if end else None, as_json, html, note, brief)


def _header(log, note: str) -> None:
    run = log.run
    if run is None:
        console.print(f"[bold]{log.day}[/bold]: no run traded; operator and market events only")
    else:
        console.print(f"[bold]{log.day}[/bold] run {run.run_id} ({run.mode} {run.product} {run.granularity} "
                      f"{run.strategy}): {log.chosen_because}")
        others = [r for r in log.runs if r.run_id != run.run_id]
        for other in others:
            console.print(f"  [dim]also on this day: run {other.run_id} ({other.mode} {other.strategy}); --run to pick it[/dim]")
    if note:
        console.print(f"[dim]{escape(note)}[/dim]")
    for line in log.notes:
        console.print(f"[yellow]{escape(line)}[/yellow]")


def _state_line(state: dict[str, Any]) -> str:
    pos = state["position"]
    held = ", ".join(f"{p['quantity']} {p['product']} @ {p['average_entry']} (mark {p['mark']})" for p in pos) or "flat"
    halted = f" | HALTED: {state['halt_reason']}" if state["halted"] else ""
    incidents = f" | {state['open_incidents']} open incident(s)" if state["open_incidents"] else ""
    return (f"position {held} | equity {state['equity']} cash {state['cash']} | realized {state['realized_pnl']} "
            f"unrealized {state['unrealized_pnl']} fees {state['fees']} | day P&L {state['day_pnl'] or '-'}, "
            f"daily loss {state['daily_loss_used_pct']}% "
            f"of {state['daily_loss_limit_pct']}% | open orders {state['open_orders']}{halted}{incidents} | "
            f"config {(state['config_hash'] or '-')[:12]}")


def _is_quiet(row) -> bool:
    return row.type == "CandleClosed" or (row.type == "DecisionMade" and row.event.action.value == "HOLD")


def _figures_line(figures) -> str:
    f = figures
    return (f"day: {f.trades} trade(s) closed ({f.wins} won), realized {f.realized_pnl}, fees {f.fees}, net {f.net_pnl}; "
            f"start equity {f.day_start_equity}, end equity {f.end_equity}, day P&L {f.day_pnl}, daily loss "
            f"{f.daily_loss_pct}% (worst {f.worst_daily_loss_pct}%), max drawdown {f.max_drawdown_pct}%, risk score "
            f"{f.risk_score} {f.risk_level}; {f.orders} order(s), {f.fills} fill(s), {f.refusals} risk refusal(s), "
            f"{f.halts} halt(s)")


def _timeline(log, limits, start, end, as_json: bool, html: Path | None, note: str, brief: bool = False) -> None:
    from application.replay.timeline import book_before_first_step, build_timeline
    from application.replay.whatif import day_outcome

    timeline = build_timeline(log, limits, since=start, until=end)
    figures = day_outcome(*book_before_first_step(log, limits))[0] if log.run else None
    if html is not None:
        from api.pages.replay import render_page

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_page(timeline, note, _figures_line(figures) if figures else ""), encoding="utf-8")
        console.print(f"wrote {html} ({len(timeline.rows)} events, {len(timeline.candles)} candles)")
        return
    if brief:
        timeline.rows = [row for row in timeline.rows if not _is_quiet(row)]
    if as_json:
        data = timeline.as_dict()
        data["config_note"] = note
        data["day_figures"] = figures.as_dict() if figures else None
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        return
    _header(log, note)
    console.print(f"[dim]state at 00:00 UTC:[/dim] {escape(plain_figures(_state_line(timeline.start_state)))}")
    rows = timeline.rows
    for i, row in enumerate(rows):
        style = {"decision": "cyan", "risk": "magenta", "order": "yellow", "fill": "green", "control": "red",
                 "incident": "red bold", "config": "blue"}.get(row.category, "")
        text = f"{row.at:%H:%M:%S} #{row.notification_id:<7} {row.type:<20} {escape(plain_figures(row.summary))}"
        console.print(f"[{style}]{text}[/{style}]" if style else text)
        last_of_step = i + 1 == len(rows) or rows[i + 1].at != row.at
        if last_of_step and row.state is not None:
            console.print(f"[dim]         state: {escape(plain_figures(_state_line(row.state)))}[/dim]")
    console.print(f"[dim]{len(rows)} event(s)[/dim]")
    if figures is not None:
        console.print(escape(_figures_line(figures)))


def _state_at(log, instant: datetime, limits, as_json: bool, note: str) -> None:
    from application.replay.timeline import state_at

    state = state_at(log, instant, limits)
    if as_json:
        state["config_note"] = note
        sys.stdout.write(json.dumps(state, default=str) + "\n")
        return
    _header(log, note)
    table = Table(title=f"state at {instant.isoformat()}", show_header=False)
    for key, value in state.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str, indent=1) if value else "-"
        table.add_row(key, escape(plain_figures(str(value))))
    console.print(table)


def _traded_by(url: str, settings, log):
    """The loop settings and paper exchange a re-execution trades with: by the run's product spec, found as
    the run found it (the settings' [products."P"] table, the log, or inferred from the product's candles),
    so a sub-cent or BTC-quoted product rounds on its own grid, in its own quote currency."""
    from dataclasses import replace

    from api.bootstrap import loop_settings, replay_exchange
    from application.trading.products import product_spec_for

    with opened_store(url, read_only=True) as trading:
        spec, _ = product_spec_for(trading, settings, log.run.product, log.candles.values())
    exchange = replay_exchange(settings, log)
    exchange.trade_by(spec)
    terms = replace(loop_settings(settings, product=log.run.product, flush_every=10_000),
                    quote_currency=spec.quote_currency, spec=spec)
    return terms, exchange


def _verify(log, settings, limits, as_json: bool, note: str, url: str) -> None:
    from api.bootstrap import scratch_store
    from application.replay.verify import verify_day

    if log.run is None:
        fail(f"no run traded on {log.day}: nothing to verify")
    if log.run.mode == "live":
        fail("verify re-executes against the paper exchange; a live run's fills came from the venue")
    store = scratch_store()
    try:
        terms, exchange = _traded_by(url, settings, log)
        report = verify_day(log, limits, terms, exchange, store,
                            lambda: list(store.recorded))
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()
    if not report.identical:
        report.notes.append(_chain_note(url))
    if as_json:
        data = report.as_dict()
        data.update(run_id=str(log.run.run_id), day=log.day.isoformat(), config_note=note)
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        _header(log, note)
        console.print(f"compared {report.compared} order/fill event(s): recorded {report.recorded_orders} orders "
                      f"{report.recorded_fills} fills, replayed {report.replayed_orders} orders {report.replayed_fills} fills")
        for line in report.notes:
            console.print(f"[dim]{escape(line)}[/dim]")
        if report.identical:
            console.print("[green]identical[/green]: the re-execution produced the recorded orders and fills")
        else:
            d = report.divergence
            console.print(f"[red]DIVERGENCE[/red] at {escape(d.event)}: field [bold]{escape(d.field)}[/bold] "
                          f"recorded {escape(str(d.recorded))} replayed {escape(str(d.replayed))}")
    raise typer.Exit(0 if report.identical else 1)


def _chain_note(url: str) -> str:
    """Whether the log itself was edited: a divergence then says more about the log than the code."""
    from api.bootstrap import verify_log

    with opened_store(url, read_only=True) as trading:
        chain = verify_log(trading)
    if chain.ok:
        return f"the log's hash chain is intact ({chain.checked} events): the log was not edited"
    return (f"the log's hash chain is BROKEN at notification {chain.bad_notification_id} ({chain.problem}): "
            "the log was edited after it was written (tradecore audit verify)")


def _what_if(log, settings, limits, overrides, path: Path, changes: dict[str, Any], config, as_json: bool,
             note: str, url: str) -> None:
    from api.config_view import masked_secret
    from api.bootstrap import MissingSetting, decision_model, scratch_store
    from application.trading.backtest import IncrementalIndicators
    from application.replay.rerun import WarmIndicators
    from application.replay.whatif import what_if_day

    if log.run is None:
        fail(f"no run traded on {log.day}: nothing to re-run")
    merged = {k: v for k, v in {**overrides, **changes}.items() if v is not None}
    alt = load_cli_settings(config, merged)
    before, after = settings.flat_config(), alt.flat_config()
    changed = {k: (masked_secret(k, before.get(k)), masked_secret(k, after.get(k)))
               for k in sorted(after) if before.get(k) != after.get(k)}
    strategy = indicators = None
    if alt.trading.strategy != log.run.strategy:
        if alt.trading.strategy == "llm":
            fail("a what-if does not call the LLM: keep the recorded strategy or use rules")
        try:
            strategy = decision_model(alt)
        except MissingSetting as exc:
            fail(str(exc))
        indicators = lambda history: WarmIndicators(IncrementalIndicators().state, history)  # noqa: E731
    store = scratch_store()
    try:
        terms, exchange = _traded_by(url, alt, log)
        report = what_if_day(log, limits, terms, exchange, store,
                             lambda: list(store.recorded), strategy=strategy, indicators=indicators,
                             changed_settings=changed)
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()
    if as_json:
        data = report.as_dict()
        data.update(run_id=str(log.run.run_id), day=log.day.isoformat(), config_note=note, what_if_file=str(path))
        sys.stdout.write(json.dumps(data) + "\n")
        return
    _header(log, note)
    changes_text = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()) or "none"
    console.print(f"what-if {path}: {escape(changes_text)}")
    table = Table(title=f"{log.day}: recorded vs what-if")
    table.add_column("figure")
    table.add_column("recorded", justify="right")
    table.add_column("what-if", justify="right")
    rec, alt_fig = report.recorded.as_dict(), report.what_if.as_dict()
    for key in rec:
        mark = "" if rec[key] == alt_fig[key] else " *"
        table.add_row(key.replace("_", " "), str(rec[key]), f"{alt_fig[key]}{mark}")
    console.print(table)
    first = report.first_difference
    if first is None:
        console.print("every decision, risk verdict and order was the same")
    else:
        console.print(f"first decision that differed: candle {first['candle_start']}\n"
                      f"  recorded: {escape(first['recorded'])}\n  what-if:  {escape(first['what_if'])}")
    console.print("[dim]the real log and read model were not written[/dim]")
