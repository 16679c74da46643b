"""The bundled corpus (data/tickets.tsv): size, coverage, format, and no duplicates or near-duplicates.

Similarity bound: two questions are near-duplicates when the Jaccard similarity of their character-trigram sets
(after NFKC, lower-casing, digits → 0 and dropping spaces/punctuation) exceeds 0.6. Why 0.6: paraphrases written
separately for the same need score 0.2–0.45 here, while a template with a swapped slot (a product name, an amount)
scores 0.7+; 0.6 refuses the latter without refusing short tickets that share a common phrase.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np
import pytest

from core.routes import RouteMap
from tests.support.paths import CORPUS
from training.datasets import load

CATEGORIES = [
    "Account - Login", "Account - Password", "Account - Registration", "Account - Profile", "Account - Deletion",
    "Account - Security", "Payment - Method", "Payment - Billing", "Payment - Refund", "Payment - Subscription",
    "Shipping", "Product", "Bug", "Feature Request", "Usage", "Campaign", "Feedback", "Spam", "Off-topic",
]
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
SIMILARITY_BOUND = 0.6


def rows() -> list[list[str]]:
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "id\tquestion\tanswer\tcategory"
    return [line.split("\t") for line in lines[1:] if line]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.replace("\\n", "\n")).lower()
    return re.sub(r"[\s\W_]+", "", re.sub(r"\d", "0", text))


def test_format_ids_and_no_tabs_inside_fields():
    table = rows()
    assert all(len(r) == 4 for r in table)
    ids = [r[0] for r in table]
    assert len(set(ids)) == len(ids)


def test_size_and_coverage():
    usable = load(CORPUS)
    by_category = Counter(e.category for e in usable.examples)
    assert set(by_category) == set(CATEGORIES)
    assert min(by_category.values()) >= 80, by_category
    japanese = sum(bool(JAPANESE.search(e.text)) for e in usable.examples)
    assert japanese >= 3000 and len(usable) - japanese >= 600
    lengths = [len(e.text) for e in usable.examples]
    assert min(lengths) <= 10 and max(lengths) >= 500


def test_unusable_rows_are_dropped_and_counted():
    assert 1 <= load(CORPUS).dropped["empty after clean-up"] <= 30


def test_routes_follow_the_default_map():
    routes = Counter(RouteMap.load().route_for(r[3]) for r in rows())
    assert routes["Account"] > 1000 and routes["Payment"] > 800 and routes["Other"] > 1500


def test_no_duplicates_after_normalisation():
    normalised = [normalise(r[1]) for r in rows() if normalise(r[1])]
    repeated = [t for t, n in Counter(normalised).items() if n > 1]
    assert not repeated


@pytest.mark.slow
def test_no_near_duplicates():
    from sklearn.feature_extraction.text import CountVectorizer

    from core.text import clean

    # Only rows the importer keeps: the deliberately unusable ones (signature only, a bare URL) are dropped anyway.
    texts = [normalise(r[1]) for r in rows() if clean(r[1].replace("\\n", "\n"))]
    texts = [t for t in texts if len(t) >= 6]
    grams = CountVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, lowercase=False).fit_transform(texts)
    sizes = np.asarray(grams.sum(axis=1)).ravel()
    shared = (grams @ grams.T).tocoo()
    pairs = shared.row < shared.col
    rows_, cols, inter = shared.row[pairs], shared.col[pairs], shared.data[pairs]
    jaccard = inter / (sizes[rows_] + sizes[cols] - inter)
    worst = [(float(j), texts[a][:40], texts[b][:40]) for j, a, b in zip(jaccard, rows_, cols, strict=True)
             if j > SIMILARITY_BOUND]
    assert not worst, worst[:5]
