"""The weekly security and upkeep check (`tradecore maintenance`): file modes, secrets where they must
not be, the store's and read model's upkeep, backup retention and leftovers, the newest anchor's age.

- ``files``: modes of what holds the log, events or secrets (0600 files, 0700 folders).
- ``secrets``: every configured secret, and anything shaped like a key or token, in logs, exports,
  backups and event payloads.
- ``upkeep``: SQLite integrity check, ANALYZE, and VACUUM done safely (into a new file, verified,
  swapped in); DuckDB checkpoint; backups past retention, leftovers and the newest anchor.
"""
