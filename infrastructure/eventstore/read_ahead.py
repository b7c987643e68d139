"""Reading the log a page ahead: the next page is fetched by a thread while the consumer works on this one.

A store's client releases the GIL while it waits for the server (psycopg) or steps through the
database file, so the fetch of page N+1 overlaps the decoding of page N on another core. The
first page is read in the caller's thread and a log that fits in one page starts no thread; after
that one worker per iteration fetches exactly one page ahead. The worker is always shut down and
joined when the iteration ends: exhausted, stopped early (the generator closed) or failed. An error
of the fetch is raised in the consumer, where the page it was reading would have been.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def pages_read_ahead(fetch: Callable[[int], Sequence[Any]], after: int, page: int,
                     next_after: Callable[[Sequence[Any]], int] = lambda rows: rows[-1][0]) -> Iterator[Sequence[Any]]:
    """The pages ``fetch(after)`` gives, in order, until one holds fewer than ``page`` rows.

    ``fetch`` is called from a worker thread for every page but the first; ``next_after`` names the
    id after which the next page starts (the first column of the page's last row by default).
    """
    rows = fetch(after)
    if len(rows) < page:
        yield rows
        return
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tradecore-log-read-ahead")
    try:
        while True:
            ahead = worker.submit(fetch, next_after(rows))
            yield rows
            del rows  # let the consumer's page go before waiting on the next
            rows = ahead.result()
            if len(rows) < page:
                yield rows
                return
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
