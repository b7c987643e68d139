"""A fleet on one PostgreSQL log: 20 simulated bots write while two read nodes follow (`python -m bench fleet`).

Loopback only, bounded (about 100 s of load, about two minutes in all):

- a fresh PostgreSQL schema (TRADECORE_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/test) holds the log;
- two `tradecore serve` processes follow it (LISTEN/NOTIFY), each with its own DuckDB file;
- a writer process runs 20 paper bots (bot ids fleet-00..fleet-19, five products) through the real trading loop
  and paper exchange at 100x real time: each bot closes a one-minute candle every 0.6 s and records the candle,
  its decision and risk verdict, and every 8th candle an order (placed, submitted, accepted, filled) that it
  closes 4 candles later;
- a probe process (one thread per node, plain keep-alive http.client) polls `GET /bots` (whose `as_of_position` is
  the node's read-model position) and notes when each position first became visible; an append's lag is the time
  from the writer's commit to the first probe answer at or past its notification id (probe resolution about 10 ms).
  The probes used to be threads of the writer: their HTTP client then took the writer's GIL and CPU, and the writer
  fell behind its 100x (fleet_speedup_achieved ~72);
- the load: a Python asyncio generator (16 keep-alive connections, bot-scoped GET /positions?bot= and
  /risk/metrics?bot=) drives node 1 then node 2 for LOAD_SECONDS each, as fast as the node answers (closed loop:
  what a node can serve), while the writers go on; then each node in turn at PACED_RATE requests/s (open loop,
  latencies from when each request was due; a generator process of its own, on uvloop) for PACED_SECONDS: the
  target load, and the lag under it.

Figures: fleet_node{1,2}_lag_p50_ms / _p99_ms (the whole run), _lag_under_load_p99_ms, fleet_node{1,2}_requests_per_s,
_p99_ms, _errors; the same at the paced load (_paced_requests_per_s, _paced_p99_ms from when each request was due,
_paced_from_sending_p99_ms from when it was sent: the difference is the time the generator itself was late, for
the server or for a core, _paced_errors, _lag_paced_p99_ms); fleet_events_appended, fleet_orders; _pages (distinct positions the probe saw: the pages the node
applied). What each process costs, in cores (CPU seconds over wall seconds, psutil): fleet_cpu_cores_node{1,2} over
the run and _node{1,2}_under_load over its load window, fleet_cpu_cores_writer, _probe, _load_generator (during the
load windows), _postgres (every postgres process of the machine), and fleet_cpu_cores_machine_idle /
fleet_cpu_cores_other (the machine's idle cores, and what processes outside the bench took). The load generator,
the writer and both nodes share the machine's cores: the figures are a floor for separate machines.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-fleet-viewer-token"
PG = os.environ.get("TRADECORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BOTS, SPEEDUP, PRODUCTS = 20, 100, ("BTC-USD", "ETH-USD", "SOL-USD", "ETH-BTC", "LTC-USD")
IDLE_SECONDS, LOAD_SECONDS, CONNECTIONS = 15, 20, 16
PACED_SECONDS, PACED_RATE = 12, 2000  # each node in turn at the target rate (requests/s)
START = datetime(2026, 2, 2, tzinfo=timezone.utc)


# --- the writer process: 20 bots through the trading loop, and the probes ------------------------------------

class Scripted:
    """LONG every 8th candle (10% of equity, 2% stop), CLOSE 4 candles later, HOLD otherwise."""

    name = "scripted"

    def __init__(self):
        self.count = 0

    def decide(self, context):
        from domain.decision import StrategyDecision, TradeAction, TradeActionKind

        self.count += 1
        kind = {0: TradeActionKind.LONG, 4: TradeActionKind.CLOSE}.get(self.count % 8, TradeActionKind.HOLD)
        return StrategyDecision(TradeAction(action=kind, size_pct=10 if kind is TradeActionKind.LONG else 0,
                                            stop_loss_pct=2 if kind is TradeActionKind.LONG else None,
                                            rationale="fleet bench script"), strategy=self.name)


class NoIndicators:
    def on_candle(self, candle):
        return {}


def _probe(url: str, seen: list, stop: threading.Event) -> None:
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    last, conn = -1, None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(where.hostname, where.port, timeout=5)
            conn.request("GET", "/bots", headers=headers)
            position = json.loads(conn.getresponse().read())["as_of_position"]
        except Exception:  # noqa: BLE001 - a slow answer under load, a dropped connection: try again
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(0.01)
            continue
        if position != last:
            seen.append((time.time(), position))
            last = position
        stop.wait(0.01)


def probe(node_urls: list[str], seconds: float, out: str) -> None:
    """One probe thread per node for ``seconds``; what each saw, to ``out``."""
    stop = threading.Event()
    seen: dict[str, list] = {url: [] for url in node_urls}
    probes = [threading.Thread(target=_probe, args=(url, seen[url], stop), daemon=True) for url in node_urls]
    for thread in probes:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in probes:
        thread.join(10)
    Path(out).write_text(json.dumps(seen))


def writer(store_url: str, seconds: float, out: str) -> None:
    from api.bootstrap import open_store, paper_exchange, random_ids
    from application.trading.loop import LoopSettings, TradingLoop
    from domain.control import RunMode
    from domain.market import Candle
    from api.bootstrap import configuration

    settings = configuration().load_settings(env={})
    store = open_store(store_url)
    rng = random.Random(16)
    bots = []
    for i in range(BOTS):
        product = PRODUCTS[i % len(PRODUCTS)]
        loop = TradingLoop(store, paper_exchange(settings, f"paper-fleet-{i:02d}"), Scripted(), NoIndicators(),
                           LoopSettings(product, "1m", quote_currency=product.split("-")[1], bot_id=f"fleet-{i:02d}"),
                           uuid.uuid4(), random_ids(), RunMode.PAPER)
        loop.start(START, Decimal(10) if product.endswith("-BTC") else Decimal(100000), "bench", "bench")
        bots.append((loop, product))
    # One market per product: the bots trading a product see the same candles (the first records each one).
    prices = {p: Decimal("0.05") if p.endswith("-BTC") else Decimal(100 + 900 * k) for k, p in enumerate(PRODUCTS)}

    def candles(minute: int) -> dict:
        bar, out = START + timedelta(minutes=minute), {}
        for product, price in prices.items():
            quantum = Decimal("0.00001") if product.endswith("-BTC") else Decimal("0.01")
            close = (price * (1 + Decimal(rng.randint(-30, 30)) / Decimal(10000))).quantize(quantum)
            o = price.quantize(quantum)
            out[product] = Candle(product, "1m", bar, o, max(o, close), min(o, close), close, Decimal(rng.randint(1, 50)))
            prices[product] = close
        return out

    appends: list[tuple[float, int]] = []
    step = 60 / SPEEDUP / BOTS  # one bot's candle every 30 ms: each bot every 0.6 s
    began = time.monotonic()
    minute = 0
    while time.monotonic() - began < seconds:
        bars = candles(minute)
        for i, (loop, product) in enumerate(bots):
            time.sleep(max(0.0, began + (minute * BOTS + i) * step - time.monotonic()))
            loop.step(bars[product])
            appends.append((time.time(), store.max_notification_id()))
        minute += 1
    for loop, _ in bots:
        loop.finish(START + timedelta(minutes=minute), "stopped", "bench over")
    appends.append((time.time(), store.max_notification_id()))
    orders = sum(loop.summary.orders for loop, _ in bots)
    store.close()
    Path(out).write_text(json.dumps({"appends": appends, "orders": orders, "minutes": minute,
                                     "speedup": round(minute * 60 / seconds, 1)}))


# --- the load generator -----------------------------------------------------------------------------------

async def _load(url: str, seconds: float, rate: float | None = None,
                served: list[float] | None = None) -> tuple[list[float], int, float]:
    """CONNECTIONS keep-alive clients (bench/load.py), bot-scoped GETs; latencies of the 200s. As fast as the node
    answers, or at ``rate`` requests/s (latencies from when each request was due)."""
    from bench.load import lean_load

    paths = [f"/positions?bot=fleet-{i:02d}" for i in range(BOTS)] + [f"/risk/metrics?bot=fleet-{i:02d}" for i in range(BOTS)]
    return await lean_load(url, paths, TOKEN, CONNECTIONS, seconds, stride=7, rate=rate, served=served)


def paced(url: str, out: str) -> None:
    """One node's paced load, in a process of its own (one Python process pacing both nodes fell behind its own
    schedule on the shared cores, and its latencies, counted from when each request was due, measured itself)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    served: list[float] = []
    latencies, errors, wall = runner(_load(url, PACED_SECONDS, PACED_RATE, served))
    Path(out).write_text(json.dumps([latencies, errors, wall, round(time.process_time() / wall, 2), served]))


def _paced(url: str, out: Path, env: dict) -> tuple[list[float], int, float, float, list[float]]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_fleet", "paced", url, str(out)], cwd=REPO, env=env)
    if proc.wait(timeout=PACED_SECONDS + 60) != 0:
        raise RuntimeError("the paced load generator failed")
    return json.loads(out.read_text())


def _pct(values: list[float], p: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 1) if values else None


def _lags(appends: list, seen: list, since: float = 0.0, until: float = float("inf")) -> list[float]:
    """ms from each append (wall time, notification id) to the first probe answer at or past that id."""
    lags, j = [], 0
    for at, nid in appends:
        while j < len(seen) and seen[j][1] < nid:
            j += 1
        if j == len(seen):
            break
        if since <= at < until:
            lags.append(round(max(0.0, (seen[j][0] - at) * 1000), 1))
    return lags


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, deadline: float) -> None:
    from bench.load import wait_for

    wait_for(url, lambda r: r.status_code in (200, 503), deadline, "start")


class CpuUse:
    """CPU seconds of the bench's processes, PostgreSQL's and the whole machine's, at a moment (psutil)."""

    def __init__(self, procs: dict[str, int]):
        import psutil

        self.procs = {tag: psutil.Process(pid) for tag, pid in procs.items()}

    def take(self) -> dict:
        import psutil

        taken = {"at": time.monotonic(), "load_generator": time.process_time()}
        for tag, proc in self.procs.items():
            try:
                times = proc.cpu_times()
                taken[tag] = times.user + times.system
            except psutil.Error:
                taken[tag] = None
        postgres = 0.0
        for proc in psutil.process_iter(["name"]):
            if (proc.info["name"] or "").startswith("postgres"):
                try:
                    times = proc.cpu_times()
                    postgres += times.user + times.system
                except psutil.Error:
                    pass
        machine = psutil.cpu_times()
        taken.update(postgres=postgres, machine_idle=machine.idle + getattr(machine, "iowait", 0.0),
                     machine_all=sum(machine) - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0))
        return taken

    @staticmethod
    def cores(before: dict, after: dict, tag: str) -> float | None:
        if before.get(tag) is None or after.get(tag) is None:
            return None
        return round((after[tag] - before[tag]) / (after["at"] - before["at"]), 2)


def _cpu_figures(start: dict, end: dict, windows: dict[int, tuple[dict, dict]]) -> dict:
    """Cores each process used (CPU seconds / wall seconds): over the run, and each node under its load."""
    wall = end["at"] - start["at"]
    figures = {f"fleet_cpu_cores_{tag}": CpuUse.cores(start, end, tag) for tag in ("node1", "node2", "writer", "probe",
                                                                                      "postgres")}
    generator = sum(after["load_generator"] - before["load_generator"] for before, after in windows.values())
    figures["fleet_cpu_cores_load_generator"] = round(generator / sum(a["at"] - b["at"] for b, a in windows.values()), 2)
    for k, (before, after) in windows.items():
        figures[f"fleet_cpu_cores_node{k}_under_load"] = CpuUse.cores(before, after, f"node{k}")
    busy = (end["machine_all"] - start["machine_all"]) - (end["machine_idle"] - start["machine_idle"])
    ours = sum(end[t] - start[t] for t in ("node1", "node2", "writer", "probe", "postgres") if start.get(t) is not None
               and end.get(t) is not None) + generator
    figures["fleet_cpu_cores_machine_idle"] = round((end["machine_idle"] - start["machine_idle"]) / wall, 2)
    figures["fleet_cpu_cores_other"] = round(max(0.0, busy - ours) / wall, 2)  # processes outside the bench
    return figures


def run() -> dict:
    import psycopg

    schema = f"bench_fleet_{uuid.uuid4().hex[:8]}"
    store = f"{PG}?schema={schema}"
    work = Path(tempfile.mkdtemp(prefix="tradecore-bench-fleet-"))
    env = {**os.environ, "SYSTEM__API_TOKENS": json.dumps([{"name": "bench", "token": TOKEN, "role": "viewer"}]),
           "SYSTEM__LOG_FILE": str(work / "serve.log")}
    cli = [sys.executable, "-m", "api.cli.main"]
    nodes, helpers = [], []
    try:
        from api.bootstrap import open_store

        open_store(store).close()
        for k in (1, 2):
            port = _free_port()
            proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--store", store, "--readmodel",
                                     str(work / f"node{k}.duckdb")], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            nodes.append((f"http://127.0.0.1:{port}", proc))
        for url, _ in nodes:
            _wait_up(url, time.monotonic() + 60)
        seconds = IDLE_SECONDS + 2 * LOAD_SECONDS + 2 * PACED_SECONDS + 4
        out, seen_out = work / "writer.json", work / "probe.json"
        writer_proc = subprocess.Popen([sys.executable, "-m", "bench.bench_fleet", "writer", store, str(seconds), str(out)],
                                       cwd=REPO, env=env)
        helpers.append(writer_proc)
        probe_proc = subprocess.Popen([sys.executable, "-m", "bench.bench_fleet", "probe", ",".join(u for u, _ in nodes),
                                       str(seconds + 4), str(seen_out)], cwd=REPO, env=env)
        helpers.append(probe_proc)
        cpu = CpuUse({"node1": nodes[0][1].pid, "node2": nodes[1][1].pid, "writer": writer_proc.pid,
                      "probe": probe_proc.pid})
        start = cpu.take()
        time.sleep(IDLE_SECONDS)
        figures: dict = {}
        windows, cpu_windows = {}, {}
        for k, (url, _) in enumerate(nodes, 1):
            began, before = time.time(), cpu.take()
            latencies, errors, wall = asyncio.run(_load(url, LOAD_SECONDS))
            windows[k], cpu_windows[k] = (began, time.time()), (before, cpu.take())
            figures.update({f"fleet_node{k}_requests_per_s": round((len(latencies) + errors) / wall, 1),
                            f"fleet_node{k}_p50_ms": _pct(latencies, 0.5), f"fleet_node{k}_p99_ms": _pct(latencies, 0.99),
                            f"fleet_node{k}_errors": errors})
        for k, (url, _) in enumerate(nodes, 1):
            began, before = time.time(), cpu.take()
            latencies, errors, wall, generator, served = _paced(url, work / f"paced{k}.json", env)
            windows[f"paced{k}"], after = (began, time.time()), cpu.take()
            figures.update({f"fleet_node{k}_paced_requests_per_s": round((len(latencies) + errors) / wall, 1),
                            f"fleet_node{k}_paced_p50_ms": _pct(latencies, 0.5),
                            f"fleet_node{k}_paced_p99_ms": _pct(latencies, 0.99), f"fleet_node{k}_paced_errors": errors,
                            f"fleet_node{k}_paced_from_sending_p50_ms": _pct(served, 0.5),
                            f"fleet_node{k}_paced_from_sending_p99_ms": _pct(served, 0.99),
                            f"fleet_cpu_cores_node{k}_paced": CpuUse.cores(before, after, f"node{k}"),
                            f"fleet_cpu_cores_paced_generator{k}": generator})
        end = cpu.take()
        if writer_proc.wait(timeout=seconds + 60) != 0:
            raise RuntimeError("the fleet writer failed")
        if probe_proc.wait(timeout=30) != 0:
            raise RuntimeError("the fleet probe failed")
        result, seen = json.loads(out.read_text()), json.loads(seen_out.read_text())
        for k, (url, _) in enumerate(nodes, 1):
            lags = _lags(result["appends"], seen[url])
            loaded = _lags(result["appends"], seen[url], *windows[k])
            idle = _lags(result["appends"], seen[url], 0.0, windows[1][0])  # before any API load
            figures.update({f"fleet_node{k}_lag_p50_ms": _pct(lags, 0.5), f"fleet_node{k}_lag_p99_ms": _pct(lags, 0.99),
                            f"fleet_node{k}_lag_no_api_load_p99_ms": _pct(idle, 0.99),
                            f"fleet_node{k}_lag_under_load_p99_ms": _pct(loaded, 0.99), f"fleet_node{k}_lag_samples": len(lags),
                            f"fleet_node{k}_lag_paced_p99_ms": _pct(_lags(result["appends"], seen[url], *windows[f"paced{k}"]), 0.99),
                            f"fleet_node{k}_pages": len(seen[url])})
        figures["fleet_events_appended"] = result["appends"][-1][1]
        figures["fleet_orders"] = result["orders"]
        figures["fleet_speedup_achieved"] = result["speedup"]  # below 100: the writer fell behind (CPU)
        figures.update(_cpu_figures(start, end, cpu_windows))
        follows = (work / "serve.log").read_text() if (work / "serve.log").exists() else ""
        figures["fleet_following"] = "listen/notify" if "follows the log by listen/notify" in follows else "polling"
        figures["fleet_load"] = (f"{BOTS} bots x {result['minutes']} one-minute candles at {SPEEDUP}x real time into "
                                 f"PostgreSQL; 2 tradecore serve nodes; python asyncio load, {CONNECTIONS} connections, "
                                 f"{LOAD_SECONDS} s per node as fast as it answers, then {PACED_SECONDS} s per node at "
                                 f"{PACED_RATE} requests/s (_paced_, a generator process of its own), GET /positions?bot= + /risk/metrics?bot=")
        return figures
    finally:
        for proc in helpers:
            if proc.poll() is None:
                proc.kill()
        for _, proc in nodes:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["writer"]:
        writer(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["paced"]:
        paced(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["probe"]:
        probe(sys.argv[2].split(","), float(sys.argv[3]), sys.argv[4])
    else:
        print(json.dumps(run(), indent=2))
