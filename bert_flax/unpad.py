"""No compute on padding: the real tokens of a right-padded batch laid end to end, under static shapes.

Every dense layer (Q/K/V, attention output, feed-forward) and LayerNorm acts on
each token alone, so it runs on ``(1, tokens, hidden)`` holding only the real
tokens of the batch (:meth:`PackedBatch.pack`, once after the embeddings).
Self-attention computes query, key and value packed, puts them back in
``(batch, seq, ...)`` and runs the ordinary masked attention there (its FLOPs
grow with ``seq ** 2`` per row and are a small share of BERT's; they stay
padded), then gathers the context back. The last layer's output is unpacked
once, with zeros at the padded positions. Both directions are gathers (XLA's
gathers are fast where its scatters are loops). On a batch of mixed lengths (~45%
padding) that skips most of the padding's FLOPs.

XLA compiles one program per shape, so the token count is rounded up to a
**token bucket** (:func:`token_bucket`): a multiple of a sixteenth of the
padded batch, rounded to 8. The slots past the real tokens hold an
out-of-range index: they gather zeros and no position reads them back. A stream of batches of one ``(batch, seq)`` shape then compiles at
most 15 packed programs (one per bucket), and the rounding wastes at most
``batch * seq / 16`` tokens of compute (plus 7).

The wrapper decides on the host (:func:`packing_indices`, from
:class:`bert_core.unpad.UnpadPlan`) and the jitted apply receives the indices;
see :meth:`bert_flax.FlaxBertPreTrainedModel.set_unpadding` for when.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import struct

from bert_core.unpad import MIN_PADDING_FRACTION, UnpadPlan, padding_read, reads_padding

__all__ = ["PackedBatch", "MIN_PADDING_FRACTION", "TOKEN_BUCKETS", "token_bucket", "packing_indices",
           "padding_read", "reads_padding"]

#: A packed token count rounds up to a multiple of ``batch * seq / TOKEN_BUCKETS`` (see the module docstring).
TOKEN_BUCKETS = 16


def token_bucket(tokens: int, batch: int, seq: int) -> int:
    """The packed length for ``tokens`` real tokens of a ``(batch, seq)`` batch: the next multiple of
    ``ceil(batch * seq / TOKEN_BUCKETS)`` rounded up to 8 (a whole vector register of float32)."""
    step = -(-math.ceil(batch * seq / TOKEN_BUCKETS) // 8) * 8
    return -(-tokens // step) * step


def packing_indices(attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Gather indices both ways for a 2-D numpy mask (1 = real), or ``None`` where
    :meth:`UnpadPlan.from_mask` declines or the bucket would not be smaller than the batch.

    Returns:
        ``indices``: ``(bucket,)`` int32 flat positions (``row * seq + column``) of the real tokens, then
        ``batch * seq`` (out of range) up to :func:`token_bucket`; ``slots``: ``(batch * seq,)`` int32, each
        position's slot in the packed layout, ``bucket`` (out of range) at padding.
    """
    plan = UnpadPlan.from_mask(attention_mask)
    if plan is None:
        return None
    size = plan.batch * plan.seq
    bucket = token_bucket(plan.tokens, plan.batch, plan.seq)
    if bucket >= size:
        return None
    indices = np.full(bucket, size, dtype=np.int32)
    indices[:plan.tokens] = plan.indices
    slots = np.full(size, bucket, dtype=np.int32)
    slots[plan.indices] = np.arange(plan.tokens, dtype=np.int32)
    return indices, slots


@struct.dataclass
class PackedBatch:
    """Where the real tokens of a ``(batch, seq)`` batch sit in the packed ``(1, bucket, ...)`` layout.

    Passed down the encoder in place of the attention bias: self-attention
    recognises it, attends in the padded layout with :attr:`attention_bias`,
    and packs its context again.

    Attributes:
        indices: ``(bucket,)`` flat positions of the real tokens, then ``batch * seq`` (an empty slot).
        slots: ``(batch * seq,)`` each position's slot in the packed layout, ``bucket`` at padding.
        attention_bias: the padded batch's additive bias ``(batch, 1, seq, seq)``.
        batch / seq: the padded shape (static).
    """

    indices: jnp.ndarray
    slots: jnp.ndarray
    attention_bias: jnp.ndarray
    batch: int = struct.field(pytree_node=False)
    seq: int = struct.field(pytree_node=False)

    def pack(self, x):
        """``(batch, seq, ...)`` -> ``(1, bucket, ...)``: the real tokens, then zeros."""
        flat = x.reshape(self.batch * self.seq, *x.shape[2:])
        return jnp.take(flat, self.indices, axis=0, mode="fill", fill_value=0, indices_are_sorted=True)[None]

    def unpack(self, x):
        """``(1, bucket, ...)`` -> ``(batch, seq, ...)``, zeros at padded positions."""
        flat = jnp.take(x[0], self.slots, axis=0, mode="fill", fill_value=0)
        return flat.reshape(self.batch, self.seq, *x.shape[2:])
