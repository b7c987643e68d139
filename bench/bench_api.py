"""REST API under load: GET /positions and /risk/metrics on loopback against `tradecore serve`.

A backtest over a slice of the bundled candles fills a scratch store; `tradecore serve` (its own
process, projector + API) builds the read model and serves it. The load comes from Python, so a fresh
clone needs nothing else: asyncio with httpx.AsyncClient, CONNECTIONS concurrent keep-alive clients
alternating the two paths with a viewer token, for SECONDS (after a 2 s warm-up) or MAX_REQUESTS,
whichever comes first. Each request's latency is its own perf_counter span; an error is an exception
or a status other than 200. Targets on the 2-core machine: >= 2,000 requests/s, p99 < 25 ms, 0 errors.
The load generator shares the two cores with the server (and Python's client costs about as much per
request as the server), so the figures are a floor for a dedicated server.
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
CANDLES_FROM, CANDLES_TO = "2018-01-01", "2018-03-31"
PATHS = ("/positions", "/risk/metrics")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(url: str, seconds: float, max_requests: int) -> tuple[list[float], int, float]:
    """Latencies (ms) of the requests that succeeded, the errors, the wall seconds."""
    import asyncio

    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=10) as client:
        began = time.perf_counter()
        deadline = began + seconds

        async def worker(k: int) -> None:
            nonlocal errors, sent
            i = k
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                at = time.perf_counter()
                try:
                    response = await client.get(PATHS[i % 2])
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - at) * 1000)
                else:
                    errors += 1
                i += 1

        await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
        wall = time.perf_counter() - began
    return latencies, errors, wall


def load_figures(url: str, seconds: float = SECONDS, max_requests: int = MAX_REQUESTS) -> dict:
    import asyncio

    asyncio.run(_load(url, 2, 10_000))  # warm-up: caches and connections
    latencies, errors, wall = asyncio.run(_load(url, seconds, max_requests))
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 3) if latencies else None

    return {
        "api_requests": len(latencies) + errors,
        "api_requests_per_s": round((len(latencies) + errors) / wall, 1),
        "api_p50_ms": pct(0.50), "api_p90_ms": pct(0.90), "api_p99_ms": pct(0.99),
        "api_errors": errors,
    }


def _wait_caught_up(url: str, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            health = httpx.get(url + "/health", timeout=2).json()
            if health["checks"]["projector_lag_events"] == 0:
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not catch up in time")


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
        figures["api_load"] = (f"python asyncio + httpx, {CONNECTIONS} connections, {SECONDS} s or {MAX_REQUESTS:,} "
                               "requests, GET /positions + /risk/metrics (loopback, tradecore serve)")
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
