"""RowOrder: a restore's checks of the archive's rows before they are written name the first bad row as ChainWalk
does (ids out of order or repeated, a missing link, an empty field), and pass good rows through unchanged."""

from __future__ import annotations

import uuid

import pytest

from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.rows import rows_to_batch
from infrastructure.backup.walk import ChainWalk, RowOrder
from infrastructure.eventstore.chain import GENESIS, chain_link


def rows(n: int, start: int = 1) -> list[list]:
    cols: list[list] = [[], [], [], [], [], []]
    previous = GENESIS
    for nid in range(start, start + n):
        oid = uuid.UUID(int=nid)
        state = b'{"n":%d}' % nid
        previous = chain_link(previous, nid, oid, 1, "domain.market:CandleClosed", state)
        for col, value in zip(cols, (nid, oid.hex, 1, "domain.market:CandleClosed", state, previous)):
            col.append(value)
    return cols


def test_good_rows_pass_through_as_the_chain_walk_gives_them():
    order, walk = RowOrder(), ChainWalk()
    cols = rows(80)
    for start in (0, 40):
        batch = rows_to_batch(*(col[start:start + 40] for col in cols))
        assert order.feed(batch) == walk.feed(batch)
    assert (order.count, order.first_id, order.last_id) == (walk.count, walk.first_id, walk.last_id) == (80, 1, 80)


@pytest.mark.parametrize("spoil, message", [
    (lambda c: [col.insert(5, col[4]) for col in c], "notification 5 comes after 5"),
    (lambda c: c[0].__setitem__(7, 3), "notification 3 comes after 7"),
    (lambda c: c[5].__setitem__(6, None), "notification 7 has no chain link"),
    (lambda c: c[4].__setitem__(2, None), "notification 3 has an empty field"),
    (lambda c: c[1].__setitem__(0, None), "notification 1 has an empty field"),
])
def test_the_first_bad_row_is_named_as_the_chain_walk_names_it(spoil, message):
    cols = rows(10)
    spoil(cols)
    for check in (RowOrder(), ChainWalk()):
        with pytest.raises(ArchiveProblem, match=message):
            check.feed(rows_to_batch(*cols))


def test_a_batch_that_does_not_follow_the_one_before_is_refused():
    order = RowOrder()
    order.feed(rows_to_batch(*rows(10)))
    with pytest.raises(ArchiveProblem, match="notification 10 comes after 10"):
        order.feed(rows_to_batch(*rows(5, start=10)))
