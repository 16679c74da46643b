"""Pack a batch of token-id sequences into a few rows, so a recurrent layer wastes no steps on padding.

A batch of tickets is ragged: most are 10–40 tokens, a few e-mails run to the cap. Padding every ticket to the
longest makes the LSTM run mostly over padding; bucketing by length still pads whole buckets of rows. Packing
instead lays several tickets end to end in one row (first-fit decreasing), marks where each ticket starts (the
recurrent state is reset there) and where it ends (its final state is read there). The LSTM then runs about as many
row-steps as the batch has tokens. Pure numpy, no TensorFlow: tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packed:
    """Rows of tickets laid end to end.

    ids:     [rows, length] token ids, 0 after the last ticket of a row.
    starts:  [rows, length] 1.0 where a ticket's first token sits (the state is reset there), else 0.0.
    ends:    [slots] index of each ticket's last token in `1 + rows·length` flattened positions; 0 (a zero state)
             for a ticket with no tokens, and for the unused slots after the last ticket.
    reversed_ids: with `reverse`, the same rows with each ticket's tokens backwards (for the backward half of a
             bidirectional layer, which shares starts and ends); else None.
    """

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    reversed_ids: np.ndarray | None = None


def bucket(n: int, sizes: tuple[int, ...]) -> int:
    """The smallest size that holds n (the largest if none does): a few shapes, each compiled once by XLA."""
    for size in sizes:
        if size >= n:
            return size
    return sizes[-1]


def pack(
    sequences: np.ndarray,
    lengths: np.ndarray,
    length_sizes: tuple[int, ...],
    row_sizes: tuple[int, ...],
    slots: int,
    reverse: bool = False,
) -> Packed:
    """Pack `sequences` ([n, width] ids, each left-aligned and `lengths[i]` long) into rows.

    Rows are the largest length size long, except when the whole batch fits in one row: then that row is cut to
    the bucket of its tokens (a single ticket's call stays short). So a call has one of len(length_sizes) one-row
    shapes or len(row_sizes) - 1 full-length ones: few enough for a worker to compile them all at start.
    `reverse` also lays each ticket's tokens out backwards in `reversed_ids`, placed by the same packing.
    `slots` ≥ n fixes the length of `ends`, so the read-out has one shape too.
    """
    n = len(lengths)
    if n > slots:
        raise ValueError(f"{n} sequences do not fit {slots} slots")
    capacity = length_sizes[-1]
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), min(capacity, sequences.shape[1]))

    # First-fit decreasing: longest first, each into the first row with room for it.
    order = np.argsort(-lengths, kind="stable")
    room: list[int] = []
    row_of = np.zeros(n, dtype=np.int64)
    offset_of = np.zeros(n, dtype=np.int64)
    for i in order:
        size = int(lengths[i])
        if size == 0:
            break  # the rest are empty too: they keep the zero state
        row = next((r for r, free in enumerate(room) if free >= size), len(room))
        if row == len(room):
            room.append(capacity)
        row_of[i], offset_of[i] = row, capacity - room[row]
        room[row] -= size

    row_length = capacity if len(room) > 1 else bucket(capacity - room[0] if room else 1, length_sizes)
    rows = bucket(max(1, len(room)), row_sizes)
    ids = np.zeros((rows, row_length), dtype=np.int32)
    starts = np.zeros((rows, row_length), dtype=np.float32)
    reversed_ids = np.zeros_like(ids) if reverse else None
    ends = np.zeros(slots, dtype=np.int32)
    for i in np.flatnonzero(lengths):
        row, offset, size = row_of[i], offset_of[i], lengths[i]
        tokens = sequences[i, :size]
        ids[row, offset : offset + size] = tokens
        if reversed_ids is not None:
            reversed_ids[row, offset : offset + size] = tokens[::-1]
        starts[row, offset] = 1.0
        ends[i] = 1 + row * row_length + offset + size - 1
    return Packed(ids=ids, starts=starts, ends=ends, reversed_ids=reversed_ids)
