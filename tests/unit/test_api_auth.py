"""Bearer tokens and roles of the REST API, and how it renders money and times."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest

from api.http.auth import Caller, TokenBook
from api.http.jsonio import dumps, money
from infrastructure.settings.sections import ApiToken


def book() -> TokenBook:
    return TokenBook([ApiToken(name="vera", token="viewer-secret", role="viewer"),
                      ApiToken(name="otto", token="operator-secret", role="operator")])


def test_a_token_finds_its_holder_and_an_unknown_or_prefix_token_finds_nobody():
    tokens = book()
    assert tokens.caller("operator-secret") == Caller("otto", "operator")
    assert tokens.caller("viewer-secret") == Caller("vera", "viewer")
    for wrong in ("operator-secre", "operator-secret2", "", "VIEWER-SECRET"):
        assert tokens.caller(wrong) is None


@pytest.mark.parametrize("role, allowed", [
    ("viewer", {"viewer"}), ("auditor", {"viewer", "auditor"}), ("operator", {"viewer", "auditor", "operator"}),
])
def test_roles_nest_viewer_auditor_operator(role, allowed):
    caller = Caller("x", role)
    assert {r for r in ("viewer", "auditor", "operator") if caller.may(r)} == allowed


def test_the_book_never_shows_a_token():
    tokens = book()
    assert "secret" not in repr(tokens) and "secret" not in repr(tokens.caller("operator-secret"))


def test_money_is_a_plain_decimal_string_and_times_are_utc_with_z():
    assert money(Decimal("8792.763578759700000000")) == "8792.7635787597"
    assert money(Decimal("0E-18")) == "0" and money(Decimal("-0.0")) == "0"
    assert money(Decimal("1E+3")) == "1000" and money(None) is None
    doc = orjson.loads(dumps({"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "pnl": Decimal("-1.50")}))
    assert doc == {"at": "2024-01-02T03:04:05Z", "pnl": "-1.5"}
