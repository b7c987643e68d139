"""Backups, restores and auditor's exports of the event log.

The log is the only thing worth backing up: the read model is rebuilt from it.

- ``rows``: raw rows of the store (notification id, stream, version, topic,
  stored bytes, chain link) read as a consistent snapshot in pages, and
  written back into an empty store with the same ids.
- ``archive``: the on-disk format (a Parquet or JSONL.gz events file plus a
  manifest), written to a temporary name, fsynced and renamed; its checks.
- ``storage``: where archives live (a directory or ``s3://bucket/prefix``).
- ``retention``: which archives ``prune`` keeps.
- ``walk``: the chain recomputed over archived rows (and a restore's order checks of the rows it writes).
- ``loading``: a restore built beside the target, verified, then swapped in atomically; ``sqlite_restore``: into SQLite.
- ``chain_check``: a restored SQLite log verified as stored, every link once, batch by batch while it is written.
- ``operations``: create (refusing a rewound log unless accepted), verify, restore, prune.
- ``export`` and ``analyst``: the auditor's export (typed Parquet columns) and its check.
- ``anchors``: signed anchors of the chain head in a file, a folder or S3 (Object Lock).
- ``leftovers``: what killed backups and restores left behind.
"""
