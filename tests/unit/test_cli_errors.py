"""The CLI's error boundary: what each failure becomes (one line: what failed, what to do, exit code)."""

from __future__ import annotations

import csv
import errno
import gzip

from api.cli.errors import CommandFailed, explain, take_debug_flag
from application.errors import StoreUnavailable


def test_a_full_disk_says_so_and_what_to_do():
    what, todo, code = explain(OSError(errno.ENOSPC, "No space left on device", "var/events.db"))
    assert what == "the disk is full while writing var/events.db" and "free some space" in todo and code == 1


def test_user_errors_are_exit_2_and_name_the_thing():
    assert explain(FileNotFoundError(errno.ENOENT, "No such file", "/x/y.csv"))[0] == "no such file or folder: /x/y.csv"
    assert explain(gzip.BadGzipFile("Not a gzipped file"))[2] == 2
    assert "out of range" in explain(OverflowError("date value out of range"))[0]
    assert explain(csv.Error("field larger than field limit (131072)"))[2] == 2
    assert explain(StoreUnavailable("cannot open the event store x"))[:1] == ("cannot open the event store x",)


def test_commands_say_what_failed_and_unknown_errors_point_at_debug():
    assert explain(CommandFailed("backtest run r failed", "see the log", 3)) == ("backtest run r failed", "see the log", 3)
    what, todo, code = explain(RuntimeError("boom\nsecond line"))
    assert what == "failed: RuntimeError: boom" and "--debug" in todo and code == 1


def test_debug_flag_is_taken_from_anywhere(monkeypatch):
    import api.cli.errors as boundary

    monkeypatch.setattr(boundary, "_debug", False)
    assert take_debug_flag(["events", "--debug", "--limit", "3"]) == ["events", "--limit", "3"]
    assert boundary.debugging()


def test_a_failed_backtest_says_whether_run_ended_was_recorded():
    import uuid

    from api.cli.trading import _run_failed

    full = OSError(errno.ENOSPC, "No space left on device", "var/events.db")
    full.add_note("recording RunEnded also failed: OSError(28)")
    failed = _run_failed(full, uuid.UUID(int=1), "sqlite:///var/events.db")
    assert "the disk is full while writing var/events.db; RunEnded could not be recorded either" in str(failed)
    other = _run_failed(ValueError("bad"), uuid.UUID(int=1), "sqlite:///x")
    assert other.what.endswith("ValueError: bad; the run is recorded as ended (failed) in sqlite:///x") and "--debug" in other.todo
