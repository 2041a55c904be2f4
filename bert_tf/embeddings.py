"""``TFBertEmbeddings``: word + token type (+ absolute position) embeddings, LayerNorm, dropout."""

from __future__ import annotations

import keras
import tensorflow as tf

from bert_core.config import BertConfig

from ._common import ConfigLayer, layer_norm, normal

__all__ = ["TFBertEmbeddings"]


class TFBertEmbeddings(ConfigLayer):
    """The input embeddings of BERT.

    Position ids default to ``arange(past, past + seq)``; token type ids to zeros. The
    ``pad_token_id`` row of ``word_embeddings`` starts at zero and, as PyTorch's
    ``padding_idx``, receives no gradient through the lookup.
    With ``position_embedding_type`` ``relative_key(_query)`` the position table
    exists but is not added (positions enter through attention), as in
    ``transformers``.
    """

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        h = config.hidden_size
        self.word_embeddings = keras.layers.Embedding(config.vocab_size, h, embeddings_initializer=normal(config),
                                                      name="word_embeddings", dtype=policy)
        self.position_embeddings = keras.layers.Embedding(config.max_position_embeddings, h,
                                                          embeddings_initializer=normal(config),
                                                          name="position_embeddings", dtype=policy)
        self.token_type_embeddings = keras.layers.Embedding(config.type_vocab_size, h,
                                                            embeddings_initializer=normal(config),
                                                            name="token_type_embeddings", dtype=policy)
        self.LayerNorm = layer_norm(config, "LayerNorm", policy)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=policy)

    def build(self, input_shape=None) -> None:
        for table in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            table.build()
        if self.config.pad_token_id is not None:  # initialised like transformers: the padding row is zero
            table = self.word_embeddings.embeddings
            table.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(table), [[self.config.pad_token_id]],
                                                     tf.zeros((1, self.config.hidden_size), table.dtype)))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(
        self,
        input_ids: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        past_key_values_length: int | tf.Tensor = 0,
        training: bool = False,
    ) -> tf.Tensor:
        """Embed tokens.

        Args:
            input_ids / token_type_ids / position_ids: ``(batch, seq)`` integers.
            inputs_embeds: ``(batch, seq, hidden)`` instead of ``input_ids``.
            past_key_values_length: cached positions before these tokens.

        Returns:
            ``(batch, seq, hidden)``.
        """
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
            if self.config.pad_token_id is not None:
                # PyTorch's Embedding(padding_idx=pad) never sends a gradient to the padding row; neither do we.
                is_pad = tf.equal(tf.cast(input_ids, tf.int32), self.config.pad_token_id)[..., None]
                inputs_embeds = tf.where(is_pad, tf.stop_gradient(inputs_embeds), inputs_embeds)
        shape = tf.shape(inputs_embeds)[:-1]  # (batch, seq)
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape, dtype=tf.int32)
        norm_dtype = self.LayerNorm.compute_dtype
        # Summed in the LayerNorm's dtype (float32 under mixed precision): three bf16 roundings would add up.
        embeddings = tf.cast(inputs_embeds, norm_dtype) + tf.cast(self.token_type_embeddings(token_type_ids), norm_dtype)
        if self.config.position_embedding_type == "absolute":
            if position_ids is None:
                start = tf.cast(past_key_values_length, tf.int32)
                position_ids = tf.range(start, start + shape[1])[None, :]  # (1, seq)
            embeddings = embeddings + tf.cast(self.position_embeddings(position_ids), norm_dtype)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings, training=training)
