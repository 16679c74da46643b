"""Suggested replies: the answers given to the tickets most like this one, within its fine category.

Candidates are the corpus' answers (compared through their question) and the replies agents sent (compared through
the first message of the ticket they answered). Likeness is the cosine of character 1-3-gram TF-IDF vectors of the
cleaned texts: it needs no tokeniser, treats Japanese and English alike, and tolerates typos and width variants.
A hashed sparse matrix in numpy, built once per process: core stays free of scikit-learn, and a search over every
row takes milliseconds.
"""

from __future__ import annotations

import math
import threading
import zlib
from array import array
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.categories import Catalog, CorpusRow, catalog, corpus_path, corpus_rows
from core.mailer import language_of
from core.orm import Message, Ticket
from core.routes import RouteMap
from core.text import clean, ticket_text

NGRAM_SIZES = (1, 2, 3)
SUGGESTIONS = 3
# Sent replies compared per request, newest first: recent answers are the house style, and the cost stays bounded.
REPLIES_SCANNED = 500

# Columns of the hashed gram space (2^20: ~150,000 distinct grams in the bundled corpus rarely collide).
SLOTS = 1 << 20

Vector = dict[int, float]


@dataclass(frozen=True)
class Suggestion:
    text: str
    similarity: float  # cosine in [0, 1]
    category: str
    source: str  # "corpus" or "agent_reply"
    reference: str  # the corpus row's id, or the reference of the ticket the reply answered
    language: str  # "ja" or "en"


def ngram_counts(text: str) -> Counter[str]:
    """Character 1-, 2- and 3-grams of the cleaned text (white space is kept inside grams: it marks word edges in
    English; grams of white space alone carry nothing)."""
    cleaned = clean(text)
    counts: Counter[str] = Counter()
    for size in NGRAM_SIZES:
        counts.update([cleaned[i:i + size] for i in range(len(cleaned) - size + 1)])
    counts.pop(" ", None)
    return counts


def slot(gram: str) -> int:
    """A gram's column: its CRC-32 folded into SLOTS (the hashing trick). No vocabulary is kept (a dict of ~150,000
    grams would cost more memory than the matrix); the rare collision merges two grams' weights."""
    return zlib.crc32(gram.encode("utf-8")) & (SLOTS - 1)


class CorpusIndex:
    """The corpus' answers, with the TF-IDF vectors of their questions as one sparse row matrix (CSR: three numpy
    arrays, about 8 MB for the bundled 6,000 rows). A query is one vectorised pass over every row (a few
    milliseconds), masked to the categories asked for.

    An earlier version kept a dict of grams per row and an inverted index per category in plain Python: 200 MB in
    every API process and seconds for a search over all categories."""

    def __init__(self, rows: Iterable[CorpusRow]) -> None:
        kept: list[CorpusRow] = []
        indptr, indices, frequencies = [0], array("i"), array("f")
        for row in rows:
            if not row.answer.strip():
                continue
            slots: Counter[int] = Counter()
            for gram, count in ngram_counts(row.question).items():
                slots[slot(gram)] += count
            if not slots:
                continue
            kept.append(row)
            indices.extend(slots.keys())
            frequencies.extend(slots.values())
            indptr.append(len(indices))
        self.rows = kept
        self.languages = [language_of(row.answer) for row in kept]
        self._indptr = np.array(indptr, dtype=np.int64)
        self._indices = np.frombuffer(indices, dtype=np.int32) if indices else np.zeros(0, np.int32)
        total = len(kept)
        # Smoothed as scikit-learn's TfidfVectorizer: a gram no row has still weighs the most, never infinitely.
        document_frequency = np.bincount(self._indices, minlength=SLOTS)
        self._idf = (np.log((1 + total) / (1 + document_frequency)) + 1).astype(np.float32)
        tf = np.frombuffer(frequencies, dtype=np.float32) if frequencies else np.zeros(0, np.float32)
        weights = (1 + np.log(tf)) * self._idf[self._indices]
        norms = np.sqrt(np.add.reduceat(weights * weights, self._indptr[:-1])) if total else np.zeros(0, np.float32)
        self._data = (weights / np.repeat(norms, np.diff(self._indptr))).astype(np.float32)
        self._category_names = sorted({row.category for row in kept})
        number = {name: n for n, name in enumerate(self._category_names)}
        self._category_of = np.array([number[row.category] for row in kept], dtype=np.int32)

    @property
    def categories(self) -> list[str]:
        return list(self._category_names)

    def vector(self, counts: Counter[str]) -> Vector:
        """Sublinear TF times IDF, L2-normalised: a repeated gram counts, but not linearly."""
        slots: Counter[int] = Counter()
        for gram, count in counts.items():
            slots[slot(gram)] += count
        weights = {column: (1 + math.log(n)) * float(self._idf[column]) for column, n in slots.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {column: w / norm for column, w in weights.items()} if norm else {}

    def nearest(self, query: Vector, categories: Collection[str] | None, limit: int) -> list[tuple[int, float]]:
        """(row number, cosine) of the rows most like the query, best first; `categories` None searches all."""
        if not self.rows or not query:
            return []
        dense = np.zeros(SLOTS, dtype=np.float32)
        dense[np.fromiter(query.keys(), dtype=np.int64)] = np.fromiter(query.values(), dtype=np.float32)
        scores = np.add.reduceat(self._data * dense[self._indices], self._indptr[:-1])
        if categories is not None:
            wanted = [n for n, name in enumerate(self._category_names) if name in set(categories)]
            scores = np.where(np.isin(self._category_of, wanted), scores, 0.0)
        best = np.argsort(-scores, kind="stable")[:limit]
        return [(int(n), float(scores[n])) for n in best if scores[n] > 0]

    def suggestion(self, number: int, similarity: float) -> Suggestion:
        row = self.rows[number]
        return Suggestion(row.answer, min(similarity, 1.0), row.category, "corpus", row.id, self.languages[number])


_indexes: dict[tuple[Path, int], CorpusIndex] = {}
_building = threading.Lock()


def corpus_index(path: Path) -> CorpusIndex:
    """The index of one corpus file, built on first use in this process (about a second for the bundled 6,000
    rows) and again only if the file changes."""
    try:
        key = (path, path.stat().st_mtime_ns)
    except OSError:
        key = (path, -1)
    with _building:  # concurrent first requests build it once
        index = _indexes.get(key)
        if index is None:
            _indexes.clear()
            index = _indexes[key] = CorpusIndex(corpus_rows(path))
        return index


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(weight * b.get(gram, 0.0) for gram, weight in a.items())


def scope(fine_category: str | None, route: str | None, known: Catalog) -> list[str] | None:
    """The categories to search: the ticket's own; without one, those of its route; without a route (or a route
    no category folds into), all of them (None)."""
    if fine_category:
        return [fine_category]
    in_route = known.of_route(route) if route is not None else []
    return in_route or None


def reply_candidates(session: Session, categories: Collection[str] | None, exclude: object | None = None,
                     limit: int = REPLIES_SCANNED) -> list[tuple[str, str, str, str]]:
    """(reply text, question text, category, ticket reference) of the newest replies agents sent on tickets of
    these categories (any known category when None), the ticket `exclude` (an id) left out."""
    query = (
        select(Message.body, Ticket.subject, Ticket.body, Ticket.fine_category, Ticket.reference)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.kind == "agent_reply", Message.delivery == "sent")
    )
    if categories is None:
        query = query.where(Ticket.fine_category.is_not(None))
    else:
        query = query.where(Ticket.fine_category.in_(list(categories)))
    if exclude is not None:
        query = query.where(Ticket.id != exclude)
    rows = session.execute(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))
    return [(reply, ticket_text(subject, body), category or "", reference)
            for reply, subject, body, category, reference in rows]


def rank(query_text: str, categories: Collection[str] | None, index: CorpusIndex,
         replies: Iterable[tuple[str, str, str, str]] = (), limit: int = SUGGESTIONS) -> list[Suggestion]:
    """The `limit` best distinct answers: in the query's language first (an answer to copy is only useful in the
    language the customer wrote), then by similarity. Nothing that shares no gram with the query."""
    query = index.vector(ngram_counts(query_text))
    if not query:
        return []
    # Enough corpus rows that `limit` survive the language preference and duplicate answers.
    found = [index.suggestion(number, score) for number, score in index.nearest(query, categories, limit * 20)]
    for reply, question, category, reference in replies:
        if not reply.strip():
            continue
        similarity = cosine(query, index.vector(ngram_counts(question)))
        found.append(Suggestion(reply, min(similarity, 1.0), category, "agent_reply", reference, language_of(reply)))
    language = language_of(query_text)
    best: dict[str, Suggestion] = {}
    for candidate in sorted(found, key=lambda s: (s.language != language, -s.similarity)):
        if candidate.similarity > 0:
            best.setdefault(" ".join(candidate.text.split()), candidate)
    return list(best.values())[:limit]


def for_ticket(session: Session, ticket: Ticket, corpus: Path | None = None, route_map: RouteMap | None = None,
               limit: int = SUGGESTIONS) -> list[Suggestion]:
    """Suggested replies for a ticket. `corpus`: RETRAIN_CORPUS (None: the bundled corpus); `route_map`: the
    configured map (None: the default), which says which categories a route holds when the ticket has none."""
    categories = scope(ticket.fine_category, ticket.route, catalog(session, corpus, route_map))
    replies = reply_candidates(session, categories, exclude=ticket.id)
    return rank(ticket_text(ticket.subject, ticket.body), categories, corpus_index(corpus_path(corpus)), replies,
                limit)
