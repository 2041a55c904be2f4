"""Self- and cross-attention: the plain math (:func:`eager_attention`), the fused path, the one mask rule.

Masks follow one rule in all three backends: build a boolean *allowed* mask
(padding, AND causal in decoder mode), then turn it into an additive
``attention_bias`` of ``finfo(dtype).min`` once per forward
(:func:`make_attention_bias`). A row with no allowed key then softmaxes
uniformly instead of producing NaN (min + min would overflow to -inf).
Relative positions are folded into that bias by each self-attention layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bert_core.config import BertConfig

from .unpad import PackedBatch, varlen_attention

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "make_attention_bias",
    "eager_attention",
    "fused_attention",
    "BertSelfAttention",
    "BertSelfOutput",
    "BertAttention",
]

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")

KeyValue = tuple[torch.Tensor, torch.Tensor]


def make_attention_bias(
    attention_mask: torch.Tensor | None,
    *,
    query_length: int,
    key_length: int,
    dtype: torch.dtype,
    causal: bool = False,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """The additive bias for a public ``attention_mask`` (1 = real token).

    Args:
        attention_mask: ``(batch, key_length)`` or ``(batch, query_length, key_length)``;
            None means every key is real.
        query_length / key_length: key length includes the cached tokens; queries are
            the last ``query_length`` positions.
        dtype: the compute dtype (the bias is ``finfo(dtype).min`` where masked).
        causal: also forbid keys after each query (decoder mode).
        device: where the bias lives; defaults to ``attention_mask``'s device (else the CPU).

    Returns:
        ``(batch or 1, 1, query_length, key_length)`` bias, or None when nothing is masked.
    """
    if attention_mask is None and not causal:
        return None
    if device is None:
        device = attention_mask.device if attention_mask is not None else torch.device("cpu")
    allowed = torch.ones((1, 1, 1, key_length), dtype=torch.bool, device=device)
    if attention_mask is not None:
        mask = attention_mask.to(device=device, dtype=torch.bool)
        allowed = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None, :, :]  # (batch, 1, q|1, k_len)
    if causal:
        past = key_length - query_length
        q_pos = torch.arange(past, key_length, device=device)[:, None]  # (q_len, 1)
        k_pos = torch.arange(key_length, device=device)[None, :]  # (1, k_len)
        allowed = allowed & (k_pos <= q_pos)
    allowed = allowed.expand(allowed.shape[0], 1, query_length, key_length)
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def eager_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_bias: torch.Tensor | None = None,
    head_mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    scaling: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention, spelled out.

    ``probs = dropout(softmax(query @ key^T * scaling + attention_bias)) * head_mask``;
    ``context = probs @ value``.

    Args:
        query: ``(batch, heads, q_len, head_dim)``.
        key / value: ``(batch, heads, k_len, head_dim)``.
        attention_bias: additive, broadcastable to ``(batch, heads, q_len, k_len)``.
        head_mask: multiplies the probabilities, broadcastable to the same shape
            (``(1, heads, 1, 1)`` per layer), as ``transformers`` 4.x does.
        dropout: probability applied to the attention probabilities when ``training``.
        scaling: defaults to ``head_dim ** -0.5``.

    Returns:
        ``context (batch, heads, q_len, head_dim)`` and ``probs (batch, heads, q_len, k_len)``.
    """
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (batch, heads, q_len, k_len)
    if attention_bias is not None:
        # In float16 the minimum (-65504) has an ulp of 32, so a negative score plus the mask bias can
        # overflow to -inf, and a fully padded row would softmax to NaN. Clamping keeps it uniform.
        scores = (scores + attention_bias).clamp_min(torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    probs = F.dropout(probs, p=dropout, training=training)
    if head_mask is not None:
        probs = probs * head_mask
    return torch.matmul(probs, value), probs


def fused_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_bias: torch.Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    scaling: float | None = None,
) -> torch.Tensor:
    """The fused kernel, torch SDPA (``F.scaled_dot_product_attention``); the same math as :func:`eager_attention`.

    It returns no probabilities and takes no head mask; callers needing either use the eager path.
    Attention dropout runs inside the kernel when ``training``.
    Shapes as in :func:`eager_attention`; returns the context only.
    """
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_bias, dropout_p=dropout if training else 0.0, scale=scaling
    )


class BertSelfAttention(nn.Module):
    """Multi-head attention projections; self-attention, or cross-attention over ``encoder_hidden_states``.

    With ``position_embedding_type`` ``relative_key`` / ``relative_key_query`` a
    ``distance_embedding`` of shape ``(2 * max_position_embeddings - 1, head_dim)``
    adds ``q . r(i-j)`` (and ``k . r(i-j)``) to the scores before scaling, as in
    ``transformers`` 4.x (Shaw et al. 2018; Huang et al. 2020); cross-attention
    has no relative positions there, and none here.
    """

    def __init__(self, config: BertConfig, is_cross_attention: bool = False) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        # Cross-attention always uses absolute positions (no distance_embedding), as transformers 4.x built it.
        self.position_embedding_type = "absolute" if is_cross_attention else config.position_embedding_type
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.max_position_embeddings = config.max_position_embeddings
            self.distance_embedding = nn.Embedding(2 * config.max_position_embeddings - 1, self.attention_head_size)
        self.is_cross_attention = is_cross_attention
        self.attn_implementation = "sdpa"

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, hidden) -> (batch, heads, seq, head_dim)``."""
        batch, seq = x.shape[:2]
        x = x.view(batch, seq, self.num_attention_heads, self.attention_head_size)  # (batch, seq, heads, head_dim)
        return x.transpose(1, 2)  # (batch, heads, seq, head_dim)

    def relative_position_scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """The relative-position scores ``q . r(i-j)`` (``+ k . r(i-j)`` for ``relative_key_query``), unscaled.

        Args:
            query: ``(batch, heads, q_len, head_dim)``, the last ``q_len`` of the ``k_len`` positions.
            key: ``(batch, heads, k_len, head_dim)``, cache included.

        Returns:
            ``(batch, heads, q_len, k_len)``; the caller adds ``scores * scaling`` to the attention bias.
        """
        q_len, k_len = query.shape[2], key.shape[2]
        # Queries are the last q_len of the k_len positions (the rest is cache). With no cache this is
        # arange(q_len), exactly transformers 4.x, whose cached branch handles only q_len == 1.
        q_pos = torch.arange(k_len - q_len, k_len, device=query.device)[:, None]  # (q_len, 1)
        k_pos = torch.arange(k_len, device=query.device)[None, :]  # (1, k_len)
        distance = self.distance_embedding(q_pos - k_pos + self.max_position_embeddings - 1)  # (q_len, k_len, head_dim)
        distance = distance.to(query.dtype)
        scores = torch.einsum("bhld,lrd->bhlr", query, distance)  # (batch, heads, q_len, k_len)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + torch.einsum("bhrd,lrd->bhlr", key, distance)
        return scores

    def _attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_bias: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fold relative positions into the bias, then run the eager or the fused math.

        Shapes as :func:`eager_attention`; returns ``(context (batch, heads, q_len, head_dim), probs or None)``.
        """
        scaling = self.attention_head_size**-0.5
        if self.position_embedding_type != "absolute":
            relative = self.relative_position_scores(query, key) * scaling
            if attention_bias is None:
                attention_bias = relative
            else:
                # Keep masked entries at the dtype minimum: in float16 a negative score could push them
                # to -inf (see eager_attention), and a fused kernel would turn the padded row to NaN.
                attention_bias = (attention_bias + relative).clamp_min(torch.finfo(attention_bias.dtype).min)
        dropout = self.dropout.p
        if output_attentions or head_mask is not None or self.attn_implementation == "eager":
            context, probs = eager_attention(query, key, value, attention_bias, head_mask, dropout,
                                             self.training, scaling)
            return context, (probs if output_attentions else None)
        return fused_attention(query, key, value, attention_bias, dropout, self.training, scaling), None

    def _attend_packed(self, hidden_states: torch.Tensor, packed: PackedBatch) -> tuple[torch.Tensor, None, KeyValue]:
        """Self-attention on ``(1, tokens, hidden)`` real tokens, each sequence alone (:func:`varlen_attention`)."""
        tokens = hidden_states.shape[1]

        def heads(linear: nn.Linear) -> torch.Tensor:
            x = linear(hidden_states)[0].view(tokens, self.num_attention_heads, self.attention_head_size)
            return x.transpose(0, 1)  # (heads, tokens, head_dim)

        query, key, value = heads(self.query), heads(self.key), heads(self.value)
        # No mask: each slice holds one sequence's real tokens and nothing else.
        context = varlen_attention(query, key, value, packed.offsets,
                                   lambda q, k, v: self._attend(q, k, v, None, None, False)[0])  # (heads, tokens, d)
        context = context.transpose(0, 1).reshape(1, tokens, self.all_head_size)  # (1, tokens, hidden)
        return context, None, (key[None], value[None])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        past_key_value: KeyValue | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, KeyValue]:
        """Attend.

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias: additive ``(batch, 1, q_len, k_len)`` (see :func:`make_attention_bias`), or a
                :class:`~bert_torch.unpad.PackedBatch` when ``hidden_states`` holds only the real tokens
                ``(1, tokens, hidden)`` (self-attention only; the context then comes back packed the same
                way, and head_mask / output_attentions / a cache are not used).
            head_mask: ``(1, heads, 1, 1)`` multiplier of the probabilities, or None.
            encoder_hidden_states: ``(batch, enc_len, hidden)`` for cross-attention.
            past_key_value: cached ``(key, value)``, each ``(batch, heads, past, head_dim)``;
                for cross-attention they replace the projections of the encoder states.
            output_attentions: return the probabilities (uses the eager path).

        Returns:
            ``context (batch, q_len, hidden)``, ``probs (batch, heads, q_len, k_len)`` or None,
            and the ``(key, value)`` to cache.
        """
        if isinstance(attention_bias, PackedBatch):
            return self._attend_packed(hidden_states, attention_bias)
        query = self._heads(self.query(hidden_states))  # (batch, heads, q_len, head_dim)
        if self.is_cross_attention and past_key_value is not None:
            key, value = past_key_value
        else:
            source = encoder_hidden_states if self.is_cross_attention else hidden_states
            key = self._heads(self.key(source))  # (batch, heads, k_len, head_dim)
            value = self._heads(self.value(source))
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)  # (batch, heads, past + q_len, head_dim)
                value = torch.cat([past_key_value[1], value], dim=2)
        context, probs = self._attend(query, key, value, attention_bias, head_mask, output_attentions)
        batch, q_len = query.shape[0], query.shape[2]
        context = context.transpose(1, 2).reshape(batch, q_len, self.all_head_size)  # (batch, q_len, hidden)
        return context, probs, (key, value)


class BertSelfOutput(nn.Module):
    """Projection of the attention context, dropout, residual add and LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)``, all ``(batch, seq, hidden)``."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    """An attention block: ``self`` (the projections and scores) and ``output`` (projection + residual)."""

    def __init__(self, config: BertConfig, is_cross_attention: bool = False) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, is_cross_attention=is_cross_attention)
        self.output = BertSelfOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        past_key_value: KeyValue | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, KeyValue]:
        """Arguments as :meth:`BertSelfAttention.forward`.

        Returns:
            ``(output (batch, q_len, hidden), probs, (key, value))``.
        """
        context, probs, present = self.self(hidden_states, attention_bias, head_mask, encoder_hidden_states,
                                            past_key_value, output_attentions)
        return self.output(context, hidden_states), probs, present
