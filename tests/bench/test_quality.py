"""The quality benchmark's data (bench/quality.py): the writer split really splits by writing round, and the
off-topic evaluation set is all Other and shares no near-duplicate with the corpus the shipped model trains on
(one would make the off-topic figure a test on training data)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench.quality import (
    CORPUS,
    LAST_OF_ROUND_1,
    OFFTOPIC,
    ROUND_4,
    corpus_rounds,
    ensemble_rows,
    parse_overrides,
    summary,
)
from tests.core.test_corpus import SIMILARITY_BOUND, normalise
from training.datasets import load

pytestmark = pytest.mark.unit


def _ids() -> list[str]:
    return [line.split("\t", 1)[0] for line in CORPUS.read_text(encoding="utf-8").split("\n")]


@pytest.mark.parametrize(("held_out", "held_out_at_least"),
                         [(range(LAST_OF_ROUND_1 + 1, 10**6), 3500), (ROUND_4, 1400)])
def test_the_writer_splits_hold_out_exactly_the_rows_of_their_rounds(held_out, held_out_at_least):
    trained, scored = corpus_rounds(CORPUS, held_out)
    ids = _ids()
    number = lambda example: int(re.sub(r"\D", "", ids[int(example.source.rsplit(":", 1)[1]) - 1]))  # noqa: E731
    assert all(number(e) not in held_out for e in trained.examples)
    assert all(number(e) in held_out for e in scored.examples)
    assert len(trained) + len(scored) == len(load(CORPUS)) and len(scored) > held_out_at_least
    assert set(trained.routes) == set(scored.routes) == {"Account", "Payment", "Other"}


def test_the_offtopic_set_is_all_other_and_no_corpus_row_is_a_near_duplicate_of_it():
    from sklearn.feature_extraction.text import CountVectorizer

    offtopic = load(OFFTOPIC)
    assert len(offtopic) >= 200 and set(offtopic.routes) == {"Other"} and not offtopic.dropped
    ours = [t for t in (normalise(x) for x in offtopic.texts) if len(t) >= 6]
    corpus = [t for t in (normalise(x) for x in load(CORPUS).texts) if len(t) >= 6]
    grams = CountVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, lowercase=False).fit(ours + corpus)
    a, b = grams.transform(ours), grams.transform(corpus)
    shared = (a @ b.T).toarray()
    sizes = np.asarray(a.sum(axis=1)), np.asarray(b.sum(axis=1)).T
    jaccard = shared / np.maximum(sizes[0] + sizes[1] - shared, 1)
    worst = np.unravel_index(jaccard.argmax(), jaccard.shape)
    assert jaccard.max() <= SIMILARITY_BOUND, (ours[worst[0]][:40], corpus[worst[1]][:40])


def test_overrides_are_typed_like_the_defaults_and_unknown_fields_refused():
    model, train = parse_overrides(["embedding_dim=32", "wide=false", "target_precision=0.95"])
    assert model == {"embedding_dim": 32, "wide": False} and train == {"target_precision": 0.95}
    with pytest.raises(SystemExit, match="no_such_field"):
        parse_overrides(["no_such_field=1"])


def test_the_summary_gives_mean_spread_and_range_per_case_and_model():
    rows = [{"case": "c", "model": "m", "seed": s, "accuracy": a} for s, a in ((1, 0.8), (2, 0.9), (3, 1.0))]
    (row,) = summary(rows)
    assert row["seeds"] == 3 and row["accuracy"]["mean"] == pytest.approx(0.9)
    assert row["accuracy"]["min"] == 0.8 and row["accuracy"]["max"] == 1.0
    assert row["accuracy"]["std"] == pytest.approx(np.std([0.8, 0.9, 1.0]))


def test_seeds_averaged_score_the_mean_of_their_probabilities_with_the_members_mean_thresholds():
    """Two members, each wrong on one of three tickets; averaged, all three are right. Columns are
    Account, Payment, Other."""

    class Tickets:
        routes = ["Account", "Payment", "Other"]

    first = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]])
    second = np.array([[0.4, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.1, 0.9]])
    offtopic = np.array([[0.0, 0.8, 0.2], [0.0, 0.0, 1.0]])  # both are Other; the first goes to Payment
    kept = {"shipped": [(first, offtopic, {"Account": 0.5, "Payment": 0.6, "Other": 0.5}),
                        (second, offtopic, {"Account": 0.7, "Payment": 0.7, "Other": 0.5})]}
    ticket_row, offtopic_row = ensemble_rows("c", kept, Tickets())
    assert ticket_row["model"].endswith("2 seeds averaged") and ticket_row["accuracy"] == 1.0
    # Averaged: Account 0.65 (threshold 0.6: kept), Payment 0.7 (0.65: kept), Other 0.9 (0.5: kept).
    assert ticket_row["auto_share"] == 1.0 and ticket_row["auto_accuracy"] == 1.0
    assert offtopic_row == {"case": "offtopic", "model": ticket_row["model"], "seed": -1,
                            "to_account_or_payment": 0.5, "without_review": 0.5}
    assert ensemble_rows("c", {"shipped": kept["shipped"][:1]}, Tickets()) == []  # one seed is no ensemble
