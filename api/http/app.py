"""The FastAPI app of a read node: ``create_app(store, access, settings, ...)``.

Everything a handler needs is one ``NodeContext`` in ``app.state.node``: the
event store (for the log, controls and config commands), the read model
access, the settings, the clock (injected, so health is testable), the
tokens, and the projector's status when one runs in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from api.http.auth import TokenBook
from api.http.errors import install_error_handlers
from api.http.methods import AnswerOptions
from api.http.reading import Answers
from api.http.readmodel import ReadModelAccess


@dataclass
class ProjectorStatus:
    """What the projector thread reports: running, when it was last caught up, why it stopped."""

    running: bool = False
    caught_up_at: datetime | None = None
    last_page_at: datetime | None = None
    error: str | None = None
    pages_applied: int = 0
    following: str = "polling"  # how it learns the log grew: "listen/notify" (PostgreSQL) or "polling"


@dataclass
class NodeContext:
    """What every handler of the read node shares."""

    store: Any
    access: ReadModelAccess
    settings: Any
    clock: Any
    ids: Any
    tokens: TokenBook
    open_endpoints: frozenset[str]
    projector: ProjectorStatus | None = None
    config_file: Path | None = None
    config_flags: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    version: str = "0+unknown"
    metrics: Any = None
    bot: str | None = None  # the bot this node runs beside (`tradecore run`); None: a read node of every bot
    health_probes: dict = field(default_factory=dict)  # one per bot asked about, built on first use (api/http/health.py)
    answers: Answers = field(default_factory=Answers)  # the read answers being computed (api/http/reading.py)


def create_app(
    store: Any,
    access: ReadModelAccess,
    settings: Any,
    *,
    clock: Any = None,
    ids: Any = None,
    projector: ProjectorStatus | None = None,
    config_file: Path | None = None,
    config_flags: dict[str, Any] | None = None,
    bot: str | None = None,
) -> FastAPI:
    """The REST API, /metrics and the dashboard page over one read model and one event store.

    ``store`` is the TradingApplication; ``access`` reads the DuckDB read model
    (which the projector of this process keeps up to date); ``clock`` and
    ``ids`` default to the wall clock and random ids.
    """
    from api.http.routes import audit as routes_audit, config as routes_config, control as routes_control
    from api.http.routes import market as routes_market, trading as routes_trading
    from api.http.dashboard import mount_dashboard
    from api.http.health import router as health_router
    from api.http.metrics import NodeMetrics, install_metrics
    from api.http.readcache import ReadCache
    from api.bootstrap import code_version, random_ids, wall_clock

    node = NodeContext(
        store=store, access=access, settings=settings, clock=clock or wall_clock(), ids=ids or random_ids(),
        tokens=TokenBook(settings.system.api_tokens), open_endpoints=frozenset(settings.system.api_open_endpoints),
        projector=projector, config_file=config_file, config_flags=dict(config_flags or {}), version=code_version(),
        bot=bot,
    )
    app = FastAPI(
        title="tradecore read API",
        version=node.version,
        description=(
            "Read-only views of the bot's read model (positions, risk, P&L, orders, decisions, market data), "
            "the auditor's paging of the event log, health and the operator's controls. Money and quantities "
            "are decimal strings; times are ISO-8601 UTC. Send `Authorization: Bearer <token>`."
        ),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.node = node
    install_error_handlers(app)
    app.add_middleware(ReadCache, node=node)
    app.add_middleware(AnswerOptions)
    node.metrics = NodeMetrics(node)
    install_metrics(app, node.metrics)
    app.include_router(health_router)
    for module in (routes_trading, routes_market, routes_audit, routes_config, routes_control):
        app.include_router(module.router)
    mount_dashboard(app)
    return app
