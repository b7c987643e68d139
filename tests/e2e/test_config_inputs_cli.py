"""`config validate` refuses a backup destination it cannot use, and names unknown settings with their section."""

from __future__ import annotations

import pytest

from tests.e2e.test_anchors_cli import cli, one_line


@pytest.mark.parametrize("dest, scheme", [("ftp://x", "ftp"), ("file:///var/backups", "file"), ("http://bucket", "http")])
def test_a_backup_destination_with_an_unknown_scheme_is_refused(dest, scheme):
    result = cli("config", "validate", extra_env={"BACKUP__DEST": dest})
    assert result.returncode == 2
    assert f"backup.dest = '{dest}': unknown scheme '{scheme}'" in one_line(result)


@pytest.mark.parametrize("dest", ["var/backups", "/srv/backups", "s3://bucket/prefix"])
def test_directories_and_s3_are_accepted(dest):
    assert cli("config", "validate", extra_env={"BACKUP__DEST": dest}).returncode == 0


def test_an_s3_destination_needs_a_bucket():
    result = cli("config", "validate", extra_env={"BACKUP__DEST": "s3:///prefix"})
    assert result.returncode == 2 and "needs a bucket" in one_line(result)


def test_an_unknown_settings_section_name_survives_the_terminal_markup():
    result = cli("config", "validate", extra_env={"RISK__MAX_DAILY_LOS_PCT": "3"})
    assert result.returncode == 2
    assert "unknown setting in [risk]" in one_line(result)
