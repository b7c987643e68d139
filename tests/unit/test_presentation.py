"""Numbers as people write them: one rendering for tables, CSV, pages."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from api.presentation import plain, plain_figures, plain_number


@pytest.mark.parametrize("value, text", [
    (D("0E-18"), "0"), (D("-0.000"), "0"), (D("1E-8"), "0.00000001"), (D("0.00000001"), "0.00000001"),
    (D("1.5E+3"), "1500"), (D("1E+1"), "10"), (D("123.4500"), "123.45"), (D("-0.0016"), "-0.0016"),
    (D("12345678901234567890.123456789012345678"), "12345678901234567890.123456789012345678"),
    (1e-05, "0.00001"), (0.1, "0.1"), (2.5e20, "250000000000000000000"), (7, "7"), (D("NaN"), "NaN"),
])
def test_plain_number_has_no_exponent_and_no_trailing_zeros(value, text):
    assert plain_number(value) == text


def test_plain_renders_cells_for_tables_and_pages():
    assert plain(None) == "" and plain(None, none="-") == "-"
    assert plain(True) == "true" and plain(False, words=True) == "no" and plain(True, words=True) == "yes"
    assert plain(datetime(2024, 1, 2, 3, tzinfo=timezone.utc)) == "2024-01-02T03:00:00+00:00"
    assert plain(D("0E-8")) == "0" and plain("BTC-USD") == "BTC-USD"


def test_plain_figures_rewrites_exponent_numbers_inside_text_only():
    assert plain_figures("rsi=40.9 position_quantity=0E-8 size 1.5E+3") == "rsi=40.9 position_quantity=0 size 1500"
    assert plain_figures("product X1E5-USD id 3e8a-ff") == "product X1E5-USD id 3e8a-ff"
    assert plain_figures("order 0000-1e50-4000 run 00000000-0000-4000-8000-00000000a001") == \
        "order 0000-1e50-4000 run 00000000-0000-4000-8000-00000000a001"
