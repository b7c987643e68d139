"""CLI: `tradecore serve`: a read node (projector + REST API + dashboard) in the foreground."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings

err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("tradecore.serve")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    host: Annotated[Optional[str], typer.Option("--host", help="Bind address (default system.api_host, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", min=0, max=65535, help="Port (default system.api_port, 8080; 0: any free)")] = None,
    readmodel: Annotated[Optional[Path], typer.Option("--readmodel", help="DuckDB file this process owns (default readmodel.path)")] = None,
    no_project: Annotated[bool, typer.Option("--no-project", help="Serve the read model as it is; do not follow the log")] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log each request (method, path, status; never headers)")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a read node: follow the log into the read model and serve the REST API, /metrics and the dashboard.

    Stops cleanly on SIGINT/SIGTERM (the projector finishes its page). DuckDB lets
    one process own the read model: a second node needs its own --readmodel.
    """
    from application.errors import StoreUnavailable
    from api.http.server import start_read_node
    from application.operations.config_service import recorded_overrides
    from api.bootstrap import open_store
    from api.bootstrap import process_log, store_location
    from application.errors import StoreURLError
    from projections.engine.runner import ReadModelLocked

    flags = {"eventstore.url": store} if store else {}
    settings = load_cli_settings(config, flags)
    url = settings.eventstore.url
    try:
        trading = open_store(url)
    except (StoreURLError, StoreUnavailable) as exc:
        fail(str(exc))
    try:  # changes recorded with `tradecore config set` rank above env and file, below flags
        settings = load_cli_settings(config, {**recorded_overrides(trading), **flags})
    finally:
        trading.close()
    host = host or settings.system.api_host
    port = settings.system.api_port if port is None else port
    process_log().configure_logging(settings, long_running=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = start_read_node(url, settings, host, port, readmodel_path=str(readmodel) if readmodel else None,
                               project=not no_project, config_file=config, config_flags=flags, access_log=access_log)
    except ReadModelLocked as exc:
        log.error("read node not started: %s", exc)
        fail(str(exc))
    except OSError as exc:
        log.error("read node not started: cannot listen on %s:%s: %s", host, port, exc)
        fail(f"cannot listen on {host}:{port}: {exc}")
    log.info("read node serving %s (store %s, read model %s, projector %s)", node.url, store_location(url).redacted(),
             node.readmodel_path, "off" if no_project else "on")
    import gc

    gc.collect()
    gc.freeze()  # what startup built is never collected again: shorter GC pauses under load
    if not settings.system.api_tokens:
        err.print("[yellow]warning:[/yellow] no API tokens configured (SYSTEM__API_TOKENS): only "
                  f"{', '.join(sorted(settings.system.api_open_endpoints)) or 'nothing'} and the dashboard page answer",
                  highlight=False)
    sys.stdout.write(f"serving {node.url} (store {store_location(url).redacted()}, read model {node.readmodel_path}); "
                     "Ctrl-C stops\n")
    sys.stdout.flush()
    try:
        node.wait(stop)
    finally:
        died = not node.alive and not stop.is_set()
        node.stop()
    (log.error if died else log.info)("read node %s %s", node.url, "stopped unexpectedly" if died else "stopped")
    if died:
        fail("the read node stopped unexpectedly (see the log above)", code=1)
