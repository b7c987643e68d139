"""The wall clock and random ids, for live commands (backtests and replays inject their own)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


class SystemClock:
    """UTC wall-clock time, timezone-aware."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class RandomIds:
    """Random (version 4) ids."""

    def new_id(self) -> uuid.UUID:
        return uuid.uuid4()
