"""REST API under load: GET /positions and /risk/metrics on loopback against `tradecore serve`.

A backtest over a slice of the bundled candles fills a scratch store; `tradecore serve` (its own
process, projector + API) builds the read model and serves it. The load comes from Python, so a fresh
clone needs nothing else: CONNECTIONS concurrent keep-alive clients alternate the two paths with a
viewer token for SECONDS (after a 2 s warm-up through httpx) or MAX_REQUESTS, whichever comes first.
Each request's latency is its own perf_counter span; an error is an exception, a status other than
200 or an empty body. The judged figures (api_*) come from plain asyncio streams; the same load
through httpx.AsyncClient (api_httpx_*, HTTPX_SECONDS) is printed beside them: httpx spends about a
millisecond of client CPU per request, so on two shared cores it measures the client, not the server.
Targets on the 2-core machine: >= 2,000 requests/s, p99 < 25 ms, 0 errors. The load generator shares
the two cores with the server, so the figures are a floor for a dedicated server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-viewer-token"
CONNECTIONS, SECONDS, MAX_REQUESTS = 16, 15, 200_000
HTTPX_SECONDS = 5  # the same load through httpx, for comparison (its client is the bottleneck)
CANDLES_FROM, CANDLES_TO = "2018-01-01", "2018-03-31"
PATHS = ("/positions", "/risk/metrics")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _httpx_load(url: str, seconds: float, max_requests: int) -> tuple[list[float], int, float]:
    """httpx.AsyncClient over CONNECTIONS workers: latencies (ms) of the 200s, the errors, the wall seconds."""
    import asyncio

    import httpx

    latencies: list[float] = []
    errors = sent = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits,
                                 timeout=10) as client:
        began = time.perf_counter()
        deadline = began + seconds

        async def worker(k: int) -> None:
            nonlocal errors, sent
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                at = time.perf_counter()
                try:
                    response = await client.get(PATHS[(sent + k) % 2])
                    ok = response.status_code == 200 and bool(response.json())
                except (httpx.HTTPError, ValueError):
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - at) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
        return latencies, errors, time.perf_counter() - began


async def _lean_load(url: str, seconds: float, max_requests: int) -> tuple[list[float], int, float]:
    """The same load over plain asyncio streams (bench/load.py): httpx's own client CPU would set the figure."""
    from bench.load import lean_load

    return await lean_load(url, list(PATHS), TOKEN, CONNECTIONS, seconds, max_requests)


def _figures(prefix: str, latencies: list[float], errors: int, wall: float) -> dict:
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 3) if latencies else None

    return {f"{prefix}_requests": len(latencies) + errors,
            f"{prefix}_requests_per_s": round((len(latencies) + errors) / wall, 1),
            f"{prefix}_p50_ms": pct(0.50), f"{prefix}_p90_ms": pct(0.90), f"{prefix}_p99_ms": pct(0.99),
            f"{prefix}_errors": errors}


def load_figures(url: str, seconds: float = SECONDS, max_requests: int = MAX_REQUESTS) -> dict:
    import asyncio

    asyncio.run(_httpx_load(url, 2, 10_000))  # warm-up: caches and connections
    figures = _figures("api", *asyncio.run(_lean_load(url, seconds, max_requests)))
    figures.update(_figures("api_httpx", *asyncio.run(_httpx_load(url, HTTPX_SECONDS, max_requests))))
    return figures


def _wait_caught_up(url: str, deadline: float) -> None:
    from bench.load import wait_for

    wait_for(url, lambda r: r.json()["checks"]["projector_lag_events"] == 0, deadline, "catch up")


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="tradecore-bench-api-"))
    store = f"sqlite:///{work / 'events.db'}"
    env = {**os.environ, "SYSTEM__API_TOKENS": json.dumps([{"name": "bench", "token": TOKEN, "role": "viewer"}])}
    cli = [sys.executable, "-m", "api.cli.main"]
    server = None
    try:
        subprocess.run([*cli, "backtest", "--bundled", "--from", CANDLES_FROM, "--to", CANDLES_TO, "--store", store, "--json"],
                       cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
        port = _free_port()
        server = subprocess.Popen([*cli, "serve", "--port", str(port), "--store", store, "--readmodel", str(work / "rm.duckdb")],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        _wait_caught_up(url, time.monotonic() + 120)
        figures = load_figures(url)
        figures["api_load"] = (f"python asyncio, {CONNECTIONS} keep-alive connections, {SECONDS} s or {MAX_REQUESTS:,} "
                               "requests, GET /positions + /risk/metrics (loopback, tradecore serve); api_httpx_*: "
                               f"the same through httpx.AsyncClient for {HTTPX_SECONDS} s")
        return figures
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
