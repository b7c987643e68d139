"""Read-only commands never create a store: a wrong URL is one error line naming it, exit 2."""

from __future__ import annotations

import pytest

from tests.conftest import PG_DSN, require_postgres
from tests.e2e.test_reports_cli import cli

READ_ONLY = [
    ("audit", "verify"),
    ("audit", "export", "--output", "{tmp}/export.jsonl"),
    ("events",),
    ("report", "daily", "--reports-dir", "{tmp}/reports"),
    ("query", "SELECT 1"),
    ("replay", "--date", "2018-01-01"),
    ("config", "drift"),
    ("health",),
    ("health", "--watch", "--ticks", "1"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path, command):
    target = tmp_path / "no" / "such" / "typo.db"
    url = f"sqlite:///{target}"
    args = [a.format(tmp=tmp_path) for a in command]
    result = cli(*args, "--store", url, env={"READMODEL__PATH": str(tmp_path / "rm.duckdb")})
    assert result.returncode == 2, result.stdout
    message = " ".join(result.stderr.split())
    assert f"no event store at {url}" in message and "does not exist" in message
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert not target.exists() and not target.parent.exists()


def test_an_empty_sqlite_file_is_not_an_event_store(tmp_path):
    target = tmp_path / "empty.db"
    target.touch()
    result = cli("audit", "verify", "--store", f"sqlite:///{target}")
    assert result.returncode == 2 and "holds no event log" in " ".join(result.stderr.split())
    assert target.stat().st_size == 0


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("audit", "verify"), ("events",), ("config", "drift")], ids=lambda c: " ".join(c))
def test_a_missing_postgres_schema_is_an_error_and_is_not_created(command):
    require_postgres()
    import psycopg

    schema = "t_missing_schema_for_read_only"
    url = PG_DSN.replace("postgresql://", "postgresql://", 1) + f"?schema={schema}"
    result = cli(*command, "--store", url)
    assert result.returncode == 2, result.stdout
    assert f"schema '{schema}' holds no event log" in " ".join(result.stderr.split())
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()[0] == 0


@pytest.mark.postgres
def test_a_misspelt_url_parameter_writes_nothing_into_public(tmp_path):
    require_postgres()
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        before = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    result = cli("backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-02", "--store", PG_DSN + "?shema=x")
    assert result.returncode == 2
    assert "unknown URL parameter(s) shema" in " ".join(result.stderr.split())
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == before


def test_an_overlong_schema_name_is_refused():
    result = cli("audit", "verify", "--store", PG_DSN + "?schema=" + "s" * 64)
    assert result.returncode == 2 and "is 64 bytes" in " ".join(result.stderr.split())


def test_backup_create_of_a_missing_store_backs_up_nothing_and_creates_nothing(tmp_path):
    target = tmp_path / "typo.db"
    result = cli("backup", "create", "--dest", str(tmp_path / "backups"), "--store", f"sqlite:///{target}")
    assert result.returncode == 2 and "no event store at" in " ".join(result.stderr.split())
    assert not target.exists() and not (tmp_path / "backups").exists()
