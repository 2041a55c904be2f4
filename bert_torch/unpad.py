"""No compute on padding: the real tokens of a right-padded batch laid end to end.

Every dense layer (Q/K/V, attention output, feed-forward) and LayerNorm acts
on each token alone, so it runs on ``(1, tokens, hidden)`` holding only the
real tokens of the batch. Attention runs per sequence on its own slice of the
packed tokens (:func:`varlen_attention`), so it needs no
mask and never touches padding either. The batch is packed once after the
embeddings and unpacked once after the last layer. On a batch of mixed
lengths (~45% padding) that skips ~45% of the FLOPs. Outputs at padded
positions come back as zeros; real positions equal the padded path to float
rounding.

``BertModel`` packs by default for inference on CPU (see
:meth:`~bert_torch.base.BertPreTrainedModel.set_unpadding` for when and how to
turn it off); :func:`padding_read` marks a call whose result reads the padded
positions (a loss over the whole sequence), which then keeps the padded path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bert_core.unpad import MIN_PADDING_FRACTION, UnpadPlan, padding_read, reads_padding

__all__ = ["PackedBatch", "MIN_PADDING_FRACTION", "varlen_attention", "padding_read", "reads_padding"]


@dataclass(frozen=True)
class PackedBatch:
    """Where the real tokens of a right-padded ``(batch, seq)`` batch sit.

    Passed down the encoder in place of the attention bias: self-attention
    recognises it and attends within each sequence's run of packed tokens.
    """

    indices: torch.Tensor  # (tokens,) flat positions of the real tokens in batch * seq
    batch: int
    seq: int
    offsets: tuple[int, ...]  # (batch + 1,) row i's tokens are packed[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "PackedBatch | None":
        """A packing for ``attention_mask`` (1 = real), or ``None`` when it would not pay off or not be exact
        (see :meth:`bert_core.unpad.UnpadPlan.from_mask`)."""
        if attention_mask.dim() != 2:
            return None  # a per-query (batch, q_len, k_len) mask, e.g. packed sequences: no padding to skip
        plan = UnpadPlan.from_mask(attention_mask.detach().cpu().numpy())
        if plan is None:
            return None
        indices = torch.from_numpy(plan.indices).to(attention_mask.device)
        return cls(indices, plan.batch, plan.seq, plan.offsets)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, ...)`` -> ``(1, tokens, ...)``: the real tokens only."""
        flat = x.reshape(self.batch * self.seq, *x.shape[2:])
        return flat.index_select(0, self.indices).unsqueeze(0)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, tokens, ...)`` -> ``(batch, seq, ...)``, zeros at padded positions."""
        flat = x.new_zeros(self.batch * self.seq, *x.shape[2:]).index_copy(0, self.indices, x[0])
        return flat.view(self.batch, self.seq, *x.shape[2:])


def varlen_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    offsets: tuple[int, ...],
    attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Attention over packed sequences: run ``offsets[i]:offsets[i + 1]`` attends to itself only.

    The variable-length form of attention, with no mask and no padding: each
    sequence's slice goes through ``attend`` (the fused or the eager math with
    the caller's options) as a batch of one.

    Args:
        query / key / value: ``(heads, tokens, head_dim)``, the real tokens of every sequence end to end.
        offsets: ``(sequences + 1,)`` python ints, ``0 ... tokens``.
        attend: ``(q, k, v)`` each ``(1, heads, length, head_dim)`` -> context of the same shape.

    Returns:
        ``context (heads, tokens, head_dim)``.
    """
    contexts = [
        attend(query[None, :, start:end], key[None, :, start:end], value[None, :, start:end])[0]  # (heads, len, d)
        for start, end in zip(offsets[:-1], offsets[1:])
    ]
    return torch.cat(contexts, dim=1)  # (heads, tokens, head_dim)
