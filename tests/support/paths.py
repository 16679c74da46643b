"""Where the checkout, the bundled corpus and the shared data sets beside the checkout are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data" / "tickets.tsv"
SHARED = ROOT.parent / "shared"
