"""What a maintenance check found: one line each, with what to do (defined in application/operations/maintenance.py,
where the weekly check is decided; these names stay for the adapters and old imports)."""

from __future__ import annotations

from application.operations.maintenance import Finding, finding, fixed, ok, skipped

__all__ = ["Finding", "finding", "fixed", "ok", "skipped"]
