"""The weekly security and upkeep check (`tradecore maintenance`): file modes, secrets where they must
not be, the store's and read model's upkeep, backup retention and leftovers, the newest anchor's age.

- ``files``: modes of what holds the log, events or secrets (0600 files, 0700 folders).
- ``secrets``: every configured secret, and anything shaped like a key or token, in logs, exports,
  backups and event payloads.
- ``upkeep``: SQLite integrity check, ANALYZE, and VACUUM done safely (into a new file, verified,
  swapped in); DuckDB checkpoint; backups past retention, leftovers and the newest anchor.

The package is the ``UpkeepKit`` port's adapter (application/operations/maintenance.py): api/bootstrap.py
hands it to the weekly check as it is.
"""

from infrastructure.maintenance.files import guarded_paths, mode_findings
from infrastructure.maintenance.secrets import backup_chunks, configured_secrets, file_chunks, log_chunks, payloads, scan
from infrastructure.maintenance.upkeep import anchor_age, backup_findings, duckdb_checkpoint, sqlite_upkeep

__all__ = ["anchor_age", "backup_chunks", "backup_findings", "configured_secrets", "duckdb_checkpoint", "file_chunks",
           "guarded_paths", "log_chunks", "mode_findings", "payloads", "scan", "sqlite_upkeep"]
