"""Event classes build their validators when first used, not at import, and validate the same either way."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pydantic._internal._mock_val_ser import MockValSer
from domain.events import EventMeta, EventValidationError, event_classes

classes = event_classes()
unbuilt = sorted(n for n, c in classes.items() if isinstance(c.__dict__.get("__pydantic_validator__"), MockValSer))
print(len(classes), len(unbuilt))
meta = EventMeta(datetime(2024, 1, 1, 1, tzinfo=timezone.utc))
candle = classes["CandleClosed"]
fields = dict(product="BTC-USD", granularity="1h", start=datetime(2024, 1, 1, tzinfo=timezone.utc), open=Decimal(2),
              high=Decimal(1), low=Decimal(1), close=Decimal(1), volume=Decimal(0))
for _ in range(2):  # first on the unbuilt class, then on the built one
    try:
        candle.build(uuid.UUID(int=1), 1, meta, **fields)
    except EventValidationError as exc:
        print(exc)
fields["open"] = Decimal(1)
print(candle.build(uuid.UUID(int=1), 1, meta, **fields).payload())
"""


def test_no_event_class_is_built_at_import_and_the_first_use_validates_as_every_later_one():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    counts, first, second, payload = done.stdout.strip().splitlines()
    count, unbuilt = counts.split()
    assert count == unbuilt and int(count) > 30  # every event class waits for its first use
    assert first == second and first.startswith("CandleClosed refused: high=Decimal('1'): is below open")
    assert payload == ("{'product': 'BTC-USD', 'granularity': '1h', 'start': '2024-01-01T00:00:00Z', 'open': '1', "
                       "'high': '1', 'low': '1', 'close': '1', 'volume': '0'}")
