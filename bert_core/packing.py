"""Sequence packing: several variable-length sequences per row, so compiled backends skip padding.

Under ``jax.jit`` and XLA shapes are static, so a padded batch of mixed
lengths spends its dense-layer FLOPs on padding (~40% for sentences of 8..128
tokens). Packing lays sequences end to end in rows of one bucketed length
(first-fit decreasing), restarts ``position_ids`` at 0 for each sequence and
gives attention a block-diagonal mask, so each token attends to its own
sequence only. Every dense layer and LayerNorm acts per token, the positions
and token types are the same as in the padded layout, and attention sees the
same keys: the outputs at each token equal the padded path's up to float
rounding. Numpy only; every backend takes the 3-D ``attention_mask``.

    batch, packing = pack_sequences(features, row_length=128)
    outputs = model(**batch)                        # (rows, 128, ...)
    per_sequence = packing.unpack(outputs)          # [(len_i, ...), ...]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TriBertError

__all__ = ["PackingError", "Packing", "plan_packing", "pack_sequences", "block_diagonal_mask"]


class PackingError(TriBertError):
    """A sequence does not fit the row length, or packed outputs do not match the packing."""


@dataclass(frozen=True)
class Packing:
    """Where each sequence sits in the packed rows: the inverse map used to unpack outputs.

    Attributes:
        row / offset / length: ``(n,)`` row, first column and token count of sequence ``i``
            (in the caller's order).
        num_rows / row_length: the packed batch's shape ``(num_rows, row_length)``.
    """

    row: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    num_rows: int
    row_length: int

    def __len__(self) -> int:
        return len(self.length)

    def segment_ids(self) -> np.ndarray:
        """``(num_rows, row_length)``: 1, 2, ... for the sequences in each row (left to right), 0 for padding."""
        ids = np.zeros((self.num_rows, self.row_length), dtype=np.int64)
        count = np.zeros(self.num_rows, dtype=np.int64)
        for i in np.lexsort((self.offset, self.row)):  # row by row, left to right
            r, o, n = int(self.row[i]), int(self.offset[i]), int(self.length[i])
            count[r] += 1
            ids[r, o : o + n] = count[r]
        return ids

    def select_rows(self, start: int, stop: int, num_rows: int | None = None) -> tuple[np.ndarray, "Packing"]:
        """The sequences in rows ``start:stop`` and their packing as a batch of its own.

        Returns ``(indices into this packing's sequences, packing of those sequences)``;
        ``num_rows`` pads the new batch with empty rows (default ``stop - start``).
        """
        rows = stop - start if num_rows is None else num_rows
        if rows < stop - start:
            raise PackingError(f"num_rows={num_rows} cannot hold rows {start}:{stop}")
        indices = np.flatnonzero((self.row >= start) & (self.row < stop))
        return indices, Packing(self.row[indices] - start, self.offset[indices], self.length[indices], rows,
                                self.row_length)

    def token_index(self, i: int) -> np.ndarray:
        """Flat positions (into ``num_rows * row_length``) of sequence ``i``'s tokens, in order."""
        start = int(self.row[i]) * self.row_length + int(self.offset[i])
        return np.arange(start, start + int(self.length[i]))

    def unpack(self, values: np.ndarray) -> list[np.ndarray]:
        """Per-token outputs ``(num_rows, row_length, ...)`` -> one ``(length_i, ...)`` array per sequence."""
        values = np.asarray(values)
        if values.shape[:2] != (self.num_rows, self.row_length):
            raise PackingError(f"packed outputs have shape {values.shape}; the packing expects "
                               f"({self.num_rows}, {self.row_length}, ...)")
        return [values[r, o : o + n] for r, o, n in zip(self.row, self.offset, self.length)]


def plan_packing(lengths: Sequence[int], row_length: int, *, num_rows: int | None = None) -> Packing:
    """First-fit decreasing: place each sequence, longest first, in the first row with room.

    Args:
        lengths: token count of each sequence (each ``1 <= length <= row_length``).
        row_length: tokens per row.
        num_rows: pad the batch with empty rows up to this many (a compiled shape);
            ``None`` keeps the rows that were needed.

    Returns:
        The :class:`Packing`, in the order of ``lengths``.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size and (lengths.min() < 1 or lengths.max() > row_length):
        bad = int(np.flatnonzero((lengths < 1) | (lengths > row_length))[0])
        raise PackingError(f"sequence {bad} has {int(lengths[bad])} tokens; packing needs 1..row_length={row_length}")
    row = np.zeros(len(lengths), dtype=np.int64)
    offset = np.zeros(len(lengths), dtype=np.int64)
    used: list[int] = []  # tokens placed in each row so far
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        target = next((r for r, filled in enumerate(used) if filled + lengths[i] <= row_length), len(used))
        if target == len(used):
            used.append(0)
        row[i], offset[i] = target, used[target]
        used[target] += int(lengths[i])
    rows = len(used)
    if num_rows is not None:
        if num_rows < rows:
            raise PackingError(f"{len(lengths)} sequences need {rows} rows of {row_length}; num_rows={num_rows} is too few")
        rows = num_rows
    return Packing(row, offset, lengths, rows, row_length)


def block_diagonal_mask(segment_ids: np.ndarray) -> np.ndarray:
    """``(rows, seq)`` segment ids -> ``(rows, seq, seq)`` int mask: 1 where query and key share a segment.

    Padding (segment 0) attends to nothing; the backends' additive bias keeps such rows finite.
    """
    segment_ids = np.asarray(segment_ids)
    same = segment_ids[:, :, None] == segment_ids[:, None, :]  # (rows, q, k)
    return (same & (segment_ids[:, :, None] > 0)).astype(np.int64)


def pack_sequences(
    sequences: Sequence[Mapping[str, Sequence[int]]],
    row_length: int | None = None,
    *,
    packing: Packing | None = None,
    pad_token_id: int = 0,
    num_rows: int | None = None,
) -> tuple[dict[str, np.ndarray], Packing]:
    """Pack tokenized sequences into model inputs with a block-diagonal attention mask.

    Args:
        sequences: each a mapping with ``input_ids`` and optionally ``token_type_ids``
            (lists of ints, no padding).
        row_length: tokens per row (a shape bucket, so compilations stay few).
        packing: where to put them (from :func:`plan_packing`), instead of ``row_length``.
        pad_token_id: the id filling unused positions.
        num_rows: pad to this many rows (see :func:`plan_packing`).

    Returns:
        ``(batch, packing)``: ``batch`` holds int64 ``input_ids``, ``token_type_ids``,
        ``position_ids`` (restarting at 0 per sequence) and ``segment_ids``, each
        ``(rows, row_length)``, and ``attention_mask`` ``(rows, row_length, row_length)``.
    """
    lengths = [len(s["input_ids"]) for s in sequences]
    if packing is None:
        if row_length is None:
            raise PackingError("pack_sequences needs row_length or packing")
        packing = plan_packing(lengths, row_length, num_rows=num_rows)
    elif list(packing.length) != lengths:
        raise PackingError(f"the packing is for lengths {list(packing.length)[:8]}..., the sequences have {lengths[:8]}...")
    shape = (packing.num_rows, packing.row_length)
    input_ids = np.full(shape, pad_token_id, dtype=np.int64)
    token_type_ids = np.zeros(shape, dtype=np.int64)
    position_ids = np.zeros(shape, dtype=np.int64)
    for sequence, r, o, n in zip(sequences, packing.row, packing.offset, packing.length):
        input_ids[r, o : o + n] = sequence["input_ids"]
        if sequence.get("token_type_ids") is not None:
            token_type_ids[r, o : o + n] = sequence["token_type_ids"]
        position_ids[r, o : o + n] = np.arange(n)
    segment_ids = packing.segment_ids()
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "position_ids": position_ids,
             "segment_ids": segment_ids, "attention_mask": block_diagonal_mask(segment_ids)}  # fmt: skip
    return batch, packing
