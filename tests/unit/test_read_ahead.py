"""pages_read_ahead: pages in order, one worker per iteration, always joined, its errors raised in the consumer."""

from __future__ import annotations

import threading

import pytest

from infrastructure.eventstore.read_ahead import pages_read_ahead

WORKER = "tradecore-log-read-ahead"


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(WORKER)]


class Log:
    """A fake log of ids 1..n read in pages after an id; remembers who fetched what."""

    def __init__(self, n: int, page: int, fail_after: int | None = None):
        self.n, self.page, self.fail_after = n, page, fail_after
        self.calls: list[tuple[int, str]] = []

    def fetch(self, after: int) -> list[tuple[int, str, bytes]]:
        self.calls.append((after, threading.current_thread().name))
        if self.fail_after is not None and after >= self.fail_after:
            raise OSError(f"connection lost reading after {after}")
        return [(i, "t", b"{}") for i in range(after + 1, min(after + self.page, self.n) + 1)]


@pytest.mark.parametrize("n, page", [(0, 3), (2, 3), (3, 3), (10, 3), (12, 4), (100, 7)])
def test_pages_come_in_order_until_a_short_one(n, page):
    log = Log(n, page)
    pages = list(pages_read_ahead(log.fetch, 0, page))
    assert [row[0] for rows in pages for row in rows] == list(range(1, n + 1))
    assert len(pages[-1]) < page and all(len(rows) == page for rows in pages[:-1])
    assert [after for after, _ in log.calls] == [0, *(rows[-1][0] for rows in pages[:-1])]
    assert workers() == []


def test_the_first_page_is_read_in_the_callers_thread_and_a_short_log_starts_no_worker():
    log = Log(2, 5)
    assert len(list(pages_read_ahead(log.fetch, 0, 5))) == 1
    assert log.calls == [(0, threading.current_thread().name)]
    log = Log(20, 5)
    list(pages_read_ahead(log.fetch, 0, 5))
    assert log.calls[0][1] == threading.current_thread().name
    assert {name for _, name in log.calls[1:]} and all(name.startswith(WORKER) for _, name in log.calls[1:])


def test_a_page_ahead_is_fetched_while_the_consumer_holds_this_one():
    log = Log(30, 5)
    pages = pages_read_ahead(log.fetch, 0, 5)
    first = next(pages)
    assert first[0][0] == 1
    assert [after for after, _ in log.calls][:2] == [0, 5]  # the second page was asked for before the first was used
    pages.close()


def test_stopping_early_joins_the_worker():
    log = Log(1000, 10)
    pages = pages_read_ahead(log.fetch, 0, 10)
    next(pages), next(pages)
    assert len(workers()) == 1
    pages.close()
    assert workers() == []
    assert len(log.calls) <= 3  # no page read after the stop but the one in flight


def test_a_consumer_that_raises_joins_the_worker():
    log = Log(1000, 10)
    with pytest.raises(ZeroDivisionError):
        for rows in pages_read_ahead(log.fetch, 0, 10):
            if rows[0][0] > 20:
                1 / 0
    assert workers() == []


def test_an_error_of_the_worker_is_raised_in_the_consumer_after_the_pages_before_it():
    log = Log(100, 10, fail_after=30)
    seen = []
    with pytest.raises(OSError, match="connection lost reading after 30"):
        for rows in pages_read_ahead(log.fetch, 0, 10):
            seen += [row[0] for row in rows]
    assert seen == list(range(1, 31))
    assert workers() == []


def test_after_and_next_after_are_honoured():
    log = Log(50, 10)
    pages = list(pages_read_ahead(log.fetch, 25, 10))
    assert [row[0] for rows in pages for row in rows] == list(range(26, 51))
    stepped = Log(50, 10)
    list(pages_read_ahead(stepped.fetch, 0, 10, next_after=lambda rows: rows[-1][0] + 5))
    assert [after for after, _ in stepped.calls] == [0, 15, 30, 45]
