"""Configuration values as the CLI and the REST API show them: secrets only as set/unset."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from api.config_view import drift_row, is_secret_path, masked_secret, shown_value, sounds_secret
from application.operations.config_service import NOT_SETTABLE_THROUGH_LOG, DriftItem

AT = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_secret_paths_are_the_settings_that_hold_secrets():
    assert all(map(is_secret_path, ["exchange.api_key", "system.api_tokens", "system.alert_webhook_url"]))
    assert not any(map(is_secret_path, ["risk.max_daily_loss_pct", "trading.product", "nosuch.api_key"]))


def test_a_secret_is_shown_as_set_or_unset_and_a_missing_value_as_absent():
    assert shown_value("exchange.api_key", "set:0123abcd") == "set"
    assert shown_value("exchange.api_key", "unset") == "unset"
    assert shown_value("risk.max_daily_loss_pct", "set:0123abcd") == "set:0123abcd"  # not a secret: verbatim
    assert shown_value("exchange.api_key", None) == "(absent)"
    assert masked_secret("exchange.api_key", None) is None
    assert masked_secret("exchange.api_key", "set:0123abcd") == "set"


def test_a_path_that_sounds_like_a_secret_is_recognised_even_when_unknown():
    assert sounds_secret("exchange.api_keys") and sounds_secret("system.WEBHOOK") and not sounds_secret("risk.x")


def test_drift_row_marks_a_rotated_secret_without_showing_either_fingerprint():
    row = drift_row(DriftItem("exchange.api_key", "set:aaaa", "set:bbbb", "environment", None, None))
    assert row == {"path": "exchange.api_key", "baseline": "set", "current": "set (rotated)", "actor": "environment",
                   "occurred_at": None, "reason": None, "secret": True}
    row = drift_row(DriftItem("risk.max_daily_loss_pct", None, "3", "operator:ann", AT, "calmer"))
    assert (row["baseline"], row["current"], row["occurred_at"], row["secret"]) == (None, "3", AT.isoformat(), False)


def test_the_log_location_cannot_be_set_through_the_log():
    assert "eventstore.url" in NOT_SETTABLE_THROUGH_LOG
    with pytest.raises(TypeError):
        NOT_SETTABLE_THROUGH_LOG["risk.max_daily_loss_pct"] = "no"  # type: ignore[index]
