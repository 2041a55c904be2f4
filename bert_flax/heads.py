"""Pooler and prediction heads: ``FlaxBertPooler`` .. ``FlaxBertPreTrainingHeads``.

With ``config.tie_word_embeddings`` (the default) the MLM decoder is the word
embeddings: it has no parameters of its own (no ``cls/predictions/decoder``);
callers pass the embedding table and the logits are ``transform(x) @ table.T +
bias``, as transformers 4.x Flax did. With ``tie_word_embeddings=False`` it owns
``cls/predictions/decoder/kernel`` (the checkpoint's ``cls.predictions.decoder.weight``).
"""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_core.config import BertConfig

from .activations import get_activation
from .embeddings import layer_norm, normal_init

__all__ = [
    "FlaxBertPooler",
    "FlaxBertPredictionHeadTransform",
    "FlaxBertLMPredictionHead",
    "FlaxBertOnlyMLMHead",
    "FlaxBertOnlyNSPHead",
    "FlaxBertPreTrainingHeads",
]


def _dense(config: BertConfig, features: int, dtype, param_dtype) -> nn.Dense:
    return nn.Dense(features, dtype=dtype, param_dtype=param_dtype, kernel_init=normal_init(config))


class FlaxBertPooler(nn.Module):
    """``tanh(dense(hidden[:, 0]))``: ``(batch, seq, hidden)`` -> ``(batch, hidden)``."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.dense = _dense(self.config, self.config.hidden_size, self.dtype, self.param_dtype)

    def __call__(self, hidden_states):
        return jnp.tanh(self.dense(hidden_states[:, 0]))


class FlaxBertPredictionHeadTransform(nn.Module):
    """``LayerNorm(act(dense(x)))`` before the vocabulary projection."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.dense = _dense(self.config, self.config.hidden_size, self.dtype, self.param_dtype)
        self.activation = get_activation(self.config.hidden_act)
        self.LayerNorm = layer_norm(self.config, self.param_dtype)

    def __call__(self, hidden_states):
        return self.LayerNorm(self.activation(self.dense(hidden_states))).astype(self.dtype)


class FlaxBertLMPredictionHead(nn.Module):
    """``transform``, then the decoder ``x @ W.T + bias``: logits ``(batch, seq, vocab)``.

    ``W`` is the word-embedding table passed in (tied), or the head's own ``decoder`` kernel
    when ``config.tie_word_embeddings`` is False.
    """

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.transform = FlaxBertPredictionHeadTransform(c, dtype=self.dtype, param_dtype=self.param_dtype)
        if not c.tie_word_embeddings:
            self.decoder = nn.Dense(c.vocab_size, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                                    kernel_init=normal_init(c))
        self.bias = self.param("bias", nn.initializers.zeros, (c.vocab_size,), self.param_dtype)

    def __call__(self, hidden_states, shared_embedding=None):
        """Args: ``hidden_states (batch, seq, hidden)``; ``shared_embedding (vocab, hidden)``, the word
        embeddings (read only when the decoder is tied)."""
        hidden_states = self.transform(hidden_states)
        if self.config.tie_word_embeddings:
            logits = jnp.einsum("bsh,vh->bsv", hidden_states, shared_embedding.astype(self.dtype))
        else:
            logits = self.decoder(hidden_states)
        return logits + self.bias.astype(self.dtype)


class FlaxBertOnlyMLMHead(nn.Module):
    """The masked-LM head alone: ``predictions``."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.predictions = FlaxBertLMPredictionHead(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, sequence_output, shared_embedding=None):
        return self.predictions(sequence_output, shared_embedding)


class FlaxBertOnlyNSPHead(nn.Module):
    """The next-sentence head alone: ``seq_relationship`` on the pooled output -> ``(batch, 2)``."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.seq_relationship = _dense(self.config, 2, self.dtype, self.param_dtype)

    def __call__(self, pooled_output):
        return self.seq_relationship(pooled_output)


class FlaxBertPreTrainingHeads(nn.Module):
    """Both pre-training heads: ``predictions`` (MLM) and ``seq_relationship`` (NSP)."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.predictions = FlaxBertLMPredictionHead(self.config, dtype=self.dtype, param_dtype=self.param_dtype)
        self.seq_relationship = _dense(self.config, 2, self.dtype, self.param_dtype)

    def __call__(self, sequence_output, pooled_output, shared_embedding=None):
        """Returns ``(prediction logits (batch, seq, vocab), seq_relationship logits (batch, 2))``."""
        return self.predictions(sequence_output, shared_embedding), self.seq_relationship(pooled_output)
