"""Self- and cross-attention: the plain math (:func:`eager_attention`), the fused path, the masks.

Masks follow one rule in all three backends: build a boolean *allowed* mask
(padding, AND causal in decoder mode), then turn it into an additive
``attention_bias`` of ``finfo(float32).min`` once. A row with no allowed key
then softmaxes uniformly instead of producing NaN (min + min would overflow to
-inf). Scores, bias and softmax are float32 whatever the compute dtype, so
mixed precision keeps the softmax in float32.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from bert_core.config import BertConfig

from ._common import ConfigLayer, SavesOutputSublayer, dense, layer_norm, normal
from .compiled import PackedTokens

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "eager_attention",
    "fused_attention",
    "make_attention_bias",
    "TFBertSelfAttention",
    "TFBertSelfOutput",
    "TFBertAttention",
]

#: ``model.set_attn_implementation`` names: ``"sdpa"`` the fused path (default, the name torch uses),
#: ``"eager"`` the plain math. Probabilities, a head mask or attention dropout always take the eager path.
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
_MIN = tf.float32.min


@functools.cache
def _fused_pays() -> bool:
    """Whether ``"sdpa"`` runs keras' fused op: with a GPU visible. On CPU the op measured 6-8% slower than
    the plain math in the whole model (all-MiniLM-L6-v2, 1 x 16 and 8 x 128), so ``"sdpa"`` runs the plain math."""
    return bool(tf.config.list_logical_devices("GPU"))


def eager_attention(
    query: tf.Tensor,
    key: tf.Tensor,
    value: tf.Tensor,
    attention_bias: tf.Tensor | None = None,
    head_mask: tf.Tensor | None = None,
    dropout: keras.layers.Dropout | None = None,
    training: bool = False,
    scaling: float | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Scaled dot-product attention, spelled out.

    ``probs = dropout(softmax(query @ key^T * scaling + attention_bias)) * head_mask``;
    ``context = probs @ value``.

    Args:
        query: ``(batch, heads, q_len, head_dim)``.
        key / value: ``(batch, heads, k_len, head_dim)``.
        attention_bias: additive float32, broadcastable to ``(batch, heads, q_len, k_len)``.
        head_mask: multiplies the probabilities, broadcastable to the same shape
            (``(1, heads, 1, 1)`` per layer), as ``transformers`` 4.x does.
        dropout: a Keras dropout layer applied to the probabilities when ``training``.
        scaling: defaults to ``head_dim ** -0.5``.

    Returns:
        ``context (batch, heads, q_len, head_dim)`` and ``probs (batch, heads, q_len, k_len)``,
        both in the dtype of ``query``.
    """
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = tf.matmul(query, key, transpose_b=True)  # (batch, heads, q_len, k_len)
    scores = tf.cast(scores, tf.float32) * scaling
    if attention_bias is not None:
        # Clamped so a negative score plus the bias stays finite: a fully padded row softmaxes uniformly.
        scores = tf.maximum(scores + tf.cast(attention_bias, tf.float32), _MIN)
    probs = tf.cast(tf.nn.softmax(scores, axis=-1), query.dtype)
    if dropout is not None:
        probs = dropout(probs, training=training)
    if head_mask is not None:
        probs = probs * tf.cast(head_mask, probs.dtype)
    return tf.matmul(probs, value), probs


def fused_attention(
    query: tf.Tensor,
    key: tf.Tensor,
    value: tf.Tensor,
    attention_bias: tf.Tensor | None = None,
    scaling: float | None = None,
) -> tf.Tensor:
    """The fused path, ``keras.ops.dot_product_attention``; same math as :func:`eager_attention`.

    It returns no probabilities and takes no head mask or dropout; callers needing any of
    them use the eager path. Shapes as in :func:`eager_attention`; returns the context only.
    """
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if attention_bias is not None:
        # float32's minimum is beyond bfloat16/float16 range: clamp before the cast, or it becomes -inf.
        attention_bias = tf.cast(tf.maximum(attention_bias, query.dtype.min), query.dtype)
    # keras.ops wants (batch, seq, heads, head_dim).
    context = keras.ops.dot_product_attention(
        tf.transpose(query, [0, 2, 1, 3]), tf.transpose(key, [0, 2, 1, 3]), tf.transpose(value, [0, 2, 1, 3]),
        bias=attention_bias, scale=scaling)
    return tf.transpose(context, [0, 2, 1, 3])  # (batch, heads, q_len, head_dim)


def make_attention_bias(
    attention_mask: tf.Tensor | None,
    *,
    query_length: tf.Tensor | int,
    key_length: tf.Tensor | int,
    dtype: tf.DType,
    causal: bool = False,
) -> tf.Tensor | None:
    """The additive bias for a public ``attention_mask`` (1 = real token).

    Args:
        attention_mask: ``(batch, key_length)`` or ``(batch, query_length, key_length)``;
            None means every key is real.
        query_length / key_length: key length includes the cached tokens; queries are
            the last ``query_length`` positions.
        dtype: the dtype of the attention scores (the bias is ``dtype.min`` where masked); the
            models pass float32, the dtype their scores and softmax run in under any policy.
        causal: also forbid keys after each query (decoder mode).

    Returns:
        ``(batch or 1, 1, query_length, key_length)`` bias, or None when nothing is masked.
    """
    if attention_mask is None and not causal:
        return None
    dtype = tf.as_dtype(dtype)
    allowed = tf.ones((1, 1, 1, key_length), dtype=tf.bool)
    if attention_mask is not None:
        mask = tf.cast(attention_mask, tf.bool)
        allowed = mask[:, None, None, :] if mask.shape.rank == 2 else mask[:, None, :, :]  # (batch, 1, q|1, k_len)
    if causal:
        q_pos = tf.range(key_length - query_length, key_length)[:, None]  # (q_len, 1)
        k_pos = tf.range(key_length)[None, :]  # (1, k_len)
        allowed = tf.logical_and(allowed, k_pos <= q_pos)
    allowed = tf.broadcast_to(allowed, tf.stack([tf.shape(allowed)[0], 1, query_length, key_length]))
    return tf.where(allowed, tf.constant(0, dtype), tf.constant(dtype.min, dtype))


class TFBertSelfAttention(ConfigLayer):
    """Multi-head attention projections; self-attention, or cross-attention over ``encoder_hidden_states``.

    With ``position_embedding_type`` ``relative_key`` / ``relative_key_query`` a
    ``distance_embedding`` of shape ``(2 * max_position_embeddings - 1, head_dim)``
    adds ``q . r(i-j)`` (and ``k . r(i-j)``) to the scores before scaling, as in
    ``transformers`` 4.x (Shaw et al. 2018; Huang et al. 2020); cross-attention
    has no relative positions there, and none here.
    """

    def __init__(self, config: BertConfig, is_cross_attention: bool = False, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = dense(config, self.all_head_size, "query", policy)
        self.key = dense(config, self.all_head_size, "key", policy)
        self.value = dense(config, self.all_head_size, "value", policy)
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype=policy)
        self.position_embedding_type = "absolute" if is_cross_attention else config.position_embedding_type
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.distance_embedding = keras.layers.Embedding(
                2 * config.max_position_embeddings - 1, self.attention_head_size,
                embeddings_initializer=normal(config), name="distance_embedding", dtype=policy)
        self.is_cross_attention = is_cross_attention
        self.attn_implementation = "sdpa"

    def get_config(self) -> dict:
        return {**super().get_config(), "is_cross_attention": self.is_cross_attention}

    def build(self, input_shape=None) -> None:
        for proj in (self.query, self.key, self.value):
            proj.build((None, None, self.config.hidden_size))
        if self.position_embedding_type != "absolute":
            self.distance_embedding.build()
        self.built = True

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], self.num_attention_heads, self.attention_head_size])
        # (batch, seq, heads, head_dim) -> (batch, heads, seq, head_dim)
        return tf.transpose(x, [0, 2, 1, 3])

    def relative_position_scores(self, query: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
        """``q . r(i-j)`` (and ``k . r(i-j)``): ``(batch, heads, q_len, k_len)`` float32, before scaling."""
        q_len, k_len = tf.shape(query)[2], tf.shape(key)[2]
        # Queries are the last q_len of the k_len positions (the rest is cache). With no cache this is
        # arange(q_len), exactly transformers 4.x, whose cached branch handles only q_len == 1.
        q_pos = tf.range(k_len - q_len, k_len)[:, None]  # (q_len, 1)
        k_pos = tf.range(k_len)[None, :]  # (1, k_len)
        distance = self.distance_embedding(q_pos - k_pos + self.config.max_position_embeddings - 1)
        distance = tf.cast(distance, query.dtype)  # (q_len, k_len, head_dim)
        scores = tf.einsum("bhld,lrd->bhlr", query, distance)  # (batch, heads, q_len, k_len)
        if self.position_embedding_type == "relative_key_query":
            scores = scores + tf.einsum("bhrd,lrd->bhlr", key, distance)
        return tf.cast(scores, tf.float32)

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_bias: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        output_attentions: bool = False,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tuple[tf.Tensor, tf.Tensor]]:
        """Attend.

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias: additive float32 ``(batch, 1, q_len, k_len)`` (see :func:`make_attention_bias`),
                or :class:`~bert_tf.compiled.PackedTokens` when ``hidden_states`` holds only the real tokens
                ``(1, tokens, hidden)`` (the context comes back packed too).
            head_mask: ``(1, heads, 1, 1)`` multiplier of the probabilities, or None.
            encoder_hidden_states: ``(batch, enc_len, hidden)`` for cross-attention.
            past_key_value: cached ``(key, value)``, each ``(batch, heads, past, head_dim)``;
                for cross-attention they replace the projections of the encoder states.
            output_attentions: return the probabilities (the eager path runs for them).

        Returns:
            ``context (batch, q_len, hidden)``, ``probs (batch, heads, q_len, k_len)`` or None,
            and the ``(key, value)`` to cache.
        """
        if isinstance(attention_bias, PackedTokens):
            return self._attend_packed(hidden_states, attention_bias, training)
        query = self._heads(self.query(hidden_states))  # (batch, heads, q_len, head_dim)
        if self.is_cross_attention and past_key_value is not None:
            key, value = past_key_value
        else:
            source = encoder_hidden_states if self.is_cross_attention else hidden_states
            key = self._heads(self.key(source))  # (batch, heads, k_len, head_dim)
            value = self._heads(self.value(source))
            if past_key_value is not None:
                key = tf.concat([tf.cast(past_key_value[0], key.dtype), key], axis=2)  # (batch, heads, past+q, hd)
                value = tf.concat([tf.cast(past_key_value[1], value.dtype), value], axis=2)

        context, probs = self._attend(query, key, value, attention_bias, head_mask, output_attentions, training)
        shape = tf.shape(hidden_states)
        context = tf.transpose(context, [0, 2, 1, 3])  # (batch, q_len, heads, head_dim)
        context = tf.reshape(context, [shape[0], shape[1], self.all_head_size])  # (batch, q_len, hidden)
        return context, (probs if output_attentions else None), (key, value)

    def _attend(self, query, key, value, attention_bias, head_mask, output_attentions, training, plain=False):
        """``(context (batch, heads, q_len, head_dim), probs or None)``: relative scores added, eager (or
        ``plain``) or fused."""
        scaling = self.attention_head_size**-0.5
        if self.position_embedding_type != "absolute":
            relative = self.relative_position_scores(query, key) * scaling
            attention_bias = relative if attention_bias is None else tf.maximum(attention_bias + relative, _MIN)
        use_eager = (plain or output_attentions or head_mask is not None or self.attn_implementation == "eager"
                     or (training and self.dropout.rate > 0) or not _fused_pays())
        if use_eager:
            return eager_attention(query, key, value, attention_bias, head_mask, self.dropout, training, scaling)
        return fused_attention(query, key, value, attention_bias, scaling), None

    def _attend_packed(self, hidden_states: tf.Tensor, packed: PackedTokens, training) -> tuple:
        """Self-attention of packed tokens ``(1, tokens, hidden)``: projections on the real tokens only, and
        attention per group of rows (:meth:`PackedTokens.attend`), with the plain math: keras' fused op
        measured about twice as slow on CPU here. Returns the packed context, no probabilities, no cache."""

        def attend(query, key, value, bias):  # (rows, width, hidden) each
            context, _ = self._attend(self._heads(query), self._heads(key), self._heads(value), bias, None, False,
                                      training, plain=True)
            context = tf.transpose(context, [0, 2, 1, 3])  # (rows, width, heads, head_dim)
            return tf.reshape(context, tf.stack([tf.shape(query)[0], tf.shape(query)[1], self.all_head_size]))

        context = packed.attend(self.query(hidden_states), self.key(hidden_states), self.value(hidden_states), attend)
        return context, None, ()


class TFBertSelfOutput(ConfigLayer):
    """Projection of the attention context, dropout, residual add and LayerNorm."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.dense = dense(config, config.hidden_size, "dense", policy)
        self.LayerNorm = layer_norm(config, "LayerNorm", policy)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=policy)

    def build(self, input_shape=None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states: tf.Tensor, input_tensor: tf.Tensor, training: bool = False) -> tf.Tensor:
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)``, all ``(batch, seq, hidden)``."""
        hidden_states = self.dropout(self.dense(hidden_states), training=training)
        dtype = self.LayerNorm.compute_dtype  # the residual sum in float32 under mixed precision
        return self.LayerNorm(tf.cast(hidden_states, dtype) + tf.cast(input_tensor, dtype))


class TFBertAttention(SavesOutputSublayer):
    """An attention block: ``self`` (the projections and scores) and ``output`` (projection + residual)."""

    # The submodule keeps the checkpoint's name ``output``; this shadows Keras' symbolic ``Layer.output``
    # property, which a sublayer of a subclassed model never uses.
    output = None

    def __init__(self, config: BertConfig, is_cross_attention: bool = False, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.self = TFBertSelfAttention(config, is_cross_attention=is_cross_attention, name="self",
                                        dtype=self.dtype_policy)
        self.output = TFBertSelfOutput(config, name="output", dtype=self.dtype_policy)
        self.is_cross_attention = is_cross_attention

    def get_config(self) -> dict:
        return {**super().get_config(), "is_cross_attention": self.is_cross_attention}

    def build(self, input_shape=None) -> None:
        self.self.build()
        self.output.build()
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_bias: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        output_attentions: bool = False,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tuple[tf.Tensor, tf.Tensor]]:
        """Arguments as :meth:`TFBertSelfAttention.call`.

        Returns:
            ``(output (batch, q_len, hidden), probs, (key, value))``.
        """
        context, probs, present = self.self(hidden_states, attention_bias=attention_bias, head_mask=head_mask,
                                            encoder_hidden_states=encoder_hidden_states,
                                            past_key_value=past_key_value, output_attentions=output_attentions,
                                            training=training)
        return self.output(context, hidden_states, training=training), probs, present
