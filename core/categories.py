"""The fine categories (the corpus' own labels, e.g. "Payment - Refund") and the route each belongs to.

Which categories exist is the served model's business: the champion records the sorted label list it was trained on
(train_counts["categories"]). Before a model with a category output is served, the shipped corpus' categories stand
in. The corpus is read here with the csv module, not through training's loader: core imports nothing above it.
"""

from __future__ import annotations

import csv
import functools
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from core.registry import champion
from core.routes import RouteMap, RouteMapError

log = logging.getLogger(__name__)

# The same file as training.retrain.BUNDLED_CORPUS (RETRAIN_CORPUS unset).
BUNDLED_CORPUS = Path(__file__).resolve().parent.parent / "data" / "tickets.tsv"
SEED_HEADER = ("id", "question", "answer", "category")


@dataclass(frozen=True)
class CorpusRow:
    id: str
    question: str
    answer: str
    category: str


def corpus_path(configured: Path | None = None) -> Path:
    """RETRAIN_CORPUS when it is a corpus in the seed format (id, question, answer, category), else the bundled
    one: a CSV import (banking77, bitext) carries no answers, and suggestions need them."""
    if configured is not None and configured.suffix.lower() != ".csv":
        return configured
    return BUNDLED_CORPUS


def _rows(path: Path) -> Iterator[CorpusRow]:
    csv.field_size_limit(sys.maxsize)  # a long question is a row, not an error
    with path.open(encoding="utf-8", newline="") as handle:
        # Fields hold quotes as typed: the seed format has no quoting, a literal `\n` is a newline.
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = tuple(field.strip() for field in next(reader, []))
        if header[:4] != SEED_HEADER:
            raise ValueError(f"{path}:1: expected header 'id<TAB>question<TAB>answer<TAB>category[<TAB>route]'")
        for row in reader:
            if len(row) < 4 or not row[3].strip():
                continue
            yield CorpusRow(row[0], row[1].replace("\\n", "\n"), row[2].replace("\\n", "\n"), row[3].strip())


@functools.lru_cache(maxsize=4)
def _read_corpus(path: Path, mtime_ns: int) -> tuple[CorpusRow, ...]:
    del mtime_ns  # part of the cache key only: a replaced file is read again
    return tuple(_rows(path))


def corpus_rows(path: Path) -> tuple[CorpusRow, ...]:
    """Every labelled row of a seed-format corpus, read once per process (again if the file changes). An
    unreadable corpus is logged and reads as empty: suggestions and the category list are help, not the product."""
    try:
        return _read_corpus(path, path.stat().st_mtime_ns)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        log.warning("cannot read the corpus %s: %s", path, exc)
        return ()


def fine_categories(session: Session, corpus: Path | None = None) -> list[str]:
    """The categories the served model predicts (its train_counts["categories"]), else the corpus' own, sorted.

    `corpus`: RETRAIN_CORPUS (Settings.retrain.corpus); None means the bundled data/tickets.tsv."""
    served = champion(session)
    trained = (served.train_counts or {}).get("categories") if served is not None else None
    if isinstance(trained, list) and trained and all(isinstance(name, str) for name in trained):
        return sorted(trained)
    return sorted({row.category for row in corpus_rows(corpus_path(corpus))})


@dataclass(frozen=True)
class Catalog:
    """The fine categories and the route each folds into (by the route map; None where no rule matches)."""

    routes: dict[str, str | None]

    @property
    def names(self) -> list[str]:
        return list(self.routes)

    def route_of(self, category: str) -> str | None:
        return self.routes.get(category)

    def by_route(self) -> dict[str | None, list[str]]:
        """The categories grouped by route, in the order of the routes they first appear with."""
        groups: dict[str | None, list[str]] = {}
        for name, route in self.routes.items():
            groups.setdefault(route, []).append(name)
        return groups

    def of_route(self, route: str | None) -> list[str]:
        """The categories of one route; every category when the route is unknown."""
        if route is None:
            return self.names
        return [name for name, its_route in self.routes.items() if its_route == route]


def route_of(category: str, route_map: RouteMap) -> str | None:
    try:
        return route_map.route_for(category)
    except RouteMapError:
        return None


def catalog(session: Session, corpus: Path | None = None, route_map: RouteMap | None = None) -> Catalog:
    """fine_categories with their routes; `route_map` None is the default map (core/route_map.tsv)."""
    route_map = route_map or RouteMap.load()
    return Catalog({name: route_of(name, route_map) for name in fine_categories(session, corpus)})
