"""Self- and cross-attention: the plain math (:func:`eager_attention`), the fused path, the masks.

Masks follow one rule in all three backends: the model turns the public
``attention_mask`` (padding, AND causal in decoder mode, keys counted with the
cache) into an additive ``attention_bias`` of ``finfo(dtype).min`` once per
forward (:func:`make_attention_bias`); the layers only add to it. A row with
no allowed key then softmaxes uniformly instead of producing NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from bert_core.config import BertConfig

from .embeddings import layer_norm, normal_init
from .unpad import PackedBatch

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "make_attention_bias",
    "eager_attention",
    "fused_attention",
    "FlaxBertSelfAttention",
    "FlaxBertSelfOutput",
    "FlaxBertAttention",
]

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def make_attention_bias(attention_mask, *, query_length: int, key_length: int, dtype=jnp.float32,
                        causal: bool = False, past_key_values_length=None):
    """The additive bias for a public ``attention_mask`` (1 = real token).

    Args:
        attention_mask: ``(batch, key_length)``, or ``(batch, query_length, key_length)`` for a
            per-query mask such as the block-diagonal mask of packed sequences
            (:mod:`bert_core.packing`); None means every key is real.
        query_length / key_length: the key length includes the cache (with the preallocated
            cache, its ``max_length``).
        dtype: the compute dtype (the bias is ``finfo(dtype).min`` where masked).
        causal: also forbid keys after each query (decoder mode).
        past_key_values_length: position of the first query (the cache index, may be traced);
            default ``key_length - query_length``, the queries being the last positions.

    Returns:
        ``(batch or 1, 1, query_length, key_length)`` bias, or None when nothing is masked.
    """
    if attention_mask is None and not causal:
        return None
    allowed = jnp.ones((1, 1, 1, key_length), dtype=bool)
    if attention_mask is not None:
        mask = jnp.asarray(attention_mask).astype(bool)
        allowed = mask[:, None, None, :] if mask.ndim == 2 else mask[:, None, :, :]  # (batch, 1, q|1, k_len)
    if causal:
        past = key_length - query_length if past_key_values_length is None else past_key_values_length
        q_pos = past + jnp.arange(query_length)[:, None]  # (q_len, 1)
        allowed = allowed & (jnp.arange(key_length)[None, :] <= q_pos)  # (batch, 1, q_len, k_len)
    allowed = jnp.broadcast_to(allowed, (allowed.shape[0], 1, query_length, key_length))
    return jnp.where(allowed, jnp.zeros((), dtype), jnp.finfo(dtype).min).astype(dtype)


def eager_attention(query, key, value, attention_bias=None, head_mask=None, *, scaling: float | None = None,
                    dropout_rate: float = 0.0, dropout_rng=None, deterministic: bool = True):
    """Scaled dot-product attention, spelled out, as transformers 4.x computes it.

    ``probs = dropout(softmax(query key^T * scaling + attention_bias)) * head_mask``;
    ``context = probs value``. Scores, bias and softmax are float32 whatever the compute dtype.

    Args:
        query: ``(batch, heads, q_len, head_dim)``.
        key / value: ``(batch, heads, k_len, head_dim)``.
        attention_bias: additive, broadcastable to ``(batch, heads, q_len, k_len)``.
        head_mask: multiplies the probabilities, broadcastable to the same shape (``(1, heads, 1, 1)``).
        scaling: defaults to ``head_dim ** -0.5``.
        dropout_rate / dropout_rng / deterministic: dropout on the probabilities.

    Returns:
        ``(context (batch, heads, q_len, head_dim), probs (batch, heads, q_len, k_len))``.
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = jnp.einsum("bhqd,bhkd->bhqk", query, key).astype(jnp.float32) * scaling  # (batch, heads, q, k)
    if attention_bias is not None:
        scores = scores + attention_bias.astype(jnp.float32)
    probs = jax.nn.softmax(scores, axis=-1)
    if not deterministic and dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    if head_mask is not None:
        probs = probs * head_mask
    probs = probs.astype(value.dtype)
    context = jnp.einsum("bhqk,bhkd->bhqd", probs, value)  # (batch, heads, q_len, head_dim)
    return context, probs


def fused_attention(query, key, value, attention_bias=None, *, scaling: float | None = None):
    """The fused path, ``jax.nn.dot_product_attention``; same math as :func:`eager_attention`.

    It returns no probabilities and takes no head mask or dropout; callers needing any use the eager
    path. Shapes as in :func:`eager_attention`; returns the context ``(batch, heads, q_len, head_dim)``.
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if query.dtype == jnp.float16 and jax.default_backend() == "cpu":
        # XLA:CPU has no float16 matmul with float32 accumulation, which dot_product_attention asks for.
        return eager_attention(query, key, value, attention_bias, scaling=scaling)[0]
    bias = None if attention_bias is None else attention_bias.astype(query.dtype)
    # dot_product_attention takes (batch, seq, heads, head_dim).
    context = jax.nn.dot_product_attention(
        query.transpose(0, 2, 1, 3), key.transpose(0, 2, 1, 3), value.transpose(0, 2, 1, 3),
        bias=bias, scale=scaling)
    return context.transpose(0, 2, 1, 3)  # (batch, heads, q_len, head_dim)


class FlaxBertSelfAttention(nn.Module):
    """Query/key/value projections; self-attention, or cross-attention over ``encoder_hidden_states``.

    With ``position_embedding_type`` ``relative_key`` / ``relative_key_query`` a
    ``distance_embedding`` ``(2 * max_position_embeddings - 1, head_dim)`` adds
    ``q . r(i-j)`` (and ``k . r(i-j)``) to the scores before scaling, as in
    transformers 4.x; cross-attention has none there, and none here. In decoder
    mode (``config.is_decoder``) self-attention writes its keys and values into
    the preallocated ``cache`` collection (see :mod:`bert_flax.generation`).

    Attributes:
        config: model config.
        is_cross_attention: attend to ``encoder_hidden_states``.
        attn_implementation: ``"sdpa"`` (:func:`fused_attention`) or ``"eager"`` (:func:`eager_attention`).
        dtype / param_dtype: compute and parameter dtypes.
    """

    config: BertConfig
    is_cross_attention: bool = False
    attn_implementation: str = "sdpa"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @property
    def position_embedding_type(self) -> str:
        # Cross-attention always uses absolute positions, as transformers 4.x built it.
        return "absolute" if self.is_cross_attention else self.config.position_embedding_type

    def setup(self):
        c = self.config
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=normal_init(c))
        self.query = nn.Dense(c.hidden_size, **dense)
        self.key = nn.Dense(c.hidden_size, **dense)
        self.value = nn.Dense(c.hidden_size, **dense)
        self.dropout = nn.Dropout(rate=c.attention_probs_dropout_prob)
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.distance_embedding = nn.Embed(2 * c.max_position_embeddings - 1, c.head_dim,
                                               embedding_init=normal_init(c), dtype=self.dtype,
                                               param_dtype=self.param_dtype)

    def _heads(self, x):
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

    def relative_position_scores(self, query, key, query_start=None):
        """transformers 4.x relative scores ``q . E[i - j]`` (``+ k . E[i - j]`` for relative_key_query).

        Queries sit at ``query_start + arange(q_len)`` (default ``k_len - q_len``: the last positions;
        with the preallocated cache, the cache index). Returns ``(batch, heads, q_len, k_len)``.
        """
        c = self.config
        q_len, k_len = query.shape[2], key.shape[2]
        start = k_len - q_len if query_start is None else query_start
        distance = (start + jnp.arange(q_len))[:, None] - jnp.arange(k_len)[None, :]  # (q_len, k_len)
        table = self.distance_embedding(distance + c.max_position_embeddings - 1).astype(query.dtype)  # (q, k, d)
        scores = jnp.einsum("bhqd,qkd->bhqk", query, table)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + jnp.einsum("bhkd,qkd->bhqk", key, table)
        return scores

    def __call__(self, hidden_states, attention_bias=None, head_mask=None, encoder_hidden_states=None,
                 past_key_value=None, output_attentions: bool = False, *, deterministic: bool = True,
                 init_cache: bool = False):
        """Attend.

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias: additive ``(batch, 1, q_len, k_len)`` (see :func:`make_attention_bias`), or None.
                Under the preallocated cache ``k_len`` is the cache's ``max_length``. Or a
                :class:`~bert_flax.unpad.PackedBatch`: ``hidden_states`` are then ``(1, bucket, hidden)``
                packed tokens; attention runs in the padded layout and the context comes back packed.
            head_mask: ``(1, heads, 1, 1)`` multiplier of the probabilities, or None.
            encoder_hidden_states: ``(batch, enc_len, hidden)`` for cross-attention.
            past_key_value: cached ``(key, value)``, each ``(batch, heads, past, head_dim)``, concatenated
                before this step's (for cross-attention they replace the encoder projections). The
                decoder's preallocated ``cache`` collection is the Flax way; this is the torch layout.
            output_attentions: return the probabilities (uses the eager path).
            deterministic: disable dropout.
            init_cache: create the ``cache`` variables (decoder self-attention).

        Returns:
            ``(context (batch, q_len, hidden), probs (batch, heads, q_len, k_len) or None, (key, value))``.
        """
        c = self.config
        packed = attention_bias if isinstance(attention_bias, PackedBatch) else None
        if packed is not None:
            attention_bias = packed.attention_bias

        def heads(x):
            # Packed projections (1, bucket, hidden) go back to the padded layout: the scores run there, masked.
            return self._heads(x if packed is None else packed.unpack(x))  # (batch, heads, len, head_dim)

        query = heads(self.query(hidden_states))  # (batch, heads, q_len, head_dim)
        if self.is_cross_attention and past_key_value is not None:
            key, value = past_key_value
        else:
            source = encoder_hidden_states if self.is_cross_attention else hidden_states
            key = heads(self.key(source))  # (batch, heads, k_len, head_dim)
            value = heads(self.value(source))
            if past_key_value is not None:
                key = jnp.concatenate([past_key_value[0], key], axis=2)  # (batch, heads, past + q_len, head_dim)
                value = jnp.concatenate([past_key_value[1], value], axis=2)
        query_start = None
        if (c.is_decoder and not self.is_cross_attention
                and (self.has_variable("cache", "cached_key") or init_cache)):
            key, value, query_start = self._concatenate_to_cache(key, value)

        scaling = c.head_dim ** -0.5
        if self.position_embedding_type != "absolute":
            relative = self.relative_position_scores(query, key, query_start).astype(jnp.float32) * scaling
            if attention_bias is None:
                attention_bias = relative
            else:
                # Keep masked entries at the dtype minimum, so a fully padded row stays finite in any dtype.
                low = jnp.finfo(attention_bias.dtype).min
                attention_bias = jnp.maximum(attention_bias.astype(jnp.float32) + relative, low)

        dropout_active = not deterministic and c.attention_probs_dropout_prob > 0.0
        if output_attentions or head_mask is not None or dropout_active or self.attn_implementation == "eager":
            context, probs = eager_attention(
                query, key, value, attention_bias, head_mask, scaling=scaling,
                dropout_rate=c.attention_probs_dropout_prob,
                dropout_rng=self.make_rng("dropout") if dropout_active else None, deterministic=deterministic)
        else:
            context, probs = fused_attention(query, key, value, attention_bias, scaling=scaling), None
        batch, q_len = query.shape[0], query.shape[2]
        context = context.transpose(0, 2, 1, 3).reshape(batch, q_len, c.hidden_size)  # (batch, q_len, hidden)
        if packed is not None:
            context = packed.pack(context)  # (1, bucket, hidden)
        return context, (probs if output_attentions else None), (key, value)


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
    """An attention block: ``self`` (the projections and scores) and ``output`` (projection + residual)."""

    config: BertConfig
    is_cross_attention: bool = False
    attn_implementation: str = "sdpa"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.self = FlaxBertSelfAttention(self.config, is_cross_attention=self.is_cross_attention,
                                          attn_implementation=self.attn_implementation, **kw)
        self.output = FlaxBertSelfOutput(self.config, **kw)

    def __call__(self, hidden_states, attention_bias=None, head_mask=None, encoder_hidden_states=None,
                 past_key_value=None, output_attentions: bool = False, *, deterministic: bool = True,
                 init_cache: bool = False):
        """Arguments as :class:`FlaxBertSelfAttention`.

        Returns:
            ``(output (batch, q_len, hidden), probs or None, (key, value))``.
        """
        context, probs, present = self.self(hidden_states, attention_bias, head_mask, encoder_hidden_states,
                                            past_key_value, output_attentions, deterministic=deterministic,
                                            init_cache=init_cache)
        return self.output(context, hidden_states, deterministic=deterministic), probs, present
