"""Rewrites the parity table in docs/parity.md from services/mimir_edge/core/parity.py."""

from __future__ import annotations

from pathlib import Path

from mimir_edge.core.parity import BEGIN, END, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "parity.md"

if __name__ == "__main__":
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    DOC.write_text(text[:start] + render() + text[end:])
