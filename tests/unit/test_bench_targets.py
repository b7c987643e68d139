"""`make bench`'s verdicts: each judged figure beside its target, met or missed, and no verdict without a figure."""

from __future__ import annotations

from bench.__main__ import table
from bench.targets import TARGETS, Target


def test_each_operator_judges_its_way():
    assert Target(">=", 40_000, "/s", "").met(40_000) and not Target(">=", 40_000, "/s", "").met(39_999.9)
    assert Target("<=", 1.5, "s", "").met(1.5) and not Target("<=", 1.5, "s", "").met(1.51)
    assert Target("<", 25, "ms", "").met(24.9) and not Target("<", 25, "ms", "").met(25)
    assert Target("==", 0, "", "").met(0) and not Target("==", 0, "", "").met(1)


def test_a_skipped_or_failed_figure_gets_no_verdict():
    assert Target(">=", 1, "/s", "").met("skipped: no server") is None
    assert Target("==", 0, "", "").met(False) is None  # a bool is not a measured figure


def test_the_table_shows_measured_target_and_verdict_and_names_a_target_left_without_figure():
    lines, verdicts = table({"backtest_candles_per_s": 5298, "backtest_ratio_to_backtesting_py": 2.5,
                             "backtest_bundled_candles": 20111})
    text = "\n".join(lines)
    assert verdicts == {"backtest_candles_per_s": "missed", "backtest_ratio_to_backtesting_py": "met"}
    assert "5,298" in text and ">= 40,000 /s" in text and "MISSED" in text and "MET" in text
    lines, verdicts = table({"api_error": "server did not start"})
    assert verdicts["api_requests_per_s"] == verdicts["api_p99_ms"] == "no figure"


def test_every_target_of_issue_15_is_judged():
    for key in ("backtest_candles_per_s", "backtest_ratio_to_backtesting_py", "startup_backtest_bundled_seconds",
                "startup_help_seconds", "year_backtest_seconds", "year_peak_rss_mib",
                "projections_rebuild_events_per_s", "restore_rebuild_seconds", "sqlite_decodes_per_s",
                "postgres_candle_appends_per_s", "postgres_decodes_per_s", "api_requests_per_s"):
        assert key in TARGETS
