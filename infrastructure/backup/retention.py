"""Which archives ``tradecore backup prune`` keeps (pure: manifests in, a plan out).

1. The newest N archives of each kind (daily, weekly, monthly) are kept.
2. Every archive a kept incremental depends on (its parent, and theirs) is kept.
3. An archive holding an event that no kept archive holds is kept: pruning
   never deletes the only copy of an event.
Incomplete archives (no manifest) are left alone and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infrastructure.backup.archive import Manifest

KINDS = ("daily", "weekly", "monthly")


@dataclass
class PrunePlan:
    """Archives to keep (with why) and to delete, by name."""

    keep: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def _covered(ranges: list[tuple[int, int]], first: int, last: int) -> bool:
    """Is every id in [first, last] inside the union of ``ranges``?"""
    need = first
    for lo, hi in sorted(ranges):
        if lo > need:
            break
        need = max(need, hi + 1)
        if need > last:
            return True
    return need > last


def plan_prune(archives: dict[str, Manifest | None], keep_counts: dict[str, int]) -> PrunePlan:
    """Decide what to keep; ``keep_counts`` maps kind -> how many of the newest to keep."""
    plan = PrunePlan()
    complete = {name: m for name, m in archives.items() if m is not None}
    plan.incomplete = sorted(name for name, m in archives.items() if m is None)
    for kind in KINDS:
        of_kind = sorted((m.created_at, name) for name, m in complete.items() if m.kind == kind)
        count = keep_counts.get(kind, 0)
        for _, name in of_kind[len(of_kind) - count:] if count else []:
            plan.keep[name] = f"newest {count} {kind}"
    for name, m in complete.items():  # a kind outside the three is never pruned
        if m.kind not in KINDS:
            plan.keep.setdefault(name, f"kind {m.kind!r} is not pruned")

    def keep_parents() -> None:
        for name in list(plan.keep):
            parent = complete[name].parent
            while parent is not None and parent in complete:
                plan.keep.setdefault(parent, f"parent of kept {name}")
                name, parent = parent, complete[parent].parent

    keep_parents()
    # Newest first: a newer archive that covers more events is preferred as the kept copy.
    for name in sorted((n for n in complete if n not in plan.keep), key=lambda n: complete[n].created_at, reverse=True):
        m = complete[name]
        if not m.event_count:
            continue
        ranges = [(k.first_id, k.last_id) for k in (complete[n] for n in plan.keep) if k.event_count]
        if not _covered(ranges, m.first_id, m.last_id):
            plan.keep[name] = f"only copy of some events in {m.first_id}..{m.last_id}"
            keep_parents()
    plan.delete = sorted((n for n in complete if n not in plan.keep), key=lambda n: complete[n].created_at)
    return plan
