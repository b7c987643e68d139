"""The replay of a day as one self-contained HTML page (inline SVG, CSS and JS; no CDN, no network).

- a candlestick chart of the day with markers: decisions (triangles for LONG/SHORT, a square for CLOSE,
  a circle for a failed decision; hollow when risk refused it), orders (rings) and fills (diamonds at the fill price); halts,
  incidents and config changes as vertical lines. Hovering a marker shows its text (the decision's
  rationale and risk verdict, the order, the fill); each marker also has an SVG <title>.
- under it, the day's P&L (equity minus the equity at the day's start) and the daily loss used against
  the limit;
- the event table, with a switch to hide candles and HOLD decisions.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from api.presentation import plain, plain_figures, plain_number
from application.replay.timeline import Timeline

WIDTH = 1200
LEFT, RIGHT = 70, 20
CHART_H, PANEL_H = 380, 130
PLOT_W = WIDTH - LEFT - RIGHT


def _e(text: Any) -> str:
    # Text from the log (summaries, rationales) may carry figures in exponent form: written plainly.
    return html.escape(plain_figures(plain(text, words=True, none="-")), quote=True)


def _n(value: Any) -> str:
    """A figure of the book (a Decimal, or the book's text of one) as people write it, escaped."""
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except InvalidOperation:
            return _e(value)
    return _e(value)


class _Scale:
    def __init__(self, lo: float, hi: float, top: float, height: float):
        if hi <= lo:
            hi, lo = lo + 1, lo - 1
        pad = (hi - lo) * 0.05
        self.lo, self.hi, self.top, self.height = lo - pad, hi + pad, top, height

    def __call__(self, value: float) -> float:
        return self.top + (self.hi - value) / (self.hi - self.lo) * self.height


def render_page(timeline: Timeline, note: str = "", figures: str = "") -> str:
    """The whole page for one day's timeline."""
    day_start = datetime.combine(timeline.day, datetime.min.time()).replace(tzinfo=timezone.utc)
    span = 86400.0

    def x(at: datetime) -> float:
        return LEFT + max(0.0, min(1.0, (at - day_start).total_seconds() / span)) * PLOT_W

    candles = timeline.candles
    decisions: dict[str, Any] = {}  # decision id -> (DecisionMade/Failed row, RiskAssessed row)
    verdicts: dict[str, Any] = {}
    for row in timeline.rows:
        if row.type in ("DecisionMade", "DecisionFailed"):
            decisions[str(row.event.originator_id)] = row
        elif row.type == "RiskAssessed":
            verdicts[str(row.event.originator_id)] = row
    prices = [float(c.low) for c in candles] + [float(c.high) for c in candles]
    prices += [float(r.event.price) for r in timeline.rows if r.category == "fill"]
    price = _Scale(min(prices, default=0.0), max(prices, default=1.0), 20, CHART_H - 40)
    parts: list[str] = []
    parts.append(_grid(price, CHART_H))
    parts.append(_candles(candles, x, price, span))
    parts.append(_markers(timeline, x, price, decisions, verdicts))
    chart = (f'<svg id="chart" class="chart" viewBox="0 0 {WIDTH} {CHART_H}" width="{WIDTH}" height="{CHART_H}" '
             f'role="img" aria-label="candles of {timeline.day}">{"".join(parts)}{_time_axis(x, CHART_H, day_start)}</svg>')
    panel = _pnl_panel(timeline, x, day_start)
    table = _table(timeline)
    run = timeline.run
    title = f"replay {timeline.day}" + (f" run {run.run_id}" if run else "")
    info = (f"{_e(run.mode)} {_e(run.product)} {_e(run.granularity)} strategy {_e(run.strategy)}, run {_e(run.run_id)} "
            f"({_e(timeline.chosen_because)})" if run else "no run traded on this day")
    end = timeline.end_state
    summary = (f"equity {_n(end.get('equity'))}, realized {_n(end.get('realized_pnl'))}, unrealized "
               f"{_n(end.get('unrealized_pnl'))}, fees {_n(end.get('fees'))}, daily loss used "
               f"{_n(end.get('daily_loss_used_pct'))}% of {_n(end.get('daily_loss_limit_pct'))}%, max drawdown "
               f"{_n(end.get('day_max_drawdown_pct'))}%, halted {_e(bool(end.get('halted')))}")
    counts = {}
    for row in timeline.rows:
        counts[row.category] = counts.get(row.category, 0) + 1
    count_text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return _PAGE.format(title=_e(title), day=_e(timeline.day), info=info, note=_e(note), summary=summary,
                        figures=_e(figures),
                        counts=_e(count_text), chart=chart, panel=panel, table=table, css=_CSS, js=_JS)


def _grid(price: _Scale, height: int) -> str:
    out = []
    step = (price.hi - price.lo) / 5
    # Enough decimals to tell the lines apart (a product priced at 0.0016 needs six, BTC-USD two).
    places = max(2, 1 - math.floor(math.log10(step))) if step > 0 else 2
    for i in range(6):
        value = price.lo + step * i
        y = price(value)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.{places}f}</text>')
    return "".join(out)


def _time_axis(x, height: int, day_start: datetime) -> str:
    out = []
    for hour in range(0, 25, 3):
        xx = x(day_start + timedelta(hours=hour))
        out.append(f'<text class="axis" x="{xx:.1f}" y="{height - 6}" text-anchor="middle">{hour:02d}:00</text>')
    return "".join(out)


def _candles(candles: list[Any], x, price: _Scale, span: float) -> str:
    if not candles:
        return f'<text class="axis" x="{WIDTH / 2}" y="{CHART_H / 2}" text-anchor="middle">no candles this day</text>'
    bar = (candles[0].occurred_at - candles[0].start).total_seconds()
    width = max(0.6, bar / span * PLOT_W * 0.7)
    out = ['<g id="candles">']
    for c in candles:
        cx = x(c.occurred_at)  # at its close, where the decision on it and its orders are drawn
        o, cl, hi, lo = float(c.open), float(c.close), float(c.high), float(c.low)
        up = cl >= o
        top, bottom = price(max(o, cl)), price(min(o, cl))
        out.append(
            f'<g class="candle {"up" if up else "down"}" data-tip="{_e(f"{c.start:%H:%M} O {plain_number(c.open)} H {plain_number(c.high)} L {plain_number(c.low)} C {plain_number(c.close)} V {plain_number(c.volume)}")}">'
            f'<line x1="{cx:.2f}" x2="{cx:.2f}" y1="{price(hi):.2f}" y2="{price(lo):.2f}"/>'
            f'<rect x="{cx - width / 2:.2f}" y="{top:.2f}" width="{width:.2f}" height="{max(bottom - top, 0.8):.2f}"/></g>')
    out.append("</g>")
    return "".join(out)


def _marker(kind: str, shape: str, cx: float, cy: float, tip: str) -> str:
    s = 6
    if shape == "up":
        body = f'<path d="M{cx:.1f},{cy - s:.1f} L{cx + s:.1f},{cy + s:.1f} L{cx - s:.1f},{cy + s:.1f} Z"/>'
    elif shape == "down":
        body = f'<path d="M{cx:.1f},{cy + s:.1f} L{cx + s:.1f},{cy - s:.1f} L{cx - s:.1f},{cy - s:.1f} Z"/>'
    elif shape == "square":
        body = f'<rect x="{cx - s + 1:.1f}" y="{cy - s + 1:.1f}" width="{2 * s - 2}" height="{2 * s - 2}"/>'
    elif shape == "diamond":
        body = f'<path d="M{cx:.1f},{cy - s:.1f} L{cx + s:.1f},{cy:.1f} L{cx:.1f},{cy + s:.1f} L{cx - s:.1f},{cy:.1f} Z"/>'
    else:
        body = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{s - 1}"/>'
    return f'<g class="marker {kind}" data-tip="{_e(tip)}"><title>{_e(tip)}</title>{body}</g>'


def _markers(timeline: Timeline, x, price: _Scale, decisions: dict, verdicts: dict) -> str:
    layers: dict[str, list[str]] = {"control": [], "fill": [], "order": [], "decision": []}
    closes = {c.occurred_at: float(c.close) for c in timeline.candles}
    lows = {c.occurred_at: float(c.low) for c in timeline.candles}
    highs = {c.occurred_at: float(c.high) for c in timeline.candles}
    for row in timeline.rows:
        e = row.event
        at = row.at
        cx = x(at)
        if row.type == "DecisionMade" and e.action.value != "HOLD" or row.type == "DecisionFailed":
            verdict = verdicts.get(str(e.originator_id))
            vtext = f"\nrisk: {verdict.summary}" if verdict else ""
            if row.type == "DecisionFailed":
                shape, y = "circle", closes.get(at, price.lo)
                tip = f"{at:%H:%M} decision FAILED ({e.kind.value}): {e.detail}"
            else:
                action = e.action.value
                shape = {"LONG": "up", "SHORT": "down"}.get(action, "square")
                y = (lows.get(at, price.lo) if action == "LONG" else highs.get(at, price.hi) if action == "SHORT"
                     else closes.get(at, price.lo))
                tip = f"{at:%H:%M} {action} {plain_number(e.size_pct)}% [{e.strategy}] rationale: {e.rationale}{vtext}"
            yy = price(y) + (12 if shape == "up" else -12 if shape == "down" else 0)
            refused = verdict is not None and not verdict.event.approved
            layers["decision"].append(_marker("decision refused" if refused else "decision", shape, cx, yy, tip))
        elif row.type == "OrderPlaced":
            decision = decisions.get(str(e.decision_id)) if e.decision_id else None
            why = f"\ndecision: {decision.summary}" if decision else ("\nexit after a stop/take-profit trigger"
                                                                     if e.causation_id is None else "")
            tip = f"{at:%H:%M} order {row.summary}{why}"
            layers["order"].append(_marker("order", "ring", cx, price(closes.get(at, float(price.lo))), tip))
        elif row.category == "fill":
            layers["fill"].append(_marker("fill", "diamond", cx, price(float(e.price)), f"{at:%H:%M} {row.summary}"))
        elif row.category in ("control", "incident", "config") and row.type != "ControlStarted":
            layers["control"].append(f'<g class="marker {row.category}" data-tip="{_e(f"{at:%H:%M} {row.type}: {row.summary}")}">'
                       f'<title>{_e(row.summary)}</title><line x1="{cx:.1f}" x2="{cx:.1f}" y1="20" y2="{CHART_H - 20}"/>'
                       f'<rect x="{cx - 3:.1f}" y="14" width="6" height="8"/></g>')
    # decisions last, so they are on top where a fill lands on the same candle
    return '<g id="markers">' + "".join("".join(layer) for layer in layers.values()) + "</g>"


def _pnl_panel(timeline: Timeline, x, day_start: datetime) -> str:
    points = []
    for row in timeline.rows:
        if row.type in ("DecisionMade", "DecisionFailed") and row.state:
            s = row.state
            start = Decimal(s["day_start_equity"] or s["equity"])
            points.append((row.at, float(Decimal(s["equity"]) - start), float(s["daily_loss_used_pct"])))
    limit = float(timeline.end_state.get("daily_loss_limit_pct") or 0)
    h = PANEL_H
    pnl = _Scale(min([p[1] for p in points] + [0.0]), max([p[1] for p in points] + [0.0]), 14, h - 28)
    loss = _Scale(min([p[2] for p in points] + [0.0]), max([p[2] for p in points] + [limit]), 14, h - 28)

    def path(values, scale) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{x(at):.1f},{scale(v):.1f}" for i, (at, v) in enumerate(values))

    pnl_path = path([(p[0], p[1]) for p in points], pnl)
    loss_path = path([(p[0], p[2]) for p in points], loss)
    zero = pnl(0.0)
    return (
        f'<svg id="pnl" class="chart" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" role="img" aria-label="P&amp;L">'
        f'<text class="axis" x="{LEFT}" y="11">day P&amp;L (equity - equity at the day\'s start)</text>'
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}"/>'
        f'<text class="axis" x="{LEFT - 6}" y="{zero + 4:.1f}" text-anchor="end">0</text>'
        f'<path class="pnl-line" d="{pnl_path}"/></svg>'
        f'<svg id="daily-loss" class="chart" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" role="img" aria-label="daily loss">'
        f'<text class="axis" x="{LEFT}" y="11">daily loss used % vs the limit ({plain_number(limit)}%)</text>'
        f'<line class="limit-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{loss(limit):.1f}" y2="{loss(limit):.1f}"/>'
        f'<text class="axis" x="{LEFT - 6}" y="{loss(limit) + 4:.1f}" text-anchor="end">{plain_number(limit)}%</text>'
        f'<path class="loss-line" d="{loss_path}"/>{_time_axis(x, h, day_start)}</svg>')


def _table(timeline: Timeline) -> str:
    rows = []
    for row in timeline.rows:
        quiet = row.category == "candle" or (row.type == "DecisionMade" and row.event.action.value == "HOLD")
        s = row.state or {}
        pos = ", ".join(_n(p["quantity"]) for p in s.get("position", [])) or "0"
        rows.append(
            f'<tr class="{row.category}{" quiet" if quiet else ""}"><td>{row.at:%H:%M:%S}</td><td>{row.notification_id}</td>'
            f'<td>{_e(row.type)}</td><td>{_e(row.actor)}</td><td class="text">{_e(row.summary)}</td>'
            f'<td>{pos}</td><td>{_n(s.get("equity"))}</td><td>{_n(s.get("realized_pnl"))}</td>'
            f'<td>{_n(s.get("unrealized_pnl"))}</td><td>{_n(s.get("daily_loss_used_pct"))}%</td>'
            f'<td>{"HALTED" if s.get("halted") else ""}</td></tr>')
    return ('<table id="events"><thead><tr><th>time</th><th>#</th><th>event</th><th>actor</th><th>what</th>'
            '<th>position</th><th>equity</th><th>realized</th><th>unrealized</th><th>daily loss</th><th>halt</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px} .dim{color:#666}
.chart{display:block;border:1px solid #ddd;margin:6px 0;background:#fcfcfc}
.grid{stroke:#e6e6e6} .axis{font-size:10px;fill:#666}
.candle line{stroke:#555;stroke-width:1} .candle.up rect{fill:#26a269} .candle.down rect{fill:#c01c28}
.marker{cursor:pointer} .marker.decision path,.marker.decision rect{fill:#1c71d8;stroke:#fff;stroke-width:1}
.marker.decision circle{fill:#9a9996;stroke:#000}
.marker.decision.refused path,.marker.decision.refused rect{fill:#fff;stroke:#1c71d8;stroke-width:1.5}
.marker.order circle{fill:none;stroke:#e66100;stroke-width:2} .marker.fill path{fill:#f6d32d;stroke:#865e3c}
.marker.control line{stroke:#c01c28;stroke-dasharray:4 3} .marker.control rect{fill:#c01c28}
.marker.incident line{stroke:#813d9c;stroke-dasharray:2 2} .marker.incident rect{fill:#813d9c}
.marker.config line{stroke:#1a5fb4;stroke-dasharray:1 3} .marker.config rect{fill:#1a5fb4}
.pnl-line{fill:none;stroke:#1c71d8;stroke-width:1.5} .loss-line{fill:none;stroke:#c01c28;stroke-width:1.5}
.limit-line{stroke:#c01c28;stroke-dasharray:6 4}
#tip{position:fixed;display:none;max-width:520px;white-space:pre-wrap;background:#222;color:#fff;padding:6px 8px;
border-radius:4px;font-size:12px;pointer-events:none;z-index:10}
table{border-collapse:collapse;margin-top:10px;font-size:12px} td,th{border-bottom:1px solid #eee;padding:2px 6px;
text-align:left;vertical-align:top} td.text{max-width:620px}
tr.decision td{color:#1a5fb4} tr.risk td{color:#613583} tr.order td{color:#c64600} tr.fill td{color:#26a269}
tr.control td,tr.incident td{color:#c01c28;font-weight:bold} tr.config td{color:#1a5fb4;font-style:italic}
body.hide-quiet tr.quiet{display:none}
"""

_JS = """
(function(){
  var tip=document.getElementById('tip');
  function show(ev){var t=ev.currentTarget.getAttribute('data-tip');if(!t)return;tip.textContent=t;
    tip.style.display='block';tip.style.left=Math.min(ev.clientX+14,window.innerWidth-540)+'px';
    tip.style.top=(ev.clientY+14)+'px';}
  function hide(){tip.style.display='none';}
  document.querySelectorAll('[data-tip]').forEach(function(el){
    el.addEventListener('mouseenter',show);el.addEventListener('mousemove',show);el.addEventListener('mouseleave',hide);});
  var box=document.getElementById('quiet');
  box.addEventListener('change',function(){document.body.classList.toggle('hide-quiet',box.checked);});
  document.body.classList.toggle('hide-quiet',box.checked);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{css}</style></head>
<body>
<h1>tradecore replay {day}</h1>
<div class="dim">{info}</div>
<div class="dim">{note}</div>
<div>end of day: {summary}</div>
<div>{figures}</div>
<div class="dim">events: {counts}</div>
{chart}
{panel}
<div id="tip"></div>
<label><input type="checkbox" id="quiet" checked> hide candles and HOLD decisions</label>
{table}
<script>{js}</script>
</body></html>
"""
