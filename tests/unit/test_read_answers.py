"""A read node computes an answer once per read-model position, however many requests ask for it together
(api/http/reading.py: cached_bytes, over a real ReadModelAccess on an in-memory DuckDB)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import duckdb

from api.http.readmodel import ReadModelAccess
from api.http.reading import Answers, cached_bytes

BOTS = ("fleet-00", "fleet-01", "fleet-02")


def _node():
    return SimpleNamespace(access=ReadModelAccess(duckdb.connect(":memory:")), answers=Answers())


def test_requests_for_one_answer_together_compute_it_once():
    node, calls = _node(), []

    def compute() -> bytes:
        calls.append(threading.get_ident())
        time.sleep(0.05)  # long enough for the other requests to arrive meanwhile
        return b'{"n": 1}'

    async def together():
        return await asyncio.gather(*(cached_bytes(node, ("risk", None, "fleet-00"), compute) for _ in range(8)))

    answers = asyncio.run(together())
    assert len(calls) == 1 and {a.body for a in answers} == {b'{"n": 1}'}


def test_a_family_computes_every_members_answer_once_and_each_request_gets_its_own():
    node, calls = _node(), []

    def every_bot(bot: str):
        def compute() -> bytes:
            calls.append(bot)
            time.sleep(0.05)
            at = node.access.position
            node.access.keep(at, {("risk", None, b): f'{{"bot": "{b}"}}'.encode() for b in BOTS if b != bot})
            return f'{{"bot": "{bot}"}}'.encode()
        return compute

    async def together():
        return await asyncio.gather(*(cached_bytes(node, ("risk", None, b), every_bot(b), family=("risk", "every bot"))
                                      for b in BOTS * 3))

    answers = asyncio.run(together())
    assert calls == ["fleet-00"]
    assert [a.body for a in answers] == [f'{{"bot": "{b}"}}'.encode() for b in BOTS * 3]


def test_an_answer_that_failed_is_computed_again_by_the_next_request():
    node, calls = _node(), []

    def compute() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the read model is not ready yet")
        return b"{}"

    async def twice():
        try:
            await cached_bytes(node, ("bots",), compute)
        except RuntimeError:
            pass
        return await cached_bytes(node, ("bots",), compute)

    assert asyncio.run(twice()).body == b"{}" and len(calls) == 2


def test_a_hot_family_is_computed_ahead_and_ready_at_the_new_position():
    node, calls = _node(), []
    node.answers.used(("risk", "every bot"), lambda position: calls.append(position) or {
        ("risk", None, b): f'{{"bot": "{b}", "as_of_position": {position}}}'.encode() for b in BOTS})
    node.access.moved(7, node.answers.warm(7))
    assert calls == [7] and node.access.position == 7
    assert node.access.peek(("risk", None, "fleet-01")) == b'{"bot": "fleet-01", "as_of_position": 7}'


def test_a_family_nobody_asked_for_lately_or_that_fails_is_not_computed_ahead():
    answers, calls = Answers(), []
    answers.used("old", lambda position: calls.append(position) or {"k": 1})
    answers.hot["old"] = (time.monotonic() - Answers.HOT_SECONDS - 1, answers.hot["old"][1])

    def broken(position):
        raise RuntimeError("the read model is not ready yet")

    answers.used("broken", broken)
    assert answers.warm(8) == {} and calls == [] and answers.hot == {}
