from pathlib import Path

from lianxin.event_catalog import render


def test_the_event_catalogue_in_docs_matches_the_code():
    doc = Path(__file__).resolve().parents[1] / "docs" / "events.md"
    assert doc.read_text() == render(), (
        "docs/events.md is stale: run `python -m lianxin.event_catalog > docs/events.md`")
