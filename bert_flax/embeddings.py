"""``FlaxBertEmbeddings``: word + token-type (+ absolute position) embeddings, LayerNorm, dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from bert_core.config import BertConfig

__all__ = ["FlaxBertEmbeddings", "normal_init", "layer_norm"]


def normal_init(config: BertConfig):
    """``normal(0, initializer_range)``, the initialiser ``transformers`` uses for dense and embedding weights."""
    return jax.nn.initializers.normal(stddev=config.initializer_range)


def _word_embedding_init(config: BertConfig):
    base = normal_init(config)

    def init(key, shape, dtype=jnp.float32):
        table = base(key, shape, dtype)
        # transformers zeroes the padding_idx row of the word embeddings.
        pad = config.pad_token_id
        if pad is not None and 0 <= pad < shape[0]:
            table = table.at[pad].set(0)
        return table

    return init


def layer_norm(config: BertConfig, param_dtype, name: str | None = None) -> nn.LayerNorm:
    """A LayerNorm with ``config.layer_norm_eps`` that always computes in float32.

    Even under ``dtype=bfloat16`` the mean/variance are taken in float32 (callers
    cast the result back to the compute dtype).
    """
    # use_fast_variance=False: E[x^2]-E[x]^2 loses ~1e-6 to cancellation; torch subtracts the mean first.
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32, param_dtype=param_dtype,
                        use_fast_variance=False, name=name)


class FlaxBertEmbeddings(nn.Module):
    """Sum of word, token-type and (for ``position_embedding_type="absolute"``) position embeddings.

    The relative position types keep ``position_embeddings`` (checkpoints carry
    it) but do not add it, as ``transformers`` 4.x does; their positions enter
    the attention scores instead.

    Attributes:
        config: the model config.
        dtype: compute dtype (``jnp.float32`` or ``jnp.bfloat16``).
        param_dtype: parameter dtype.
    """

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=_word_embedding_init(c),
                                        dtype=self.dtype, param_dtype=self.param_dtype)
        self.position_embeddings = nn.Embed(c.max_position_embeddings, c.hidden_size, embedding_init=normal_init(c),
                                            dtype=self.dtype, param_dtype=self.param_dtype)
        self.token_type_embeddings = nn.Embed(c.type_vocab_size, c.hidden_size, embedding_init=normal_init(c),
                                              dtype=self.dtype, param_dtype=self.param_dtype)
        self.LayerNorm = layer_norm(c, self.param_dtype)
        self.dropout = nn.Dropout(rate=c.hidden_dropout_prob)

    def __call__(self, input_ids, token_type_ids=None, position_ids=None, inputs_embeds=None,
                 past_key_values_length=0, *, deterministic: bool = True):
        """Embed a batch.

        Args:
            input_ids: ``(batch, seq)`` int token ids, or ``None`` when ``inputs_embeds`` is given.
            token_type_ids: ``(batch, seq)``; zeros when ``None``.
            position_ids: ``(batch, seq)``; ``past_key_values_length + arange(seq)`` when ``None``.
            inputs_embeds: ``(batch, seq, hidden)`` used instead of the word embeddings.
            past_key_values_length: number of tokens already in the KV cache (int or traced scalar).
            deterministic: disable dropout.

        Returns:
            ``(batch, seq, hidden)`` in the compute dtype.
        """
        if inputs_embeds is None:
            input_ids = input_ids.astype("i4")
            inputs_embeds = self.word_embeddings(input_ids)
            if self.config.pad_token_id is not None:
                # torch's Embedding(padding_idx) never sends lookup gradients to the padding row;
                # block them too, so training updates (and gradients) match PyTorch.
                is_pad = (input_ids == self.config.pad_token_id)[..., None]
                inputs_embeds = jnp.where(is_pad, jax.lax.stop_gradient(inputs_embeds), inputs_embeds)
        batch, seq = inputs_embeds.shape[:2]
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, seq), dtype="i4")
        hidden = inputs_embeds.astype(self.dtype) + self.token_type_embeddings(token_type_ids.astype("i4"))
        if self.config.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = jnp.broadcast_to(jnp.arange(seq, dtype="i4") + past_key_values_length, (batch, seq))
            hidden = hidden + self.position_embeddings(position_ids.astype("i4"))
        elif self.is_initializing():
            self.position_embeddings(jnp.zeros((1, 1), "i4"))  # create the table the checkpoints carry
        hidden = self.LayerNorm(hidden).astype(self.dtype)
        return self.dropout(hidden, deterministic=deterministic)
