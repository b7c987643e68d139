"""What every settings section shares: the frozen, strict base model and the percentage field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _percent(default: str, description: str, *, le: int = 100) -> Any:
    return Field(Decimal(default), gt=0, le=le, description=description)
