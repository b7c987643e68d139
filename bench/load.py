"""A lean HTTP load generator for the read API benchmarks: keep-alive HTTP/1.1 connections over asyncio streams.

Each request's status line is checked (200) and its whole body read (Content-Length or chunked). httpx costs the
client about a millisecond of CPU per request, more than the server: on two shared cores it, not the server, would
set the figure. Bounded in time (and, optionally, in requests); loopback only.

Closed loop by default (each connection sends its next request when the last answer is in: the most the server
answers). With ``rate`` it is an open loop: the requests are due at that rate overall, evenly spread, whatever the
server's pace, and each latency runs from when its request was due, so a stall counts for every request it held up.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


async def _ok(reader: asyncio.StreamReader) -> bool:
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        body = await reader.readexactly(int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]))
    else:  # chunked
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
    return head[9:12] == b"200" and len(body) > 2


async def lean_load(url: str, paths: list[str], token: str, connections: int, seconds: float,
                    max_requests: int | None = None, stride: int = 1,
                    rate: float | None = None, served: list[float] | None = None) -> tuple[list[float], int, float]:
    """(latencies of the 200s in ms, errors, wall seconds) of ``connections`` clients GETting ``paths`` in turn
    (at ``rate`` requests/s in all when given; ``served`` then gets each 200's time from its sending, in ms)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode() for p in paths]
    latencies: list[float] = []
    errors = sent = 0
    began = time.perf_counter()
    deadline = began + seconds

    async def client(k: int) -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection(host, port)
        every = connections / rate if rate else 0.0
        due = began + k * every / connections  # this connection's first request, spread over the others'
        try:
            while (max_requests is None or sent < max_requests) and time.perf_counter() < deadline:
                sent += 1
                at = time.perf_counter()
                if rate:
                    if due > at:
                        await asyncio.sleep(due - at)
                    sending, at, due = time.perf_counter(), due, due + every
                try:
                    writer.write(requests[(sent * stride + k) % len(requests)])
                    ok = await asyncio.wait_for(_ok(reader), 10)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                if ok:
                    latencies.append((time.perf_counter() - at) * 1000)
                    if rate and served is not None:
                        served.append((time.perf_counter() - sending) * 1000)
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(connections)))
    return latencies, errors, time.perf_counter() - began


def wait_for(url: str, ready, deadline: float, what: str) -> None:
    """Poll ``url``/health until ``ready(response)`` (or raise at ``deadline``, a time.monotonic())."""
    import httpx

    while time.monotonic() < deadline:
        try:
            if ready(httpx.get(url + "/health", timeout=2)):
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not {what} in time")
