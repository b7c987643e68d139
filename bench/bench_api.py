"""REST API under load: GET /positions and /risk/metrics on loopback against `tradecore serve`.

A backtest over a slice of the bundled candles fills a scratch store; `tradecore
serve` (its own process, projector + API) builds the read model and serves it;
wrk (Debian's package) drives 50 connections for 30 s, alternating the two
paths with a viewer token. Targets on the 2-core machine: >= 2,000 requests/s,
p99 < 25 ms, 0 errors. wrk shares the two cores with the server, so the figure
is a floor for a dedicated server.
"""

from __future__ import annotations

import json
import os
import re
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
CONNECTIONS, THREADS, SECONDS = 50, 1, 30  # one wrk thread leaves the other core to the server
CANDLES_FROM, CANDLES_TO = "2018-01-01", "2018-03-31"

_LUA = """
local paths = {"/positions", "/risk/metrics"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1])
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles (ms) and errors from `wrk --latency` output."""
    figures: dict = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    figures["api_requests_per_s"] = round(float(rps.group(1)), 1) if rps else None
    total = re.search(r"(\d+) requests in", output)
    figures["api_requests"] = int(total.group(1)) if total else None
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+(?:us|ms|s))", output, re.M)
        figures[f"api_p{pct}_ms"] = round(_ms(found.group(1)), 3) if found else None
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    figures["api_errors"] = errors
    return figures


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
    wrk = shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)
    if wrk is None:
        print("bench api: wrk is not installed (apt-get install -y wrk); no API load figures", file=sys.stderr)
        return {"api_error": "wrk is not installed (apt-get install -y wrk)"}
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
        script = work / "paths.lua"
        script.write_text(_LUA)
        header = ["-H", f"Authorization: Bearer {TOKEN}"]
        subprocess.run([wrk, "-t", "2", "-c", "10", "-d", "2s", "-s", str(script), *header, url],
                       check=True, capture_output=True, timeout=60)  # warm-up: caches and connections
        result = subprocess.run([wrk, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "--latency",
                                 "-s", str(script), *header, url], check=True, capture_output=True, text=True,
                                timeout=SECONDS + 60)
        figures = parse_wrk(result.stdout)
        figures.update({
            "api_load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS}s GET /positions + /risk/metrics (loopback, tradecore serve)",
            "api_target_met": bool(figures["api_requests_per_s"] and figures["api_requests_per_s"] >= 2000
                                   and figures["api_p99_ms"] is not None and figures["api_p99_ms"] < 25
                                   and figures["api_errors"] == 0),
        })
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
