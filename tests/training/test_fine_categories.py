"""The fine-category head's data: the fine label is separate from where a row comes from, a row without one trains
the route head only, and a retrain learns agents' corrected categories and resolved tickets' categories."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.config import RetrainSettings
from core.db import make_engine, make_session_factory
from core.orm import Correction, Ticket
from tests.support.backends import both_backends
from training.datasets import Dataset, Example, load
from training.metrics import category_scores
from training.train import category_labels, category_targets


def test_seed_rows_keep_their_category_and_a_missing_one_is_none(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tquestion\tanswer\tcategory\troute\n1\t返金して\ta\tPayment - Refund\t\n"
                    "2\t画面が固まる\ta\t\tOther\n", encoding="utf-8")
    data = load(path)
    assert data.categories == ["Payment - Refund", None]
    assert [e.origin for e in data.examples] == ["corpus", "corpus"]
    assert data.category_labels() == ["Payment - Refund"]


def test_a_category_too_long_to_store_is_an_error_naming_the_line(tmp_path):
    from training.datasets import DatasetError

    path = tmp_path / "t.tsv"
    path.write_text("id\tquestion\tanswer\tcategory\troute\n1\t返金して\ta\t" + "x" * 65 + "\tPayment\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError, match=r"t.tsv:2: category longer than 64 characters"):
        load(path)


def test_the_fine_label_is_part_of_what_a_dataset_teaches():
    """The retrain skips a run whose data hashes the same: an agent's changed category must change the hash."""
    rows = [Example("返金して", "Payment", "Payment - Refund", "s:1")]
    changed = [replace(rows[0], category="Payment - Billing")]
    unlabelled = [replace(rows[0], category=None)]
    hashes = {Dataset(r).content_hash() for r in (rows, changed, unlabelled)}
    assert len(hashes) == 3


def test_rows_without_a_fine_label_get_no_weight_on_the_category_head():
    labels, weights = category_targets(["B", None, "A", "Z"], ["A", "B"], np.array([2.0, 3.0, 1.0, 1.0], "float32"))
    assert labels[0] == 1 and labels[2] == 0
    assert weights.tolist() == [2.0, 0.0, 1.0, 0.0]  # "Z" is no label of the head: no weight either


def test_fewer_than_two_fine_labels_make_no_head():
    data = Dataset([Example("a", "Account", "Account - Login", "s:1"), Example("b", "Other", None, "s:2")])
    assert category_labels(data) == []
    data.examples.append(Example("c", "Other", "Bug", "s:3"))
    assert category_labels(data) == ["Account - Login", "Bug"]


def test_category_scores_count_only_rows_with_a_fine_label():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scores = category_scores(["A", None, "B"], probabilities, ["A", "B"])
    assert scores["n"] == 2 and scores["accuracy"] == 0.5 and scores["macro_f1"] == pytest.approx(1 / 3)
    assert category_scores([None], probabilities[:1], ["A", "B"]) == {"n": 0, "accuracy": None, "macro_f1": None}


@pytest.mark.slow
def test_a_batch_without_fine_labels_leaves_the_category_head_untouched():
    """Keras gets the per-head sample weights: weight 0 means no gradient for the category head (the route head
    and the shared layers still learn), while the same rows with labels do move it."""
    import keras

    from training.model import ModelConfig, build_classifier, build_vectorizers, member_outputs
    from training.train import _dataset, compile_classifier

    texts = ["パスワード を 忘れ た", "二重 に 請求 さ れ た", "荷物 が 届か ない"] * 16
    routes = np.array([0, 1, 2] * 16, dtype="int32")
    config = ModelConfig(sequence_length=8, max_tokens=100, embedding_dim=8, lstm_units=4, wide_max_tokens=300,
                         wide_units=4, members=1)
    words, ngrams = build_vectorizers(config, texts)
    labels = ["Account - Password", "Payment - Billing", "Shipping"]

    def moved(fine: list[str | None]) -> tuple[bool, bool]:
        keras.utils.set_random_seed(11)
        classifier = build_classifier(config, words.vocabulary_size(), ngrams.vocabulary_size(), len(labels))
        compile_classifier(classifier, 0.01, member_outputs(1, len(labels)))
        heads = ("route_logits_0", "category_logits_0")
        before = {head: classifier.get_layer(head).get_weights() for head in heads}
        y, w = category_targets(fine, labels, np.ones(len(texts), "float32"))
        data = _dataset(texts, {"route": routes, "category": y},
                        {"route": np.ones(len(texts), "float32"), "category": w}, 16, words, ngrams, shuffle_seed=1)
        classifier.fit(data, epochs=2, verbose=0)
        return tuple(  # type: ignore[return-value]
            any(not np.array_equal(old, new) for old, new in zip(before[head], classifier.get_layer(head).get_weights(),
                                                                 strict=True))
            for head in heads)

    assert moved([None] * len(texts)) == (True, False)
    assert moved([labels[r] for r in routes]) == (True, True)


@both_backends
def test_retrain_data_takes_corrected_and_resolved_categories(database_url, make_settings):
    from training.retrain import CORRECTION, RESOLVED, build_data

    corpus = Dataset([Example(f"{route} corpus text number {i}", route, f"{route} - Cat", f"c:{i}")
                      for route in ("Account", "Payment", "Other") for i in range(30)])
    settings = make_settings(database_url=database_url, retrain=RetrainSettings(holdout_percent=0))
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        def ticket(body: str, route: str, status: str = "routed", fine: str | None = "Other - Cat") -> Ticket:
            row = Ticket(channel="api", body=body, status=status, route=route, model_version="v1",
                         fine_category=fine, score_account=0.1, score_payment=0.1, score_other=0.8)
            session.add(row)
            session.flush()
            return row

        both = ticket("an agent fixed route and category", "Payment")
        session.add(Correction(ticket_id=both.id, predicted_route="Other", corrected_route="Payment",
                               predicted_category="Other - Cat", corrected_category="Payment - Refund"))
        route_only = ticket("an agent fixed the route only", "Account")
        session.add(Correction(ticket_id=route_only.id, predicted_route="Other", corrected_route="Account",
                               predicted_category="Other - Cat"))
        ticket("resolved as it was classified", "Payment", status="resolved", fine="Payment - Billing")
        ticket("resolved from a version without categories", "Other", status="resolved", fine=None)
    with sessions() as session:
        data = build_data(session, settings, corpus)
    engine.dispose()

    rows = {e.text: e for e in data.train.examples}
    assert (rows["an agent fixed route and category"].category, rows["an agent fixed route and category"].origin) == (
        "Payment - Refund", CORRECTION)
    # The category predicted with the wrong route is no label: that row teaches the route head only.
    assert rows["an agent fixed the route only"].category is None
    assert (rows["resolved as it was classified"].category, rows["resolved as it was classified"].origin) == (
        "Payment - Billing", RESOLVED)
    assert rows["resolved from a version without categories"].category is None
    assert category_labels(data.train) == ["Account - Cat", "Other - Cat", "Payment - Billing", "Payment - Cat",
                                           "Payment - Refund"]
    assert len(data.eval_categories) == len(data.eval_texts) and set(data.eval_categories) <= {
        "Account - Cat", "Payment - Cat", "Other - Cat"}
