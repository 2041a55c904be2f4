"""The pooler and the prediction heads: ``TFBertPooler``, the MLM / NSP heads and their combinations."""

from __future__ import annotations

import keras
import tensorflow as tf

from bert_core.config import BertConfig

from ._common import ConfigLayer, dense, layer_norm
from .activations import get_activation

__all__ = [
    "TFBertPooler",
    "TFBertPredictionHeadTransform",
    "TFBertLMPredictionHead",
    "TFBertOnlyMLMHead",
    "TFBertOnlyNSPHead",
    "TFBertPreTrainingHeads",
]


class TFBertPooler(ConfigLayer):
    """``tanh(dense(hidden[:, 0]))``: ``(batch, seq, hidden) -> (batch, hidden)``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = dense(config, config.hidden_size, "dense", self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.dense.build((None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return tf.tanh(self.dense(hidden_states[:, 0]))


class TFBertPredictionHeadTransform(ConfigLayer):
    """``LayerNorm(act(dense(x)))`` before the MLM decoder, ``(batch, seq, hidden)``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = dense(config, config.hidden_size, "dense", self.dtype_policy)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = layer_norm(config, "LayerNorm", self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class TFBertLMPredictionHead(ConfigLayer):
    """Vocabulary logits of ``transform(x)``: ``(batch, seq, hidden) -> (batch, seq, vocab)``.

    Tied (``config.tie_word_embeddings``, the default) the decoder is the word-embedding table,
    passed to :meth:`call` (Keras has no shared parameters across layers), plus ``bias``
    (``cls.predictions.bias``, which the checkpoint's ``cls.predictions.decoder.bias`` shares).
    Untied, ``decoder`` is a ``Dense`` of its own, kernel and bias (``cls.predictions.decoder.weight``
    / ``.bias``), as ``transformers`` 5.x computes it; ``bias`` is then kept but unused.
    """

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.transform = TFBertPredictionHeadTransform(config, name="transform", dtype=self.dtype_policy)
        if not config.tie_word_embeddings:
            self.decoder = dense(config, config.vocab_size, "decoder", self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.transform.build()
        if not self.config.tie_word_embeddings:
            self.decoder.build((None, None, self.config.hidden_size))
        self.bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="bias")
        self.built = True

    def call(self, hidden_states: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        """``hidden_states (batch, seq, hidden)``, ``word_embeddings (vocab, hidden)`` -> ``(batch, seq, vocab)``."""
        hidden_states = self.transform(hidden_states)
        if not self.config.tie_word_embeddings:
            return self.decoder(hidden_states)
        dtype = self.compute_dtype
        hidden_states = tf.cast(hidden_states, dtype)
        logits = tf.matmul(hidden_states, tf.cast(word_embeddings, dtype), transpose_b=True)
        return logits + tf.cast(self.bias, dtype)


class TFBertOnlyMLMHead(ConfigLayer):
    """The masked-LM head: ``predictions``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.predictions = TFBertLMPredictionHead(config, name="predictions", dtype=self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.predictions.build()
        self.built = True

    def call(self, sequence_output: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        return self.predictions(sequence_output, word_embeddings)


class TFBertOnlyNSPHead(ConfigLayer):
    """The next-sentence head: ``seq_relationship``, ``(batch, hidden) -> (batch, 2)``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.seq_relationship = dense(config, 2, "seq_relationship", self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.seq_relationship.build((None, self.config.hidden_size))
        self.built = True

    def call(self, pooled_output: tf.Tensor) -> tf.Tensor:
        return self.seq_relationship(pooled_output)


class TFBertPreTrainingHeads(ConfigLayer):
    """Both pre-training heads: ``predictions`` (MLM) and ``seq_relationship`` (NSP)."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.predictions = TFBertLMPredictionHead(config, name="predictions", dtype=self.dtype_policy)
        self.seq_relationship = dense(config, 2, "seq_relationship", self.dtype_policy)

    def build(self, input_shape=None) -> None:
        self.predictions.build()
        self.seq_relationship.build((None, self.config.hidden_size))
        self.built = True

    def call(self, sequence_output: tf.Tensor, pooled_output: tf.Tensor,
             word_embeddings: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns ``(prediction_scores (batch, seq, vocab), seq_relationship_score (batch, 2))``."""
        return self.predictions(sequence_output, word_embeddings), self.seq_relationship(pooled_output)
