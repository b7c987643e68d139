"""A read node: the projector following the store and uvicorn serving the API, in one process.

``start_read_node`` opens the store and the DuckDB read model this process
owns, starts the projector (``projections.engine.runner.follow``) in a thread, and
uvicorn in another; ``ReadNode.stop()`` stops both and closes everything.
`tradecore serve` runs one in the foreground; `tradecore run` starts one
beside its trading loop. The projector also publishes the read-only snapshot
that short-lived readers (`tradecore report`, `query`) use while this process
owns the file.

Pages have a cadence: the projector starts a page at most every ``PAGE_EVERY`` seconds while the log keeps
growing (what was appended meanwhile comes in the same page). A page's cost is mostly fixed (about 0.1 s of CPU
whatever its size under a fleet's trickle of appends), so a projector that read a page per notification would
take a whole core under 20 bots and starve the API, the writers and the other nodes on the machine; with the
cadence it takes a few tenths of one, and an append is visible within about ``PAGE_EVERY`` plus one page. The
first page after a quiet spell starts as soon as the log grows.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("tradecore.serve")

SNAPSHOT_EVERY = 5.0
PAGE_EVERY = 0.25  # seconds: at most this often a page while the log keeps growing


def _uvicorn_choices() -> dict[str, str]:
    """The fastest event loop and HTTP parser installed (uvloop and httptools when present)."""
    import importlib.util

    return {"loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            "http": "httptools" if importlib.util.find_spec("httptools") else "h11"}


@dataclass
class ReadNode:
    """A running read node; ``url`` is where its API answers."""

    url: str
    host: str
    port: int
    store: Any
    con: Any
    access: Any
    app: Any
    projector: Any
    server: Any = None
    readmodel_path: str = ""
    store_url: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopped: bool = False

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving, stop the projector after its current page, publish a last snapshot, close."""
        if self._stopped:
            return
        self._stopped = True
        if self.server is not None:
            self.server.should_exit = True
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        try:
            self.access.close()
        finally:
            try:
                self.con.close()
            finally:
                self.store.close()

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until ``stop`` is set or the API thread dies (a dead projector is reported by /health)."""
        while not (stop and stop.is_set()) and self._threads[0].is_alive():
            time.sleep(0.2)

    @property
    def alive(self) -> bool:
        return self._threads[0].is_alive()


class PageCadence:
    """Starts pages at most every ``every`` seconds; ``pause(seconds)`` waits (``stop.wait``: a stop ends it at once)."""

    def __init__(self, every: float, pause: Callable[[float], Any], clock: Callable[[], float] = time.monotonic):
        self.every, self.pause, self.clock = every, pause, clock
        self.page_started = float("-inf")  # when the last applied page started
        self.reading = clock()  # when the projector last went to read a page

    def _turn(self) -> None:
        left = self.page_started + self.every - self.clock()
        if left > 0:
            self.pause(left)
        self.reading = self.clock()

    def paged(self) -> None:
        """A page was applied and the catch-up goes on: the next page starts at its turn."""
        self.page_started = self.reading
        self._turn()

    def wait(self, waker_wait: Callable[[float], Any], seconds: float) -> None:
        """Nothing new: wait for the log to grow (``waker_wait``), then for the next page's turn."""
        waker_wait(seconds)
        self._turn()


class Snapshots:
    """The read-only snapshot that short-lived readers use, published at most every ``every`` seconds.

    A copy of the whole read model takes 0.1-0.2 s even when small: made in the projector's thread it held every
    append back that long every few seconds (the p99 of the lag). It is made in a thread of its own, through a
    cursor of the same database (a read transaction: the projector goes on committing pages meanwhile); the last
    one, at stop, in the caller's thread.
    """

    def __init__(self, con: Any, path: str, every: float):
        self.path, self.every = path, every
        self.cursor = con.cursor() if every > 0 and path != ":memory:" else None
        self.dirty, self.at = True, 0.0
        self._thread: threading.Thread | None = None

    def _copy(self) -> None:
        from projections.reading.access import publish_snapshot

        try:
            publish_snapshot(self.cursor, self.path)
        except Exception as exc:  # noqa: BLE001 - a failed snapshot must not stop the projector
            log.warning("snapshot of %s not published: %s", self.path, exc)

    def publish(self, force: bool = False) -> None:
        """Start a snapshot when one is due and none is being made (``force``: make one now and wait for it)."""
        if self.cursor is None:
            return
        busy = self._thread is not None and self._thread.is_alive()
        if force:
            if busy:
                self._thread.join()
        elif busy or not self.dirty or time.monotonic() - self.at < self.every:
            return
        self.dirty, self.at = False, time.monotonic()
        if force:
            self._copy()
        else:
            self._thread = threading.Thread(target=self._copy, name="read-node-snapshot", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.cursor is not None:
            self.cursor.close()


def _projector_loop(node: ReadNode, batch_size: int, snapshot_every: float, page_every: float = PAGE_EVERY) -> None:
    from projections.engine import runner

    status, access, path = node.projector, node.access, node.readmodel_path
    snapshots = Snapshots(node.con, path, snapshot_every)

    answers = node.app.state.node.answers

    def on_page(position: int) -> None:
        access.moved(position, answers.warm(position))  # the hot answers first: no request waits for them
        status.last_page_at = status_clock()
        status.pages_applied += 1
        snapshots.dirty = True
        snapshots.publish()
        cadence.paged()  # the next page of this catch-up waits its turn

    def on_idle() -> None:
        access.moved()
        status.caught_up_at = status_clock()
        snapshots.publish()

    from api.bootstrap import log_waker

    status_clock = node.app.state.node.clock.now
    status.running = True
    waker = log_waker(node.store_url, node._stop) if node.store_url else None
    status.following = waker.how if waker is not None else "polling"
    cadence = PageCadence(page_every, node._stop.wait)
    wake = waker.wait if waker is not None else node._stop.wait
    log.info("read node follows the log by %s", status.following)
    try:  # with notifications, polling is only the safety net (a lost trigger, a dropped connection)
        runner.follow(node.store, node.con, runner.ALL_PROJECTIONS, batch_size,
                      poll_ms=500 if status.following == "listen/notify" else 100, stop=node._stop,
                      on_page=on_page, on_idle=on_idle, wait=lambda seconds: cadence.wait(wake, seconds))
        snapshots.publish(force=True)
    except BaseException as exc:  # noqa: BLE001 - reported by /health as "projector stopped"
        status.error = f"{type(exc).__name__}: {exc}"
        log.exception("projector stopped")
    finally:
        status.running = False
        snapshots.close()
        if waker is not None:
            waker.close()


def start_read_node(
    store_url: str,
    settings: Any,
    host: str,
    port: int,
    *,
    readmodel_path: str | None = None,
    project: bool = True,
    clock: Any = None,
    config_file: Path | None = None,
    config_flags: dict[str, Any] | None = None,
    access_log: bool = False,
    snapshot_every: float = SNAPSHOT_EVERY,
    bot: str | None = None,
    startup_timeout: float = 20.0,
) -> ReadNode:
    """Start the projector and the API in background threads; returns once the API accepts connections.

    ``port`` 0 picks a free port (see ``ReadNode.url``). Raises ReadModelLocked
    when another process owns the read model, OSError when the port is taken.
    """
    import uvicorn

    from api.bootstrap import open_store, readmodel
    from api.http.app import ProjectorStatus, create_app
    from api.http.readmodel import ReadModelAccess
    from projections.engine import runner

    path = str(readmodel_path or settings.readmodel.path)
    store = open_store(store_url)
    try:
        con = readmodel(settings, path=path)
    except BaseException:
        store.close()
        raise
    try:
        runner.ensure(con, runner.ALL_PROJECTIONS)  # tables exist before the first request
        access = ReadModelAccess(con)
        status = ProjectorStatus() if project else None
        app = create_app(store, access, settings, clock=clock, projector=status, config_file=config_file,
                         config_flags=config_flags, bot=bot)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        con.close()
        store.close()
        raise
    bound = sock.getsockname()[1]
    # uvicorn's own log config would replace the process's (JSON lines, masking): keep ours. Its log_level sets
    # "uvicorn.access" too, so the access lines (INFO) are let through after, and only when asked for.
    config = uvicorn.Config(app, log_level="warning", log_config=None, access_log=access_log, lifespan="off",
                            timeout_keep_alive=30, backlog=2048, **_uvicorn_choices())
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    node = ReadNode(url=f"http://{shown}:{bound}", host=host, port=bound, store=store, con=con, access=access, app=app,
                    projector=status, server=server, readmodel_path=path, store_url=store_url)

    def serve() -> None:
        server.run(sockets=[sock])

    api_thread = threading.Thread(target=serve, name="read-node-api", daemon=True)
    node._threads.append(api_thread)
    if project:
        node._threads.append(threading.Thread(target=_projector_loop, args=(node, settings.readmodel.batch_size, snapshot_every),
                                              name="read-node-projector", daemon=True))
    for thread in node._threads:
        thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not api_thread.is_alive() or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"the API did not start on {host}:{bound}")
        time.sleep(0.02)
    return node
