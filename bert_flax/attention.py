"""Multi-head attention: the plain math, the fused path, and the BERT attention modules.

Masks follow one rule: a boolean *allowed* mask (padding AND causal, keys
including the cache) is converted ONCE into ``attention_bias = where(allowed, 0,
finfo(float32).min)`` and added to the float32 scores, so a fully padded row
softmaxes uniformly (finite) instead of overflowing to ``-inf``/NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from bert_core.config import BertConfig

from .embeddings import layer_norm, normal_init

__all__ = [
    "allowed_from_mask",
    "make_attention_bias",
    "eager_attention",
    "fused_attention",
    "FlaxBertSelfAttention",
    "FlaxBertSelfOutput",
    "FlaxBertAttention",
]


def allowed_from_mask(attention_mask):
    """The public ``attention_mask`` (1 = may attend) as a boolean mask broadcastable to the scores.

    Args:
        attention_mask: ``(batch, k_len)`` (padding), or ``(batch, q_len, k_len)`` for a
            per-query mask such as the block-diagonal mask of packed sequences
            (:mod:`bert_core.packing`).

    Returns:
        ``(batch, 1, 1, k_len)`` or ``(batch, 1, q_len, k_len)`` booleans.
    """
    allowed = attention_mask.astype(bool)
    if allowed.ndim == 3:
        return allowed[:, None, :, :]  # (batch, 1, q_len, k_len)
    return allowed[:, None, None, :]  # (batch, 1, 1, k_len)


def make_attention_bias(allowed, dtype=jnp.float32):
    """Boolean ``allowed`` mask -> additive bias: 0 where allowed, ``finfo(dtype).min`` elsewhere."""
    return jnp.where(allowed, jnp.zeros((), dtype), jnp.finfo(dtype).min).astype(dtype)


def eager_attention(query, key, value, attention_bias=None, head_mask=None, *, position_scores=None,
                    dropout_rate: float = 0.0, dropout_rng=None, deterministic: bool = True):
    """Scaled dot-product attention written out, as transformers 4.x computes it.

    ``probs = softmax((q k^T + position_scores) / sqrt(head_dim) + attention_bias)``, then
    dropout, then ``probs * head_mask``, then ``probs v``. Scores, bias and softmax
    are float32 whatever the compute dtype.

    Args:
        query: ``(batch, heads, q_len, head_dim)``.
        key, value: ``(batch, heads, k_len, head_dim)``.
        attention_bias: additive float32 bias broadcastable to ``(batch, heads, q_len, k_len)``.
        head_mask: multiplier broadcastable to the probabilities, e.g. ``(1, heads, 1, 1)``.
        position_scores: relative-position scores ``(batch, heads, q_len, k_len)`` added before scaling.
        dropout_rate / dropout_rng / deterministic: dropout on the probabilities.

    Returns:
        ``(context (batch, heads, q_len, head_dim), probs (batch, heads, q_len, k_len))``.
    """
    scale = query.shape[-1] ** -0.5
    scores = jnp.einsum("bhqd,bhkd->bhqk", query, key)  # (batch, heads, q_len, k_len)
    if position_scores is not None:
        scores = scores + position_scores
    scores = scores.astype(jnp.float32) * scale
    if attention_bias is not None:
        scores = scores + attention_bias
    probs = jax.nn.softmax(scores, axis=-1)
    if not deterministic and dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    if head_mask is not None:
        probs = probs * head_mask
    probs = probs.astype(value.dtype)
    context = jnp.einsum("bhqk,bhkd->bhqd", probs, value)  # (batch, heads, q_len, head_dim)
    return context, probs


def fused_attention(query, key, value, attention_bias=None):
    """The same attention through ``jax.nn.dot_product_attention`` (no probabilities, dropout or head mask).

    Args and layout as :func:`eager_attention`; returns the context ``(batch, heads, q_len, head_dim)``.
    """
    bias = None if attention_bias is None else attention_bias.astype(query.dtype)
    # dot_product_attention takes (batch, seq, heads, head_dim).
    context = jax.nn.dot_product_attention(
        query.transpose(0, 2, 1, 3), key.transpose(0, 2, 1, 3), value.transpose(0, 2, 1, 3),
        bias=bias, scale=query.shape[-1] ** -0.5)
    return context.transpose(0, 2, 1, 3)  # (batch, heads, q_len, head_dim)


class FlaxBertSelfAttention(nn.Module):
    """Query/key/value projections, relative positions, KV cache and the attention itself.

    Attributes:
        config: model config (heads, dropout, ``position_embedding_type``).
        causal: add a causal mask (decoder self-attention); only causal attention uses the cache.
        is_cross_attention: attend to encoder states; always absolute positions (no
            ``distance_embedding``), as transformers 4.x built cross-attention.
        dtype / param_dtype: compute and parameter dtypes.
    """

    config: BertConfig
    causal: bool = False
    is_cross_attention: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @property
    def _relative(self) -> bool:
        return not self.is_cross_attention and self.config.position_embedding_type in ("relative_key", "relative_key_query")

    def setup(self):
        c = self.config
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=normal_init(c))
        self.query = nn.Dense(c.hidden_size, **dense)
        self.key = nn.Dense(c.hidden_size, **dense)
        self.value = nn.Dense(c.hidden_size, **dense)
        self.dropout = nn.Dropout(rate=c.attention_probs_dropout_prob)
        if self._relative:
            self.distance_embedding = nn.Embed(2 * c.max_position_embeddings - 1, c.head_dim,
                                               embedding_init=normal_init(c), dtype=self.dtype,
                                               param_dtype=self.param_dtype)

    def _split_heads(self, x):
        batch, seq = x.shape[:2]
        c = self.config
        x = x.reshape(batch, seq, c.num_attention_heads, c.head_dim)  # (batch, seq, heads, head_dim)
        return x.transpose(0, 2, 1, 3)  # (batch, heads, seq, head_dim)

    @nn.compact
    def _concatenate_to_cache(self, key, value):
        """Write this step's keys/values at ``cache_index``; return the whole cache and the old index."""
        is_initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, dtype=jnp.int32))
        index = cache_index.value
        if is_initialized:
            steps = key.shape[2]
            # Cache layout (batch, heads, max_length, head_dim): write along axis 2.
            key = lax.dynamic_update_slice(cached_key.value, key, (0, 0, index, 0))
            value = lax.dynamic_update_slice(cached_value.value, value, (0, 0, index, 0))
            cached_key.value, cached_value.value = key, value
            cache_index.value = index + steps
        return key, value, index

    def _position_scores(self, query, key, q_positions):
        """transformers 4.x relative scores: ``q . E[q_pos - k_pos]`` (and ``k . E[...]`` for relative_key_query)."""
        c = self.config
        distance = q_positions[:, None] - jnp.arange(key.shape[2])[None, :]  # (q_len, k_len)
        table = self.distance_embedding(distance + c.max_position_embeddings - 1).astype(query.dtype)  # (q, k, d)
        scores = jnp.einsum("bhqd,qkd->bhqk", query, table)
        if c.position_embedding_type == "relative_key_query":
            scores = scores + jnp.einsum("bhkd,qkd->bhqk", key, table)
        return scores

    def __call__(self, hidden_states, attention_mask, layer_head_mask=None, key_value_states=None,
                 init_cache: bool = False, deterministic: bool = True, output_attentions: bool = False):
        """Attend from ``hidden_states`` to itself (or to ``key_value_states`` for cross-attention).

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_mask: boolean allowed mask broadcastable to ``(batch, 1, q_len, k_len)``
                (padding only; the causal part is added here). Under a cache ``k_len`` is the
                cache's ``max_length``.
            layer_head_mask: ``(heads,)`` multiplier of the probabilities, or ``None``.
            key_value_states: ``(batch, k_len, hidden)`` encoder states for cross-attention.
            init_cache: create the ``cache`` variables (see ``FlaxBertForCausalLM.init_cache``).
            deterministic: disable dropout.
            output_attentions: also return the probabilities.

        Returns:
            ``(context (batch, q_len, hidden), probs (batch, heads, q_len, k_len) or None)``.
        """
        c = self.config
        source = hidden_states if key_value_states is None else key_value_states
        query = self._split_heads(self.query(hidden_states))  # (batch, heads, q_len, head_dim)
        key = self._split_heads(self.key(source))  # (batch, heads, k_len, head_dim)
        value = self._split_heads(self.value(source))
        q_len = query.shape[2]

        offset = 0
        if self.causal and (self.has_variable("cache", "cached_key") or init_cache):
            key, value, offset = self._concatenate_to_cache(key, value)
        q_positions = offset + jnp.arange(q_len)
        allowed = attention_mask
        if self.causal:
            causal = jnp.arange(key.shape[2])[None, :] <= q_positions[:, None]  # (q_len, k_len)
            allowed = jnp.logical_and(allowed, causal[None, None])
        bias = make_attention_bias(allowed)

        position_scores = None
        if self._relative:
            position_scores = self._position_scores(query, key, q_positions)
        head_mask = None if layer_head_mask is None else layer_head_mask.reshape(1, -1, 1, 1)
        dropout_active = not deterministic and c.attention_probs_dropout_prob > 0.0
        if output_attentions or head_mask is not None or dropout_active:
            context, probs = eager_attention(
                query, key, value, bias, head_mask, position_scores=position_scores,
                dropout_rate=c.attention_probs_dropout_prob,
                dropout_rng=self.make_rng("dropout") if dropout_active else None, deterministic=deterministic)
        else:
            if position_scores is not None:
                # Fold the relative scores into the bias; the fused kernel scales q k^T only.
                bias = bias + position_scores.astype(jnp.float32) * (c.head_dim ** -0.5)
            context, probs = fused_attention(query, key, value, bias), None
        batch = context.shape[0]
        context = context.transpose(0, 2, 1, 3).reshape(batch, q_len, c.hidden_size)  # (batch, q_len, hidden)
        return context, (probs if output_attentions else None)


class FlaxBertSelfOutput(nn.Module):
    """Projection of the attention context, dropout, then LayerNorm of the residual sum."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = nn.Dense(c.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                              kernel_init=normal_init(c))
        self.LayerNorm = layer_norm(c, self.param_dtype)
        self.dropout = nn.Dropout(rate=c.hidden_dropout_prob)

    def __call__(self, hidden_states, input_tensor, deterministic: bool = True):
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)``, all ``(batch, seq, hidden)``."""
        hidden_states = self.dropout(self.dense(hidden_states), deterministic=deterministic)
        return self.LayerNorm(hidden_states + input_tensor).astype(self.dtype)


class FlaxBertAttention(nn.Module):
    """Self- (or cross-) attention followed by its output block: ``self``, ``output``."""

    config: BertConfig
    causal: bool = False
    is_cross_attention: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.self = FlaxBertSelfAttention(self.config, causal=self.causal, is_cross_attention=self.is_cross_attention,
                                          dtype=self.dtype, param_dtype=self.param_dtype)
        self.output = FlaxBertSelfOutput(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, hidden_states, attention_mask, layer_head_mask=None, key_value_states=None,
                 init_cache: bool = False, deterministic: bool = True, output_attentions: bool = False):
        """Arguments as :class:`FlaxBertSelfAttention`; returns ``(hidden (batch, q_len, hidden), probs or None)``."""
        context, probs = self.self(hidden_states, attention_mask, layer_head_mask, key_value_states,
                                   init_cache=init_cache, deterministic=deterministic,
                                   output_attentions=output_attentions)
        return self.output(context, hidden_states, deterministic=deterministic), probs
