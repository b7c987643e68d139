"""money_texts prints a column as exact_text would, value by value, whether its objects repeat or not."""

from __future__ import annotations

from decimal import Decimal

from projections.ledger.book import exact_text, money_texts


def test_a_column_of_repeated_objects_prints_as_each_value_alone():
    equity = Decimal("10234.123456789")
    drawdown = (Decimal(10500) - equity) / Decimal(10500) * 100  # more than 18 decimals: rounded half-even
    values = [equity, drawdown, None] * 40 + [Decimal("1E+3"), Decimal("-0.000000000000000000051")]
    assert money_texts(values).to_pylist() == [exact_text(v) for v in values]
    assert exact_text(drawdown) != str(drawdown) and "E" not in money_texts([Decimal("1E+3")] * 3)[0].as_py()


def test_a_column_of_distinct_values_prints_as_each_value_alone():
    values = [Decimal(i) / 7 for i in range(50)] + [None, Decimal("12.5")]
    assert money_texts(values).to_pylist() == [exact_text(v) for v in values]
