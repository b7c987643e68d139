"""`python -m bench fleet`: registered, judged against issue 16's targets, and its lag arithmetic."""

from __future__ import annotations

from bench.__main__ import BENCHMARKS
from bench.bench_fleet import _lags, _pct
from bench.targets import TARGETS


def test_fleet_is_a_benchmark_with_the_issues_targets():
    assert "fleet" in BENCHMARKS
    for k in (1, 2):
        assert TARGETS[f"fleet_node{k}_lag_p99_ms"].met(999) and not TARGETS[f"fleet_node{k}_lag_p99_ms"].met(1000)
        assert TARGETS[f"fleet_node{k}_requests_per_s"].met(2000) and TARGETS[f"fleet_node{k}_p99_ms"].met(24.9)


def test_an_appends_lag_ends_at_the_first_probe_at_or_past_its_notification_id():
    appends = [(10.0, 5), (10.5, 9), (11.0, 12), (12.0, 40)]  # (wall time of the commit, notification id)
    seen = [(10.1, 4), (10.2, 7), (10.9, 8), (11.05, 13)]  # (probe time, read-model position)
    assert _lags(appends, seen) == [200.0, 550.0, 50.0]  # the last append was never seen: no figure, not zero
    assert _lags(appends, seen, since=10.4, until=11.0) == [550.0]
    assert _pct([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0 and _pct([], 0.99) is None


def test_cpu_figures_are_cores_used_over_the_run_and_each_load_window():
    from bench.bench_fleet import _cpu_figures

    def taken(at, node1, node2, generator, idle, total):
        return {"at": at, "node1": node1, "node2": node2, "writer": 1.0, "probe": 0.5, "postgres": 2.0,
                "load_generator": generator, "machine_idle": idle, "machine_all": total}

    start, end = taken(0.0, 0.0, 0.0, 0.0, 0.0, 0.0), taken(10.0, 5.0, 3.0, 1.0, 4.0, 20.0)
    windows = {1: (taken(2.0, 1.0, 1.0, 0.0, 0, 0), taken(6.0, 4.0, 2.0, 1.0, 0, 0))}
    figures = _cpu_figures({**start, "writer": 0.0, "probe": 0.0, "postgres": 0.0}, end, windows)
    assert figures["fleet_cpu_cores_node1"] == 0.5 and figures["fleet_cpu_cores_node2"] == 0.3
    assert figures["fleet_cpu_cores_node1_under_load"] == 0.75 and figures["fleet_cpu_cores_load_generator"] == 0.25
    assert figures["fleet_cpu_cores_machine_idle"] == 0.4
    # busy 16 CPU s; the bench's processes took 5 + 3 + 1 + 0.5 + 2 + 1 (generator) = 12.5: the rest was others'
    assert figures["fleet_cpu_cores_other"] == 0.35
