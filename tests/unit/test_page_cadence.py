"""A read node's projector starts pages at most every PAGE_EVERY seconds while the log keeps growing (api/http/server.py)."""

from __future__ import annotations

from api.http.server import PageCadence


class Clock:
    """A clock the test moves; a pause moves it by the time paused."""

    def __init__(self):
        self.now = 100.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(round(seconds, 6))
        self.now += seconds


def test_pages_of_one_catch_up_start_at_most_every_interval():
    clock = Clock()
    cadence = PageCadence(0.25, clock.pause, clock)
    clock.now += 0.1  # the first page takes 0.1 s
    cadence.paged()
    assert clock.pauses == [0.15]  # the second page starts 0.25 s after the first started
    clock.now += 0.4  # a slow page, longer than the interval: the next one starts at once
    cadence.paged()
    assert clock.pauses == [0.15]


def test_the_first_page_after_a_quiet_spell_starts_when_the_log_grows():
    clock = Clock()
    cadence = PageCadence(0.25, clock.pause, clock)
    clock.now += 0.05
    cadence.paged()  # 0.2 s paused: the next page starts at 100.25
    assert clock.pauses == [0.2]
    clock.now += 0.05  # nothing new was found: the projector waits for the log to grow
    cadence.wait(lambda seconds: setattr(clock, "now", clock.now + 2.0), 0.5)  # it grew 2 s later
    assert clock.pauses == [0.2]  # no turn to wait for: the page starts at once
    clock.now += 0.05
    cadence.wait(lambda seconds: setattr(clock, "now", clock.now + 0.01), 0.5)  # a wake soon after a page...
    assert clock.pauses == [0.2]  # ...but no page was applied since page 1 (started at 100.0): none to wait for


def test_a_wake_right_after_a_page_waits_for_its_turn():
    clock = Clock()
    cadence = PageCadence(0.25, clock.pause, clock)
    clock.now += 0.05
    cadence.paged()  # page 1 (from 100.0) applied at 100.05: page 2 starts at 100.25
    clock.now += 0.05
    cadence.paged()  # page 2 (from 100.25) applied at 100.30: the next read starts at 100.5 and finds nothing
    assert clock.pauses == [0.2, 0.2]
    clock.now = 100.55  # the log grew at 100.55
    cadence.wait(lambda seconds: None, 0.5)
    assert clock.pauses == [0.2, 0.2]  # its turn came at 100.5: page 3 starts at once
    clock.now += 0.03
    cadence.paged()  # page 3 (from 100.55) applied at 100.58
    assert clock.pauses == [0.2, 0.2, 0.22]


def test_no_interval_means_no_pause():
    clock = Clock()
    cadence = PageCadence(0.0, clock.pause, clock)
    for _ in range(3):
        clock.now += 0.01
        cadence.paged()
        cadence.wait(lambda seconds: None, 0.5)
    assert clock.pauses == []
