// tradecore dashboard: reads the REST API with a bearer token and refreshes itself. No build step.
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "tradecore.token";
const $ = (id) => document.getElementById(id);

function takeTokenFromFragment() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

class Unauthorized extends Error {}

async function api(path) {
  const token = localStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized("401 on " + path);
  const body = await response.json().catch(() => null);
  if (!response.ok && !(path === "/health" && response.status === 503)) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const error = new Error(response.status + " " + detail);
    error.status = response.status;
    throw error;
  }
  return body;
}

// The bot switcher: ?bot=ID in the address scopes every run view to that bot (GET /bots lists them).
function selectedBot() {
  return new URLSearchParams(window.location.search).get("bot") || "";
}

function scoped(path) {
  const bot = selectedBot();
  return bot ? path + (path.includes("?") ? "&" : "?") + "bot=" + encodeURIComponent(bot) : path;
}

async function showBots() {
  const select = $("bot");
  let page = { items: [] };
  try {
    page = await api("/bots");
  } catch (error) {
    if (error instanceof Unauthorized) throw error;  // an older node without /bots: only "latest run"
  }
  const current = selectedBot();
  const options = [["", "latest run (any bot)"]].concat(page.items.map((b) =>
    [b.bot_id, `${b.bot_id} · ${b.mode} ${b.product}${b.halted ? " · HALTED" : ""}`]));
  if (current && !options.some(([value]) => value === current)) options.push([current, current + " (not in the read model)"]);
  const signature = JSON.stringify(options);
  if (select.dataset.signature !== signature) {
    select.replaceChildren(...options.map(([value, text]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      return option;
    }));
    select.dataset.signature = signature;
  }
  select.value = current;
}

function chooseBot(bot) {
  const params = new URLSearchParams(window.location.search);
  if (bot) params.set("bot", bot); else params.delete("bot");
  const query = params.toString();
  history.replaceState(null, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash);
  refresh();
}

function num(text, digits = 2) {
  if (text === null || text === undefined || text === "") return "–";
  const value = Number(text);
  if (!Number.isFinite(value)) return String(text);
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function qty(text) {
  if (text === null || text === undefined) return "–";
  const value = Number(text);
  return Number.isFinite(value) ? value.toLocaleString("en-US", { maximumFractionDigits: 8 }) : String(text);
}

function signed(el, text) {
  el.classList.remove("pos", "neg");
  const value = Number(text);
  if (Number.isFinite(value) && value !== 0) el.classList.add(value > 0 ? "pos" : "neg");
}

function shortTime(iso) {
  return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "Z") : "–";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fillTable(id, items, columns, empty) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!items.length) {
    const row = document.createElement("tr");
    const td = cell(row, empty, "muted");
    td.colSpan = columns.length;
    body.appendChild(row);
    return;
  }
  for (const item of items) {
    const row = document.createElement("tr");
    for (const [value, className] of columns.map((c) => c(item))) cell(row, value, className);
    body.appendChild(row);
  }
}

async function showHealth() {
  const badge = $("health");
  try {
    const health = await api("/health");
    badge.textContent = "health: " + health.status;
    badge.className = "badge " + health.status;
    const reasons = $("reasons");
    reasons.replaceChildren();
    for (const reason of health.reasons) {
      const li = document.createElement("li");
      li.textContent = reason;
      reasons.appendChild(li);
    }
  } catch (error) {
    if (error instanceof Unauthorized) throw error;
    badge.textContent = "health: unreachable";
    badge.className = "badge down";
  }
}

async function showRisk() {
  const risk = await api(scoped("/risk/metrics"));
  if (risk.run) {
    $("run").textContent = (risk.run.bot_id ? "bot " + risk.run.bot_id + " · " : "") + risk.run.mode + " run " +
      risk.run.run_id.slice(0, 8) + " · " + risk.run.product;
  }
  $("equity").textContent = num(risk.equity);
  $("equity-note").textContent = risk.day ? "as of " + risk.day + " · drawdown " + num(risk.drawdown_pct) + "%" : "no P&L yet";
  const used = Number(risk.pct_of_limit_used || 0);
  const share = Math.max(0, Math.min(1, used / 100));
  const angle = Math.PI * (1 - share);
  const x = 60 + 50 * Math.cos(angle), y = 60 - 50 * Math.sin(angle);
  const arc = $("loss-gauge-arc");
  arc.setAttribute("d", share > 0 ? `M10 60 A50 50 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}` : "");
  arc.setAttribute("class", "gauge-fill" + (used >= 100 ? " bad" : used >= 80 ? " warn" : ""));
  // The loss itself against the limit (the arc is the share of the limit used at the day's worst).
  $("loss-gauge-text").textContent = num(risk.worst_daily_loss_pct) + "% / " + num(risk.max_daily_loss_pct) + "%";
  $("loss-note").textContent = "daily loss now " + num(risk.daily_loss_pct) + "%, worst " + num(risk.worst_daily_loss_pct)
    + "% of the " + num(risk.max_daily_loss_pct) + "% limit (" + num(used, 0) + "% of the limit used)"
    + (risk.daily_loss_breached ? " · BREACHED" : "");
  $("risk-level").textContent = risk.risk_level ? risk.risk_level + " · " + risk.risk_score : "–";
  $("risk-note").textContent = "exposure " + num(risk.exposure) + " · open positions " + risk.open_positions;
}

async function showPnl() {
  const page = await api(scoped("/pnl/daily?limit=1000"));
  const last = page.items[page.items.length - 1];
  const el = $("daily-pnl");
  el.textContent = last ? num(last.day_pnl) : "–";
  if (last) signed(el, last.day_pnl);
  $("pnl-day").textContent = last ? last.day + " · realized " + num(last.realized_pnl) + " · fees " + num(last.fees)
    + " · trades " + last.trades : "no P&L yet";
}

async function showEquityCurve() {
  const page = await api(scoped("/equity/curve?limit=2000"));
  const svg = $("equity-chart");
  svg.replaceChildren();
  const points = page.items.map((p) => Number(p.equity)).filter(Number.isFinite);
  svg.dataset.points = String(points.length);
  if (points.length < 2) {
    $("equity-range").textContent = "no equity curve yet";
    return;
  }
  const W = 800, H = 240, pad = 14;
  let lo = Math.min(...points), hi = Math.max(...points);
  if (hi === lo) { hi += 1; lo -= 1; }
  const ns = "http://www.w3.org/2000/svg";
  for (const f of [0, 0.5, 1]) {
    const line = document.createElementNS(ns, "line");
    const y = pad + (H - 2 * pad) * f;
    line.setAttribute("x1", "0"); line.setAttribute("x2", String(W));
    line.setAttribute("y1", y.toFixed(1)); line.setAttribute("y2", y.toFixed(1));
    line.setAttribute("class", "grid");
    svg.appendChild(line);
  }
  const coords = points.map((v, i) => {
    const x = (i / (points.length - 1)) * W;
    const y = pad + (H - 2 * pad) * (1 - (v - lo) / (hi - lo));
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  const curve = document.createElementNS(ns, "polyline");
  curve.setAttribute("points", coords.join(" "));
  curve.setAttribute("class", "curve");
  svg.appendChild(curve);
  const first = page.items[0], last = page.items[page.items.length - 1];
  $("equity-range").textContent = shortTime(first.at) + " → " + shortTime(last.at) + " · low " + num(lo) + " · high " + num(hi)
    + " · last " + num(last.equity);
}

async function showPositions() {
  const page = await api(scoped("/positions"));
  fillTable("positions", page.items, [
    (p) => [p.product], (p) => [p.side], (p) => [qty(p.quantity), "num"], (p) => [num(p.average_entry), "num"],
    (p) => [num(p.mark_price), "num"], (p) => [num(p.unrealized_pnl), "num"], (p) => [num(p.realized_pnl), "num"],
    (p) => [num(p.fees), "num"],
  ], "no positions");
}

async function showDecisions() {
  const tradesOnly = $("trades-only").checked;
  const page = await api(scoped("/decisions?limit=15&trades_only=" + tradesOnly));
  fillTable("decisions", page.items, [
    (d) => [shortTime(d.occurred_at)], (d) => [d.failed ? d.action + " (failed)" : d.action],
    (d) => [num(d.size_pct, 1), "num"],
    (d) => [d.risk_approved === null ? "–" : d.risk_approved ? "approved" : "refused: " + (d.risk_rule || "")],
    (d) => [d.failed ? (d.failure_detail || d.failure_kind || "") : (d.rationale || "")],
  ], "no decisions yet");
}

async function showEvents() {
  try {
    const probe = await api("/events?limit=1&after=4611686018427387903");
    const after = Math.max(0, probe.last_notification_id - 12);
    const page = await api("/events?limit=12&after=" + after);
    fillTable("events", page.items.slice().reverse(), [
      (e) => [String(e.notification_id), "num"], (e) => [shortTime(e.occurred_at)], (e) => [e.type], (e) => [e.actor],
    ], "no events");
    $("events-note").textContent = "last notification id " + probe.last_notification_id;
  } catch (error) {
    if (error.status === 403) {
      fillTable("events", [], [() => [""]], "the event log needs an auditor or operator token");
      return;
    }
    throw error;
  }
}

async function showAlerts() {
  const list = $("alerts");
  try {
    const page = await api("/alerts?status=active&limit=20");
    list.replaceChildren();
    for (const alert of page.items) {
      const li = document.createElement("li");
      li.textContent = `${alert.severity} ${alert.check_name}: ${alert.message} (since ${shortTime(alert.raised_at)})`;
      list.appendChild(li);
    }
  } catch (error) {
    if (error instanceof Unauthorized) throw error;
    list.replaceChildren();  // an older read model without the alerts table
  }
}

function askForToken(message) {
  $("token-panel").hidden = false;
  $("token-message").textContent = message || "";
  $("token-input").focus();
}

async function refresh() {
  try {
    await showHealth();
    await showBots();
    await Promise.all([showRisk(), showPnl(), showEquityCurve(), showPositions(), showDecisions(), showEvents(),
      showAlerts()]);
    $("token-panel").hidden = true;
    $("updated").textContent = "updated " + new Date().toISOString().replace("T", " ").slice(0, 19) + "Z";
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error instanceof Unauthorized) {
      askForToken(localStorage.getItem(TOKEN_KEY) ? "the token was refused" : "this dashboard needs a token");
    } else {
      $("updated").textContent = "refresh failed: " + error.message;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  $("every").textContent = String(REFRESH_MS / 1000);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    refresh();
  });
  $("change-token").addEventListener("click", () => askForToken(""));
  $("trades-only").addEventListener("change", refresh);
  $("bot").addEventListener("change", (event) => chooseBot(event.target.value));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
