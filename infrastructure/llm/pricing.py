"""What a language model's tokens cost: list prices per million input and output tokens.

The cost of a decision is known only when both the model's price and the response's token
counts are known; otherwise it is ``None`` (unknown), never another model's price or 0.
The defaults cover the models the docs name; ``llm.prices`` in the settings adds or
overrides entries (``[llm.prices."my-model"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

MILLION = Decimal(1_000_000)


class PerMillionTokens(Protocol):
    """A model's price in quote money (USD) per million tokens; the settings' table rows fit."""

    input_per_million: Decimal
    output_per_million: Decimal


@dataclass(frozen=True)
class TokenPrice:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_million: Decimal
    output_per_million: Decimal


DEFAULT_PRICES: dict[str, TokenPrice] = {
    # OpenAI list prices (standard tier).
    "gpt-4o-mini": TokenPrice(Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": TokenPrice(Decimal("2.50"), Decimal("10.00")),
    # The docs' local example (Ollama on the operator's machine): no per-token charge.
    "llama3.1": TokenPrice(Decimal(0), Decimal(0)),
}


def decision_cost(prices: Mapping[str, PerMillionTokens], model: str, prompt_tokens: int | None,
                  completion_tokens: int | None) -> Decimal | None:
    """USD a call cost, or None when the model has no price or the token counts are unknown.

    Parameters
    ----------
    prices
        Price table by model name (exact match on the configured model).
    model
        The model the request named.
    prompt_tokens, completion_tokens
        The response's ``usage`` counts; None when the response carried none.
    """
    price = prices.get(model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * Decimal(price.input_per_million)
            + completion_tokens * Decimal(price.output_per_million)) / MILLION
