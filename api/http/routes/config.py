"""The effective configuration, its drift from the baseline, and changing one setting (operator).

A change goes through the log exactly as `tradecore config set` does: the
path must exist and not be a secret, the value is validated with the whole
configuration, and a ``ConfigChanged`` records it with the token's name as actor.
"""

from __future__ import annotations

import difflib
from typing import Any

from fastapi import APIRouter, Path, Request

from api.http import schemas
from api.http.auth import OPERATOR, VIEWER, Caller
from api.http.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND, BadParameter, Conflict, Missing, Unavailable
from api.http.jsonio import json_response
from api.http.reading import cached_json
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["config"], responses={**COMMON_RESPONSES})


def _load(node, overrides: dict[str, Any]):
    from api.bootstrap import configuration

    return configuration().load_settings(node.config_file, None, {**overrides, **node.config_flags})


def effective(node, recorded: dict[str, str]):
    """defaults < TOML < environment < changes recorded in the log < this node's flags."""
    from application.errors import ConfigurationError

    try:
        return _load(node, recorded)
    except ConfigurationError as exc:
        raise Unavailable(f"the configuration does not load: {exc}", code="invalid_configuration") from None


@router.get("/config", response_model=dict[str, Any], summary="the effective configuration, secrets masked")
async def config(request: Request, _caller=VIEWER):
    from api.config_view import shown_value
    from application.operations.config_service import recorded_overrides

    node = request.app.state.node

    def compute() -> dict:
        recorded = recorded_overrides(node.store)
        settings = effective(node, recorded)
        return {"config_hash": settings.config_hash(), "config": settings.effective_config(),
                "recorded_changes": {path: shown_value(path, value) for path, value in sorted(recorded.items())}}

    return await cached_json(node, ("config",), compute)


@router.get("/config/drift", response_model=dict[str, Any],
            summary="settings that differ from the approved baseline: who changed them, when, why")
async def config_drift(request: Request, _caller=VIEWER):
    from api.config_view import drift_row
    from application.operations.config_service import config_drift as drift, ledger_events, overrides_from

    node = request.app.state.node

    def compute() -> dict:
        events = ledger_events(node.store)
        settings = effective(node, overrides_from(events))
        report = drift(events, settings.flat_config(), settings.config_hash())
        if report is None:
            return {"drifted": False, "baseline": None, "current_hash": settings.config_hash(), "changes": [],
                    "note": "no baseline yet: record one with `tradecore config baseline --reason ...`"}
        b = report.baseline
        return {"drifted": report.drifted, "current_hash": report.current_hash, "changes": [drift_row(i) for i in report.items],
                "baseline": {"config_hash": b.config_hash, "set_at": b.occurred_at, "actor": b.actor, "reason": b.reason}}

    return await cached_json(node, ("config_drift",), compute)


def change_setting(node, path: str, value: str, reason: str, actor: str) -> dict:
    """Validate and record one setting's change, as `tradecore config set` does; raises the API's errors."""
    from api.config_view import is_secret_path, sounds_secret
    from application.operations.config_service import NOT_SETTABLE_THROUGH_LOG, recorded_overrides
    from domain.events import EventMeta
    from application.errors import ConfigurationError

    if not reason.strip():
        raise BadParameter("body field 'reason': must say why the setting changes")
    known = effective(node, {}).flat_config()
    if is_secret_path(path):
        raise BadParameter(f"{path} is a secret: set secrets through the environment, never the log "
                           "(nothing recorded, value not shown)", code="refused")
    if path not in known:
        close = difflib.get_close_matches(path, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; GET /config lists the settings"
        raise Missing(f"unknown setting path {path!r} (nothing recorded){hint}", code="unknown_setting")
    if path in NOT_SETTABLE_THROUGH_LOG:
        raise BadParameter(f"{path} cannot be set through the log: {NOT_SETTABLE_THROUGH_LOG[path]}", code="refused")
    recorded = recorded_overrides(node.store)
    before = effective(node, recorded)
    try:
        after = _load(node, {**recorded, path: value})
    except ConfigurationError as exc:
        shown = "****" if sounds_secret(path) else repr(value)
        problems = "; ".join(f"{e.path}: {e.reason}" for e in exc.errors)
        raise BadParameter(f"{path} = {shown} is not valid (nothing recorded): {problems}", code="invalid_value") from None
    old, new = before.flat_config()[path], after.flat_config()[path]
    digest = after.config_hash()
    if old == new:
        return {"path": path, "old": old, "new": new, "recorded": False, "actor": actor, "config_hash": digest}
    meta = EventMeta(node.clock.now(), actor=actor)
    if not node.store.change_config(path, new, reason.strip(), digest, meta, in_effect=old, knows_effective=True):
        raise Conflict(f"the config ledger already holds {path} = {new} (from the last baseline), but the environment or "
                       f"TOML file now gives {old}: restore the environment, or record a new baseline", code="ledger_conflict")
    node.settings = after  # this node's own thresholds and limits follow the change at once
    return {"path": path, "old": old, "new": new, "recorded": True, "actor": actor, "config_hash": digest}


@router.put("/config/{path}", response_model=schemas.ConfigChangeAnswer, responses={**NOT_FOUND, **CONFLICT},
            summary="change one setting through the log (ConfigChanged; actor = the token's name)")
async def put_config(request: Request, body: schemas.ConfigChangeRequest,
                     path: str = Path(max_length=200, description="dotted setting path, e.g. risk.max_daily_loss_pct"),
                     caller: Caller = OPERATOR):
    node = request.app.state.node
    answer = await run_in_threadpool(change_setting, node, path, body.value, body.reason, caller.name)
    return json_response(answer)
