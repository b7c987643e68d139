"""Numbers and values as people write them: one rendering for every surface a person or a tool reads.

``plain_number`` writes a Decimal (or float, int) in positional notation at full precision with no
trailing zeros and no exponent: ``0``, ``0.00000001``, ``1500``, never ``0E-18`` or ``1.5E+3``.
``plain`` renders any cell (query tables and CSV, CLI tables, the replay page): numbers through
``plain_number``, times as ISO-8601, booleans as ``true``/``false`` or, for pages, ``yes``/``no``.
``plain_figures`` rewrites the numbers inside a line of text that were written in exponent form
(the log keeps what it was given, e.g. a strategy input ``position_quantity=0E-8``).
No domain dependency: it renders what the read model, the log or a report hands over.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


def plain_number(value: Decimal | float | int | str) -> str:
    """A number in positional notation, full precision, no exponent, no trailing zeros; -0 is ``0``.

    Floats are written from their shortest repr (``0.1`` stays ``0.1``); NaN and infinities as
    ``NaN``, ``Infinity``, ``-Infinity``.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        value = Decimal(repr(value))
    elif not isinstance(value, Decimal):
        try:
            value = Decimal(str(value))
        except InvalidOperation:
            return str(value)
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    # Not normalize(): it rounds to the context's 28 digits; the text is trimmed instead.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0", "") else text


def plain(value: Any, *, words: bool = False, none: str = "") -> str:
    """One cell as text: numbers plain, times ISO-8601, booleans ``true``/``false`` (``yes``/``no`` with words)."""
    if value is None:
        return none
    if isinstance(value, bool):
        if words:
            return "yes" if value else "no"
        return "true" if value else "false"
    if isinstance(value, (Decimal, float, int)):
        return plain_number(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


# Decimal's own exponent form (upper-case E, signed exponent), so hex ids (lower case) never match.
_EXPONENT_FORM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?E[-+]\d+(?![\w.])")


def plain_figures(text: str) -> str:
    """The text with every number in exponent form (``0E-8``, ``1.5E+3``) written plainly."""
    return _EXPONENT_FORM.sub(lambda m: plain_number(Decimal(m.group())), text)
