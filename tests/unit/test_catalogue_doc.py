"""docs/events.md is the catalogue rendered from the code, so it cannot drift."""

from pathlib import Path

from api.cli.catalogue import render_catalogue
from domain.events import event_classes

ROOT = Path(__file__).resolve().parents[2]


def test_docs_events_md_matches_the_event_classes():
    assert (ROOT / "docs" / "events.md").read_text() == render_catalogue(), (
        "docs/events.md is stale: run `tradecore catalogue > docs/events.md`"
    )


def test_catalogue_documents_every_event_class():
    text = render_catalogue()
    ours = [name for name, cls in event_classes().items() if cls.__module__.startswith("domain.")]
    missing = [name for name in ours if f"### {name}\n" not in text]
    assert missing == []
