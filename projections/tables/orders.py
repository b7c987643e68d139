"""Orders with their current state, and every fill.

``orders``: one row per ``OrderPlaced``; later events of the order move its
status (the state machine of domain/order.py), and fills add to its filled
quantity, notional, fees and average fill price. ``fills``: one row per
``OrderPartiallyFilled``/``OrderFilled``/``FillDiscovered`` (a venue fill found
by reconciliation) with the order's product and side. An ``OrderReconciled``
sets the status the venue reported.

Inserts are set-based SQL. The few order updates of a page are folded in
Python with Decimal (an average price needs quantity x price, which overflows
DuckDB's DECIMAL(38, 18) arithmetic) and written back with one UPDATE.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import duckdb
import pyarrow as pa

from projections.engine.base import MONEY

STATUS_OF = {
    "OrderPlaced": "PLACED",
    "OrderSubmitted": "SUBMITTED",
    "OrderAccepted": "ACCEPTED",
    "OrderPartiallyFilled": "PARTIALLY_FILLED",
    "OrderFilled": "FILLED",
    "OrderCancelled": "CANCELLED",
    "OrderRejected": "REJECTED",
    "OrderExpired": "EXPIRED",
    "FillDiscovered": None,  # FILLED or PARTIALLY_FILLED, from its ``completed`` field
    "OrderReconciled": None,  # the venue's status, from its ``status`` field
}
_FILL_TYPES = ("OrderPartiallyFilled", "OrderFilled", "FillDiscovered")
_FILL_SQL = ", ".join(f"'{t}'" for t in _FILL_TYPES)
_UPDATE_TYPES = tuple(t for t in STATUS_OF if t != "OrderPlaced")
_SCALE = Decimal(1).scaleb(-18)

_PLACED = f"""'{{"product": "VARCHAR", "side": "VARCHAR", "order_type": "VARCHAR", "quantity": "{MONEY}",
    "limit_price": "{MONEY}", "stop_loss_price": "{MONEY}", "take_profit_price": "{MONEY}",
    "client_order_id": "VARCHAR", "decision_id": "UUID", "time_in_force": "VARCHAR"}}'"""

_FILL = f"""'{{"fill_id": "VARCHAR", "quantity": "{MONEY}", "price": "{MONEY}", "fee": "{MONEY}",
    "fee_currency": "VARCHAR", "liquidity": "VARCHAR"}}'"""

_MONEY_TYPE = pa.decimal128(38, 18)
_UPDATE_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("status", pa.string()),
        ("filled_quantity", _MONEY_TYPE),
        ("filled_notional", _MONEY_TYPE),
        ("average_fill_price", _MONEY_TYPE),
        ("fees", _MONEY_TYPE),
        ("venue_order_id", pa.string()),
        ("reason", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),  # from epoch microseconds: no pytz needed
        ("last_notification_id", pa.int64()),
    ]
)


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_SCALE)


class OrdersProjection:
    """Tables ``orders`` and ``fills``."""

    name = "orders"
    tables = ("orders", "fills")
    event_types = tuple(STATUS_OF)

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS orders (
                order_id UUID NOT NULL,
                run_id UUID,
                decision_id UUID,
                client_order_id VARCHAR NOT NULL,
                product VARCHAR NOT NULL,
                side VARCHAR NOT NULL,
                type VARCHAR NOT NULL,
                time_in_force VARCHAR NOT NULL,
                quantity {MONEY} NOT NULL,
                limit_price {MONEY},
                stop_loss_price {MONEY},
                take_profit_price {MONEY},
                status VARCHAR NOT NULL,
                filled_quantity {MONEY} NOT NULL,
                filled_notional {MONEY} NOT NULL,
                average_fill_price {MONEY},
                fees {MONEY} NOT NULL,
                venue_order_id VARCHAR,
                reason VARCHAR,
                placed_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                last_notification_id BIGINT NOT NULL
            )"""
        )
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS fills (
                fill_id VARCHAR NOT NULL,
                order_id UUID NOT NULL,
                run_id UUID,
                product VARCHAR NOT NULL,
                side VARCHAR NOT NULL,
                quantity {MONEY} NOT NULL,
                price {MONEY} NOT NULL,
                fee {MONEY} NOT NULL,
                fee_currency VARCHAR NOT NULL,
                liquidity VARCHAR NOT NULL,
                occurred_at TIMESTAMPTZ NOT NULL,
                notification_id BIGINT NOT NULL
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS fills")
        con.execute("DROP TABLE IF EXISTS orders")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            f"""INSERT INTO orders
            SELECT stream_id, run_id, o.decision_id, o.client_order_id, o.product, o.side, o.order_type,
                   coalesce(o.time_in_force, 'GTC'), o.quantity, o.limit_price, o.stop_loss_price,
                   o.take_profit_price, 'PLACED', 0, 0, NULL, 0, NULL, NULL, occurred_at, occurred_at,
                   notification_id
            FROM (SELECT *, json_transform(payload, {_PLACED}) AS o
                  FROM batch_events WHERE notification_id > ? AND event_type = 'OrderPlaced')
            ORDER BY notification_id""",
            [after],
        )
        types = ", ".join(f"'{t}'" for t in _UPDATE_TYPES)
        events = con.execute(
            f"""SELECT notification_id, CAST(stream_id AS VARCHAR), event_type, epoch_us(occurred_at),
                   json_extract_string(payload, '$.venue_order_id'), json_extract_string(payload, '$.reason'),
                   CAST(f.quantity AS VARCHAR), CAST(f.price AS VARCHAR), CAST(f.fee AS VARCHAR),
                   json_extract_string(payload, '$.status'), json_extract(payload, '$.completed')
            FROM (SELECT *, CASE WHEN event_type IN ({_FILL_SQL})
                                 THEN json_transform(payload, {_FILL}) END AS f
                  FROM batch_events WHERE notification_id > ? AND event_type IN ({types}))
            ORDER BY notification_id""",
            [after],
        ).fetchall()
        if not events:
            return
        if any(e[2] in _FILL_TYPES for e in events):
            con.execute(
                f"""INSERT INTO fills
                SELECT f.fill_id, b.stream_id, b.run_id, o.product, o.side, f.quantity, f.price, f.fee,
                       f.fee_currency, f.liquidity, b.occurred_at, b.notification_id
                FROM (SELECT *, json_transform(payload, {_FILL}) AS f
                      FROM batch_events WHERE notification_id > ? AND event_type IN ({_FILL_SQL})) AS b
                JOIN orders AS o ON o.order_id = b.stream_id
                ORDER BY b.notification_id""",
                [after],
            )
        self._fold(con, events)

    def _fold(self, con: duckdb.DuckDBPyConnection, events: list[tuple]) -> None:
        ids = sorted({e[1] for e in events})
        current = {
            row[0]: list(row[1:])
            for row in con.execute(
                """SELECT CAST(order_id AS VARCHAR), status, filled_quantity, filled_notional, average_fill_price,
                          fees, venue_order_id, reason, epoch_us(updated_at), last_notification_id
                   FROM orders WHERE CAST(order_id AS VARCHAR) IN (SELECT unnest(?))""",
                [ids],
            ).fetchall()
        }
        with localcontext() as ctx:
            ctx.prec = 60
            for nid, order_id, event_type, occurred_us, venue_order_id, reason, qty, price, fee, status, done in events:
                state = current.get(order_id)
                if state is None:
                    raise ValueError(f"{event_type} at notification {nid} for order {order_id} that was never placed")
                if event_type == "FillDiscovered":
                    state[0] = "FILLED" if str(done).lower() == "true" else "PARTIALLY_FILLED"
                elif event_type == "OrderReconciled":
                    state[0] = status
                else:
                    state[0] = STATUS_OF[event_type]
                if event_type in _FILL_TYPES:
                    quantity, fill_price = Decimal(qty), Decimal(price)
                    state[1] += quantity
                    state[2] += quantity * fill_price
                    state[3] = state[2] / state[1]
                    state[4] += Decimal(fee)
                if venue_order_id is not None:
                    state[5] = venue_order_id
                if reason is not None:
                    state[6] = reason
                state[7] = occurred_us
                state[8] = nid
            columns = list(zip(*[(oid, *state) for oid, state in sorted(current.items())]))
            for i in (2, 3, 4, 5):
                columns[i] = [_money(v) for v in columns[i]]
        update = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, _UPDATE_SCHEMA)], schema=_UPDATE_SCHEMA)
        con.register("order_updates", update)
        try:
            con.execute(
                """UPDATE orders SET status = u.status, filled_quantity = u.filled_quantity,
                       filled_notional = u.filled_notional, average_fill_price = u.average_fill_price,
                       fees = u.fees, venue_order_id = u.venue_order_id, reason = u.reason,
                       updated_at = u.updated_at, last_notification_id = u.last_notification_id
                FROM order_updates AS u WHERE orders.order_id = CAST(u.order_id AS UUID)"""
            )
        finally:
            con.unregister("order_updates")


PROJECTIONS = (OrdersProjection(),)
