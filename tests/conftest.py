"""Shared fixtures: stores on SQLite (always) and PostgreSQL (when reachable).

PostgreSQL tests skip with a visible reason when the server cannot be reached,
unless TRADECORE_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest

from api.bootstrap import open_store
from domain.events import EventMeta

PG_DSN = os.environ.get("TRADECORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN.replace("postgresql://", "postgresql://", 1), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {PG_DSN}: {exc}"


def require_postgres() -> None:
    reason = postgres_reason()
    if reason is None:
        return
    if os.environ.get("TRADECORE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"TRADECORE_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def fresh_pg_url() -> str:
    """A PostgreSQL store URL in a schema of its own (dropped at session end)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _schemas.append(schema)
    return f"{PG_DSN}?schema={schema}"


_schemas: list[str] = []

# `make test` runs the suite on two pytest-xdist workers, `--dist loadfile`: a module's tests stay on one
# worker, so its module-scoped set-ups (a year's backtest, a seeded archive, a node) are made once. These
# modules restore into PostgreSQL, where the staging schemas (tc_restore_*) live beside every store of the
# one test database and test_restore_kill lists, prunes and drops them database-wide: they share a worker.
ONE_WORKER = {
    "tests/e2e/test_restore_kill.py": "restore staging schemas",
    "tests/integration/test_backup.py": "restore staging schemas",
}


def _module_scheduler():
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        """--dist loadfile, with the modules of ONE_WORKER as one unit of work."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return ONE_WORKER.get(module, module)

    return ModuleScheduling


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (dev extra): unused where it is not installed or -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        return _module_scheduler()(config, log)
    return None


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_schemas():
    yield
    if not _schemas:
        return
    try:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as conn:
            for schema in _schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except Exception:  # noqa: BLE001 - cleanup only
        pass


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    """The URL of an empty store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    require_postgres()
    return fresh_pg_url()


@pytest.fixture
def app(store_url):
    application = open_store(store_url)
    yield application
    application.close()


@pytest.fixture
def meta() -> EventMeta:
    return EventMeta(occurred_at=T0, actor="test")


CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_executable() -> str:
    """Debian's Chromium for browser tests: skips with the reason when missing,
    fails instead when TRADECORE_REQUIRE_CHROMIUM=1 (set by .ci/run)."""
    import shutil

    for candidate in (os.environ.get("TRADECORE_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    reason = "Chromium not installed (apt-get install -y chromium); browser tests need it"
    if os.environ.get("TRADECORE_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"TRADECORE_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def chromium_browser():
    """A headless Chromium driven by Playwright (Debian's binary, no download)."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
