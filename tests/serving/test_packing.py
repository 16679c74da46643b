"""serving.packing: every ticket lands whole and contiguous in one row, marked where it starts and ends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serving.packing import bucket, pack

LENGTHS = (8, 16, 32, 64, 120)
ROWS = (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 96, 128)


def sequences_of(lengths: list[int], width: int = 120, seed: int = 0) -> np.ndarray:
    """Left-aligned token ids (never 0 inside a ticket), 0-padded to `width`."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), width), dtype=np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 5000, n)
    return ids


def unpack(packed, lengths: list[int]) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Read each ticket back from its end index and length."""
    flat = np.concatenate([[0], packed.ids.ravel()])
    return [flat[end - n + 1 : end + 1] if n else np.array([], dtype=np.int32)
            for end, n in zip(packed.ends, lengths, strict=False)]


def test_bucket_picks_the_smallest_size_that_holds_n():
    assert [bucket(n, LENGTHS) for n in (1, 8, 9, 33, 120, 500)] == [8, 8, 16, 64, 120, 120]


@pytest.mark.parametrize("seed", range(5))
def test_every_ticket_is_whole_contiguous_and_marked(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in np.minimum(rng.geometric(1 / 30, 128), 120)]
    lengths[3] = 0  # an empty ticket (nothing left after clean-up)
    ids = sequences_of(lengths, seed=seed)
    packed = pack(ids, np.array(lengths), LENGTHS, ROWS, slots=128)

    assert packed.ids.shape[0] in ROWS and packed.ids.shape[1] in LENGTHS
    assert packed.ends.shape == (128,) and packed.ends[3] == 0
    for i, tokens in enumerate(unpack(packed, lengths)):
        np.testing.assert_array_equal(tokens, ids[i, : lengths[i]])
    # A start mark sits on each ticket's first token and nowhere else.
    firsts = sorted(int(end) - n + 1 - 1 for end, n in zip(packed.ends, lengths, strict=False) if n)
    assert sorted(np.flatnonzero(packed.starts.ravel()).tolist()) == firsts
    # Every token slot holds at most one ticket's token: the packed ids hold exactly the batch's tokens.
    assert int((packed.ids != 0).sum()) == sum(lengths)


def test_packing_fills_rows_instead_of_padding_every_ticket():
    lengths = [10, 20, 30, 40, 50, 60, 70, 5, 5, 5] * 12
    packed = pack(sequences_of(lengths), np.array(lengths), LENGTHS, ROWS, slots=128)
    assert packed.ids.shape[1] == 120
    needed = -(-sum(lengths) // 120)  # rows if tickets could be split
    used = int((packed.ids != 0).any(axis=1).sum())
    assert used <= needed * 1.25 + 1, (used, needed)


def test_reverse_lays_each_ticket_out_backwards_in_the_same_places():
    lengths = [3, 7, 1, 12]
    ids = sequences_of(lengths)
    forward = pack(ids, np.array(lengths), LENGTHS, ROWS, slots=8)
    backward = pack(ids, np.array(lengths), LENGTHS, ROWS, slots=8, reverse=True)
    np.testing.assert_array_equal(forward.ends, backward.ends)
    np.testing.assert_array_equal(forward.starts, backward.starts)
    np.testing.assert_array_equal(forward.ids, backward.ids)
    assert forward.reversed_ids is None and backward.reversed_ids is not None
    for i, tokens in enumerate(unpack(replace(backward, ids=backward.reversed_ids), lengths)):
        np.testing.assert_array_equal(tokens, ids[i, : lengths[i]][::-1])


def test_a_single_short_ticket_is_one_short_row():
    packed = pack(sequences_of([5]), np.array([5]), LENGTHS, ROWS, slots=128)
    assert packed.ids.shape == (1, 8) and packed.ends[0] == 5


def test_shapes_are_one_short_row_or_full_length_rows():
    """Few shapes: a worker compiles every one of them at start (serving.predictor)."""
    assert pack(sequences_of([30, 30]), np.array([30, 30]), LENGTHS, ROWS, slots=8).ids.shape == (1, 64)
    assert pack(sequences_of([100, 100]), np.array([100, 100]), LENGTHS, ROWS, slots=8).ids.shape == (2, 120)
    assert pack(sequences_of([60, 61, 9]), np.array([60, 61, 9]), LENGTHS, ROWS, slots=8).ids.shape == (2, 120)


def test_all_empty_and_too_many():
    packed = pack(np.zeros((2, 120), dtype=np.int32), np.array([0, 0]), LENGTHS, ROWS, slots=4)
    assert packed.ids.shape == (1, 8) and not packed.ends.any()
    with pytest.raises(ValueError, match="do not fit"):
        pack(sequences_of([1] * 5), np.array([1] * 5), LENGTHS, ROWS, slots=4)
