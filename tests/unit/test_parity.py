"""docs/parity.md is the table in core/parity.py, and every function it names exists."""

from __future__ import annotations

from pathlib import Path

from mimir_edge.core.parity import BEGIN, END, RULES, check_implementations, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "parity.md"


def test_the_doc_holds_the_generated_table() -> None:
    text = DOC.read_text()
    table = text[text.index(BEGIN) : text.index(END) + len(END) + 1]
    assert table == render(), "docs/parity.md is stale: run `make parity-doc`"


def test_every_named_implementation_exists() -> None:
    assert check_implementations() == []


def test_the_rules_the_issue_names_are_all_there() -> None:
    names = {rule.name for rule in RULES}
    for needed in (
        "HA dedupe (per request)",
        "Exemplars",
        "Metadata",
        "Native histograms",
        "Invalid series",
        "Duplicate timestamps",
        "Relabelling and drop_labels",
    ):
        assert needed in names
