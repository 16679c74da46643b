"""The linear arm (serving/linear.py): the features it rebuilds from its stored arrays are the fitted
TfidfVectorizer's, its probabilities the fitted regression's, the file round-trips without pickle, and the blend is
the tempered mean of the two arms' log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from serving.linear import COVERAGE_WIDTH, FILE, LEGACY_NGRAM_RANGE, NGRAM_RANGE, LinearArm, blend, log_softmax

pytestmark = pytest.mark.unit

TEXTS = [
    "パスワードを忘れてログインできません", "ログイン画面から先に進めない", "アカウントを削除したい",
    "カードの支払いが通りません", "二重に請求されています", "返金してください、注文はキャンセル済み",
    "荷物がまだ届きません", "アプリが落ちる", "I was charged twice for my order", "cant log in since yesterday",
    "where is my parcel", "クーポンが使えない",
]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 0, 2, 2])


def _fitted(weights: np.ndarray | None = None) -> tuple[LinearArm, object, object]:
    """The arm, and the same scikit-learn vectorizer and regression fitted directly, as the baseline fits them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True)
    regression = LogisticRegression(C=10, max_iter=2000, class_weight="balanced")
    regression.fit(vectorizer.fit_transform(TEXTS), LABELS, sample_weight=weights)
    return LinearArm.fit(TEXTS, LABELS, 3, weights), vectorizer, regression


def test_features_and_probabilities_are_the_fitted_vectorizers_and_regressions():
    arm, vectorizer, regression = _fitted()
    unseen = ["ログインできない😭", "返金まだ？", "パスワード", "", "ＩＤ：ＭＥＭ０００４５２１ 支払い", "   ",
              "a", "Çà\u3000 ÉTÉ\tx\n\ny", "lone \ud800 surrogate", "𠮷野家 の 𠮷", "aaa aaa aaa"]
    for texts in (TEXTS, unseen):
        np.testing.assert_allclose(arm.features(texts).toarray(), vectorizer.transform(texts).toarray(), atol=1e-12)
        expected = regression.predict_proba(vectorizer.transform(texts))
        np.testing.assert_allclose(np.exp(arm.log_probabilities(texts)), expected, rtol=1e-9, atol=1e-12)
    assert arm.log_probabilities([]).shape == (0, 3)


def test_features_equal_the_vectorizers_on_the_corpus():
    """Fitted on 400 corpus tickets, scored on 400 others (n-grams it never saw are dropped, as scikit-learn does)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tests.support.paths import CORPUS
    from training.datasets import load

    corpus = load(CORPUS)
    texts, routes = corpus.texts[::8][:800], corpus.routes[::8][:800]
    labels = np.array([["Account", "Payment", "Other"].index(r) for r in routes])
    arm = LinearArm.fit(texts[:400], labels[:400], 3)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True).fit(texts[:400])
    for part in (texts[:400], texts[400:]):
        np.testing.assert_allclose(arm.features(part).toarray(), vectorizer.transform(part).toarray(), atol=1e-12)


def test_row_weights_change_the_fit_as_they_change_the_regressions():
    weights = np.linspace(0.5, 3.0, len(TEXTS))
    arm, vectorizer, regression = _fitted(weights)
    np.testing.assert_allclose(np.exp(arm.log_probabilities(TEXTS)),
                               regression.predict_proba(vectorizer.transform(TEXTS)), rtol=1e-9, atol=1e-12)
    assert not np.allclose(arm.coef, _fitted()[0].coef)


def test_the_file_round_trips_without_pickle_and_a_version_without_it_has_no_arm(tmp_path):
    arm = _fitted()[0]
    assert LinearArm.load(tmp_path) is None
    arm.save(tmp_path)
    with np.load(tmp_path / FILE, allow_pickle=False) as arrays:
        assert arrays["ngrams"].dtype.kind == "U"
    loaded = LinearArm.load(tmp_path)
    assert loaded is not None and np.array_equal(loaded.ngrams, arm.ngrams)
    np.testing.assert_array_equal(loaded.log_probabilities(TEXTS), arm.log_probabilities(TEXTS))


def test_a_file_without_its_widths_is_read_as_the_baselines_one_to_three(tmp_path):
    """A version trained before the widths were stored (1–3, the baseline's) is still served as it was fitted."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=LEGACY_NGRAM_RANGE, sublinear_tf=True)
    regression = LogisticRegression(C=10, max_iter=2000, class_weight="balanced")
    regression.fit(vectorizer.fit_transform(TEXTS), LABELS)
    vocabulary = vectorizer.vocabulary_
    np.savez(tmp_path / FILE, ngrams=np.array(sorted(vocabulary, key=vocabulary.__getitem__), dtype=str),
             idf=vectorizer.idf_, coef=regression.coef_, intercept=regression.intercept_)
    loaded = LinearArm.load(tmp_path)
    assert loaded is not None and loaded.ngram_range == LEGACY_NGRAM_RANGE
    unseen = ["ログインできない😭", "返金まだ？", "a b", ""]
    np.testing.assert_allclose(np.exp(loaded.log_probabilities(unseen)),
                               regression.predict_proba(vectorizer.transform(unseen)), rtol=1e-9, atol=1e-12)


def test_n_grams_that_cannot_be_keyed_in_64_bits_are_refused():
    """Ids of 12 bits (4,095 characters) times six characters would need 72 bits: refused when the arm is made,
    not mis-served."""
    characters = [chr(0x4E00 + i) for i in range(4095)]
    ngrams = np.array(characters + ["".join(characters[:6])], dtype=str)
    with pytest.raises(ValueError, match="too many to key its 6-character n-grams"):
        LinearArm(ngrams, np.ones(len(ngrams)), np.zeros((3, len(ngrams))), np.zeros(3), (1, 6))


def test_arrays_that_do_not_agree_are_refused_with_the_file_named(tmp_path):
    arm = _fitted()[0]
    np.savez(tmp_path / FILE, ngrams=arm.ngrams[:-1], idf=arm.idf, coef=arm.coef,
             intercept=arm.intercept)
    with pytest.raises(ValueError, match="linear.npz: the arrays' shapes do not agree"):
        LinearArm.load(tmp_path)


def test_a_route_without_rows_is_refused():
    with pytest.raises(ValueError, match="rows of every route"):
        LinearArm.fit(TEXTS[:6], np.array([0, 0, 0, 1, 1, 1]), 3)


def test_the_blend_is_the_tempered_softmax_of_the_mean_log_probability():
    network = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    linear = np.log(np.array([[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]))
    for temperature in (1.0, 1.7):
        mean = (np.log(network) + linear) / 2 / temperature
        expected = np.exp(mean) / np.exp(mean).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(blend(network, linear, temperature), expected, rtol=1e-6)
    # Two arms that agree give their own probabilities back at temperature 1; a higher one softens them.
    np.testing.assert_allclose(blend(network, np.log(network), 1.0), network, rtol=1e-6)
    assert blend(network, np.log(network), 2.0).max() < network.max()


def test_a_tempered_arm_gives_the_regressions_probabilities_re_tempered_and_keeps_its_file_format(tmp_path):
    """training.train folds the arm's own temperature into its coefficients: softmax(logits / T), same argmax."""
    arm, vectorizer, regression = _fitted()
    logits = regression.decision_function(vectorizer.transform(TEXTS))
    for temperature in (0.5, 2.0):
        tempered = arm.tempered(temperature)
        expected = logits / temperature
        expected = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.exp(tempered.log_probabilities(TEXTS)), expected, rtol=1e-6)
        assert (expected.argmax(axis=1) == regression.predict(vectorizer.transform(TEXTS))).all()
        # What training computes instead of reading the rows again: the same, since log-softmax ignores a shift.
        np.testing.assert_allclose(log_softmax(arm.log_probabilities(TEXTS) / temperature),
                                   tempered.log_probabilities(TEXTS), rtol=1e-9, atol=1e-12)
        tempered.save(tmp_path)
        np.testing.assert_allclose(LinearArm.load(tmp_path).log_probabilities(TEXTS),
                                   tempered.log_probabilities(TEXTS), rtol=1e-9)
    # Sharper below 1, flatter above.
    assert np.exp(arm.tempered(0.5).log_probabilities(TEXTS)).max(axis=1).mean() > \
        np.exp(arm.log_probabilities(TEXTS)).max(axis=1).mean() > \
        np.exp(arm.tempered(2.0).log_probabilities(TEXTS)).max(axis=1).mean()


def test_coverage_is_the_share_of_a_texts_wider_windows_the_vocabulary_knows():
    """Counted as scikit-learn's `char_wb` analyzer takes the windows (one list per text, repeats included)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    arm, _, _ = _fitted()
    vocabulary = set(arm.ngrams.tolist())
    windows = TfidfVectorizer(analyzer="char_wb", ngram_range=(COVERAGE_WIDTH, NGRAM_RANGE[1])).build_analyzer()
    texts = [*TEXTS, "Здравствуйте коллеги", "パスワード Здравствуйте", "😀 emoji \ud800 x", "a", "", "   "]
    expected = []
    for text in texts:
        grams = windows(text)
        expected.append(sum(gram in vocabulary for gram in grams) / len(grams) if grams else 1.0)
    np.testing.assert_allclose(arm.coverage(texts), expected, rtol=1e-12)
    log_probabilities, coverage = arm.read(texts)
    np.testing.assert_allclose(log_probabilities, arm.log_probabilities(texts))
    np.testing.assert_allclose(coverage, expected, rtol=1e-12)
    assert coverage[texts.index("Здравствуйте коллеги")] == 0.0 and coverage[len(TEXTS) - 1] > 0.5
    assert coverage[-1] == coverage[-2] == 1.0  # nothing to judge: other rules send an empty ticket to review
