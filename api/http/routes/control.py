"""The operator's controls over REST: halt, resume, cancel-all and incidents (operator role).

Each records an event through ``application.operations.controls.OperatorControls`` whose
actor is the token's name; the running ``tradecore run`` acts on it.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, Path, Request
from starlette.concurrency import run_in_threadpool

from api.http import schemas
from api.http.auth import OPERATOR, Caller
from api.http.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from api.http.jsonio import json_response

router = APIRouter(tags=["control"], responses={**COMMON_RESPONSES, **CONFLICT, **NOT_FOUND})


def _controls(node):
    from application.operations.controls import OperatorControls

    return OperatorControls(node.store, node.clock, node.ids)


def _bot(node, bot: str | None) -> str | None:
    """The bot a control is for: one the read model knows (404 unknown_bot otherwise), or None for every bot."""
    if bot is not None:
        from api.http.reading import choose_run

        choose_run(node, None, bot)
    return bot


def _state(node) -> dict:
    from api.http.health import control_state

    return control_state(node)


@router.post("/control/halt", response_model=schemas.ControlAnswer,
             summary="halt trading: no new entries; P0 also cancels every working order")
async def halt(request: Request, body: schemas.HaltRequest, caller: Caller = OPERATOR):
    node = request.app.state.node

    def act() -> dict:
        outcome = _controls(node).halt(body.reason, body.severity, caller.name, _bot(node, body.bot))
        return {"recorded": "CancelAllRequested" if outcome.already_halted else "TradingHalted", "actor": caller.name,
                "cancel_requested": outcome.cancel_requested, "state": _state(node)}

    return json_response(await run_in_threadpool(act))


async def _recorded(request: Request, body: schemas.ReasonRequest | None, caller: Caller, command: str,
                    recorded: str, cancel_requested: bool):
    """Record the operator's ``command`` (resume, cancel_all) for the body's bot (or every bot) and answer."""
    node = request.app.state.node
    body = body or schemas.ReasonRequest()

    def act() -> dict:
        getattr(_controls(node), command)(body.reason, caller.name, _bot(node, body.bot))
        return {"recorded": recorded, "actor": caller.name, "cancel_requested": cancel_requested, "state": _state(node)}

    return json_response(await run_in_threadpool(act))


@router.post("/control/resume", response_model=schemas.ControlAnswer, summary="lift a halt")
async def resume(request: Request, body: schemas.ReasonRequest | None = Body(None), caller: Caller = OPERATOR):
    return await _recorded(request, body, caller, "resume", "TradingResumed", False)


@router.post("/control/cancel-all", response_model=schemas.ControlAnswer,
             summary="ask the running bot to cancel every working order (does not halt)")
async def cancel_all(request: Request, body: schemas.ReasonRequest | None = Body(None), caller: Caller = OPERATOR):
    return await _recorded(request, body, caller, "cancel_all", "CancelAllRequested", True)


@router.post("/incidents", response_model=schemas.IncidentAnswer, status_code=201,
             summary="declare an incident (P0 also halts trading and cancels orders)")
async def open_incident(request: Request, body: schemas.IncidentRequest, caller: Caller = OPERATOR):
    node = request.app.state.node

    def act() -> dict:
        outcome = _controls(node).open_incident(body.severity, body.kind, body.details, caller.name, _bot(node, body.bot))
        return {"incident_id": str(outcome.incident_id), "severity": body.severity, "halted": outcome.halted is not None,
                "actor": caller.name}

    return json_response(await run_in_threadpool(act), 201)


@router.post("/incidents/{incident_id}/resolve", response_model=schemas.IncidentAnswer, responses={**NOT_FOUND},
             summary="resolve an incident (does not resume trading)")
async def resolve_incident(request: Request, body: schemas.ResolveRequest,
                           incident_id: uuid.UUID = Path(description="the id POST /incidents answered"),
                           caller: Caller = OPERATOR):
    node = request.app.state.node

    def act() -> dict:
        incident = _controls(node).resolve_incident(incident_id, body.note, caller.name)
        return {"incident_id": str(incident_id), "severity": getattr(getattr(incident, "severity", None), "value", "") or "",
                "halted": False, "actor": caller.name}

    return json_response(await run_in_threadpool(act))
