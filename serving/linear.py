"""The linear arm: a logistic regression over character n-grams of the ticket's raw text, averaged with the network.

The network (an LSTM over MeCab tokens with its own n-gram arm) and a linear model over character n-grams make
different mistakes on writers neither has read: averaged, they beat both (docs/quality.md measures each arm). The
linear model reads the text as the customer wrote it (the reference baseline's features, `char_wb` n-grams with
sublinear tf-idf, L2-normalised, but 1–4 characters wide where the baseline stops at 3: a four-character window
holds most of a Japanese word, and on the writer splits it gained about a point alone and half a point averaged,
docs/quality.md); on the MeCab-prepared text, which drops symbols and zeroes digits, it was a point worse on
another writer's tickets.

A version stores it as `linear.npz` beside serving.npz: the n-grams (in column order), their idf, the
regression's coefficients and intercepts (divided by the arm's own temperature, fitted on the validation rows, in
versions trained since 2026-12-05), in the route order of meta.json's labels, and the n-gram widths (a
file without them was fitted with the baseline's 1–3). No pickle: the arrays are read
with allow_pickle=False, and the features are rebuilt from them in numpy (`_entries`), so what a worker computes
does not depend on scikit-learn's private state. A version without the file (trained
before the arm existed, or with ModelConfig.linear off) is served by its network alone.

No TensorFlow here: training.train fits it, serving.predictor serves it. scikit-learn is imported with the module,
so a worker's pool parent imports it before the fork (worker/classify_app.py), as it does TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

FILE = "linear.npz"
# The reference baseline's settings (../shared/BASELINE.md), with windows one character wider (docs/quality.md).
ANALYZER, NGRAM_RANGE, C = "char_wb", (1, 4), 10.0
LEGACY_NGRAM_RANGE = (1, 3)  # what a linear.npz without `ngram_range` was fitted with
KEY_BITS = 63  # an n-gram's key is an int64: its characters' ids, `_id_bits` bits each
# Coverage counts the windows this wide or wider: one- and two-character windows are nearly all known in any text.
COVERAGE_WIDTH = 3


@dataclass(frozen=True)
class LinearArm:
    ngrams: np.ndarray  # [features] str, in column order (numpy: 16 bytes an n-gram of up to 4, not a str object)
    idf: np.ndarray  # [features]
    coef: np.ndarray  # [routes, features]
    intercept: np.ndarray  # [routes]
    ngram_range: tuple[int, int] = LEGACY_NGRAM_RANGE

    def __post_init__(self) -> None:
        self._id_bits  # noqa: B018 - refuse, when made, an arm whose n-grams cannot be keyed

    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, routes: int, sample_weight: np.ndarray | None = None
            ) -> LinearArm:
        """Fit on raw texts and route indices (0..routes-1); routes balanced as the baseline balances them, times
        each row's own weight (an agent's correction may count more than a corpus row)."""
        vectorizer = TfidfVectorizer(analyzer=ANALYZER, ngram_range=NGRAM_RANGE, sublinear_tf=True)
        features = vectorizer.fit_transform(list(texts))
        model = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        model.fit(features, labels, sample_weight=sample_weight)
        if list(model.classes_) != list(range(routes)):
            raise ValueError(f"the linear arm needs rows of every route; got route indices {list(model.classes_)}")
        vocabulary = vectorizer.vocabulary_
        ngrams = np.array(sorted(vocabulary, key=vocabulary.__getitem__), dtype=str)
        return cls(ngrams, vectorizer.idf_.astype(np.float64), model.coef_.astype(np.float64),
                   model.intercept_.astype(np.float64), NGRAM_RANGE)

    def tempered(self, temperature: float) -> LinearArm:
        """The same arm with its logits divided by `temperature`: calibrated probabilities, the same argmax
        (training.train folds the arm's own fitted temperature in, as it does the network's into its head)."""
        return replace(self, coef=self.coef / temperature, intercept=self.intercept / temperature)

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """[n, features]: what the fitted TfidfVectorizer computes (tests hold them equal)."""
        rows, columns, values, _ = self._entries(texts)
        return sparse.csr_matrix((values, (rows, columns)), shape=(len(texts), len(self.ngrams)))

    def _entries(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The non-zero features as (row, column, value): sublinear tf · idf, L2-normalised per row; and each text's
        coverage (`coverage`).

        scikit-learn's `char_wb` analyzer builds every n-gram as a Python string and looks it up in a dict (~0.3 ms
        a ticket), and its sparse helpers validate their input on every call (~1 ms a batch); here each character
        becomes its id in the vocabulary's alphabet (0 when no known n-gram holds it), each n-gram the integer made
        of its characters' ids, looked up by binary search in the vocabulary's sorted keys, all in numpy. `char_wb`:
        lower-case, split on whitespace, pad each word with one space on both sides, and take every window of
        `ngram_range` characters inside a padded word (a padded word has at least three characters, so
        scikit-learn's special case for a word shorter than the narrowest window never arises)."""
        padded = [[f" {word} " for word in text.lower().split()] for text in texts]
        words = [word for words in padded for word in words]
        if not words:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.ones(len(texts))
        lengths = np.fromiter((len(word) for word in words), dtype=np.int64, count=len(words))
        doc_of_word = np.repeat(np.arange(len(texts)), [len(words) for words in padded])
        ids = self._character_ids(_code_points("".join(words)))
        word_of = np.repeat(np.arange(len(words)), lengths)
        keys, order = self._sorted_keys
        bits = self._id_bits
        docs, columns = [], []
        windows, known_windows = np.zeros(len(texts)), np.zeros(len(texts))
        for width in range(self.ngram_range[0], self.ngram_range[1] + 1):
            count = len(ids) - width + 1
            if count <= 0:
                continue
            inside = word_of[:count] == word_of[width - 1 : width - 1 + count]  # the window stays in one word
            if width >= COVERAGE_WIDTH:
                windows += np.bincount(doc_of_word[word_of[:count][inside]], minlength=len(texts))
            key = ids[:count]
            known = key > 0
            for k in range(1, width):
                key = (key << bits) | ids[k : k + count]
                known &= ids[k : k + count] > 0
            inside &= known  # a character no n-gram holds: the window is in no n-gram either
            key, owner = key[inside], doc_of_word[word_of[:count][inside]]
            slot = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            found = keys[slot] == key  # n-grams outside the vocabulary count for nothing, as in scikit-learn
            docs.append(owner[found])
            columns.append(order[slot[found]])
            if width >= COVERAGE_WIDTH:
                known_windows += np.bincount(owner[found], minlength=len(texts))
        width = len(self.ngrams)
        unique, counts = np.unique(np.concatenate(docs) * width + np.concatenate(columns), return_counts=True)
        rows, cols = np.divmod(unique, width)
        values = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(texts)))
        coverage = np.divide(known_windows, windows, out=np.ones(len(texts)), where=windows > 0)
        return rows, cols, values / norms[rows], coverage

    @cached_property
    def _alphabet(self) -> np.ndarray:
        """The sorted code points of every character in the vocabulary's n-grams."""
        return np.unique(_code_points("".join(self.ngrams.tolist())))

    @cached_property
    def _id_bits(self) -> int:
        """Bits per character id (ids 1..alphabet size; 0 is "in no n-gram"), so that the widest n-gram's key fits
        an int64: 15 bits for up to 32,767 distinct characters at width 4."""
        bits = max(1, len(self._alphabet).bit_length())
        if bits * self.ngram_range[1] > KEY_BITS:
            raise ValueError(f"the linear arm's vocabulary has {len(self._alphabet)} distinct characters: too many to "
                             f"key its {self.ngram_range[1]}-character n-grams in 64 bits")
        return bits

    def _character_ids(self, code_points: np.ndarray) -> np.ndarray:
        alphabet = self._alphabet
        slot = np.minimum(np.searchsorted(alphabet, code_points), max(len(alphabet) - 1, 0))
        return np.where(alphabet[slot] == code_points, slot + 1, 0) if len(alphabet) else np.zeros_like(code_points)

    @cached_property
    def _sorted_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(the vocabulary's keys, sorted; the column of each): an n-gram's key is its characters' ids, the first
        in the highest bits. Ids start at 1, so n-grams of different widths never share a key."""
        grams = self.ngrams.tolist()
        lengths = np.fromiter((len(gram) for gram in grams), dtype=np.int64, count=len(grams))
        ids = self._character_ids(_code_points("".join(grams)))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        position = np.arange(len(ids)) - np.repeat(starts, lengths)  # of each character within its n-gram
        shifted = ids << (self._id_bits * (np.repeat(lengths, lengths) - 1 - position))
        keys = np.add.reduceat(shifted, starts) if len(grams) else np.zeros(0, np.int64)  # disjoint bits: sum = or
        order = np.argsort(keys)
        return keys[order], order

    def log_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """[n, routes] log-softmax of the regression's logits (its own probabilities, as predict_proba's)."""
        return self.read(texts)[0]

    def coverage(self, texts: Sequence[str]) -> np.ndarray:
        """[n] the share of each text's windows of COVERAGE_WIDTH characters or more (within a padded word, as the
        features take them) that are n-grams of the vocabulary; 1.0 for a text without any. Low coverage means a
        text unlike the rows the arm was fitted on: another business's words, another language."""
        return self.read(texts)[1]

    def read(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(log_probabilities, coverage) of the texts, from one pass over their windows."""
        if not len(texts):
            return np.zeros((0, len(self.intercept))), np.zeros(0)
        rows, columns, values, coverage = self._entries(texts)
        weighted = values[:, None] * self._kernel[columns]  # [entries, routes]
        logits = np.stack([np.bincount(rows, weights=weighted[:, r], minlength=len(texts))
                           for r in range(weighted.shape[1])], axis=1) + self.intercept
        return log_softmax(logits), coverage

    @cached_property
    def _kernel(self) -> np.ndarray:
        """[features, routes]: each entry's row of coefficients is then one contiguous read."""
        return np.ascontiguousarray(self.coef.T)

    def save(self, directory: Path) -> None:
        np.savez(directory / FILE, ngrams=self.ngrams, idf=self.idf, coef=self.coef,
                 intercept=self.intercept, ngram_range=np.array(self.ngram_range, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path) -> LinearArm | None:
        path = directory / FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as arrays:
            ngrams = arrays["ngrams"]
            ngram_range = (tuple(int(width) for width in arrays["ngram_range"]) if "ngram_range" in arrays.files
                           else LEGACY_NGRAM_RANGE)
            if len(ngram_range) != 2 or not 1 <= ngram_range[0] <= ngram_range[1]:
                raise ValueError(f"{path}: 'ngram_range' should be two widths, the narrowest first; got {ngram_range}")
            arm = cls(ngrams, arrays["idf"], arrays["coef"], arrays["intercept"], ngram_range)
        if ngrams.dtype.kind != "U" or ngrams.ndim != 1:
            raise ValueError(f"{path}: 'ngrams' should be a list of strings")
        if arm.coef.shape != (arm.intercept.shape[0], len(ngrams)) or arm.idf.shape != (len(ngrams),):
            raise ValueError(f"{path}: the arrays' shapes do not agree ({arm.coef.shape}, {arm.idf.shape}, "
                             f"{len(ngrams)} n-grams)")
        return arm


def _code_points(text: str) -> np.ndarray:
    """int64 [len(text)]: each character's code point (a lone surrogate is a character too)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def blend(network: np.ndarray, linear_log: np.ndarray, temperature: float) -> np.ndarray:
    """The served probabilities: softmax of the mean of the two arms' log-probabilities, divided by the blend's
    own temperature (fitted on held-out rows after averaging: two arms that agree would otherwise be over-sure)."""
    mean = (np.log(np.clip(network, 1e-12, 1.0)) + linear_log) / 2.0
    return np.exp(log_softmax(mean / temperature)).astype(np.float32)
