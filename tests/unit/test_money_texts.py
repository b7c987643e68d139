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


def test_runs_of_the_same_object_print_as_each_value_alone():
    """A quiet stretch's columns: the same object row after row (printed once per run), runs of one, of None,
    of a value that needs rounding or is exponent-printed, and equal values that are different objects."""
    equity = Decimal("10234.123456789")
    drawdown = (Decimal(10500) - equity) / Decimal(10500) * 100
    values = ([equity] * 30 + [None] * 5 + [drawdown] * 12 + [Decimal("1E+3")] * 3 + [Decimal("2.5"), Decimal("2.5")]
              + [Decimal(7)] + [equity] * 20)
    assert len(values) >= 32
    texts = money_texts(values)
    assert texts.type == "string" and texts.to_pylist() == [exact_text(v) for v in values]
    assert money_texts([None] * 40).to_pylist() == [None] * 40
    assert money_texts([drawdown] * 40).to_pylist() == [exact_text(drawdown)] * 40


def test_a_column_of_distinct_values_prints_as_each_value_alone():
    values = [Decimal(i) / 7 for i in range(50)] + [None, Decimal("12.5")]
    assert money_texts(values).to_pylist() == [exact_text(v) for v in values]


def test_a_column_of_distinct_values_without_a_null_and_one_needing_rounding_keeps_every_value():
    values = [Decimal(i) / 3 for i in range(1, 30)] + [Decimal("7")]
    texts = money_texts(values).to_pylist()
    assert texts == [exact_text(v) for v in values] and None not in texts


def test_arrow_types_a_column_by_its_values_as_before():
    """Decimals (with ints or None beside them) as money text, bools before ints, ints, text; a subclass
    (an IntEnum, a str Enum) by what it is an instance of."""
    import enum

    from projections.ledger.book import arrow

    class Level(enum.IntEnum):
        LOW = 1

    class Side(str, enum.Enum):
        BUY = "BUY"

    table = arrow(("money", "flag", "count", "text", "level", "side", "empty"),
                  [(Decimal("1.50"), True, 3, "a", Level.LOW, Side.BUY, None),
                   (None, None, None, None, Level.LOW, Side.BUY, None),
                   (2, False, 4, "b", 2, Side.BUY, None)])
    assert table.column("money").to_pylist() == ["1.50", None, "2"]
    assert table.column("flag").to_pylist() == [True, None, False]
    assert table.column("count").to_pylist() == [3, None, 4] and table.schema.field("count").type == "int64"
    assert table.column("level").to_pylist() == [1, 1, 2] and table.schema.field("level").type == "int64"
    assert str(table.schema.field("side").type) == "string" and str(table.schema.field("empty").type) == "string"
