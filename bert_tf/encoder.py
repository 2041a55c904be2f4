"""The transformer stack: ``TFBertIntermediate``, ``TFBertOutput``, ``TFBertLayer``, ``TFBertEncoder``."""

from __future__ import annotations

import keras
import tensorflow as tf

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.outputs import BaseModelOutputWithPastAndCrossAttentions

from ._common import ConfigLayer, SavesOutputSublayer, dense, layer_norm
from .activations import get_activation
from .attention import TFBertAttention

__all__ = ["TFBertIntermediate", "TFBertOutput", "TFBertLayer", "TFBertEncoder"]


class TFBertIntermediate(ConfigLayer):
    """The feed-forward expansion ``act(dense(x))``: ``(batch, seq, hidden) -> (batch, seq, intermediate)``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = dense(config, config.intermediate_size, "dense", self.dtype_policy)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def build(self, input_shape=None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class TFBertOutput(ConfigLayer):
    """The feed-forward contraction, dropout, residual add and LayerNorm."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.dense = dense(config, config.hidden_size, "dense", policy)
        self.LayerNorm = layer_norm(config, "LayerNorm", policy)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=policy)

    def build(self, input_shape=None) -> None:
        self.dense.build((None, None, self.config.intermediate_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states: tf.Tensor, input_tensor: tf.Tensor, training: bool = False) -> tf.Tensor:
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)`` -> ``(batch, seq, hidden)``."""
        hidden_states = self.dropout(self.dense(hidden_states), training=training)
        dtype = self.LayerNorm.compute_dtype
        return self.LayerNorm(tf.cast(hidden_states, dtype) + tf.cast(input_tensor, dtype))


class TFBertLayer(SavesOutputSublayer):
    """One transformer block: ``attention``, optional ``crossattention`` (decoder), ``intermediate``, ``output``."""

    output = None  # the checkpoint's name; shadows Keras' symbolic `Layer.output` property

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.attention = TFBertAttention(config, name="attention", dtype=policy)
        self.is_decoder = config.is_decoder
        self.add_cross_attention = config.add_cross_attention
        if self.add_cross_attention:
            if not self.is_decoder:
                raise ConfigError("add_cross_attention=True needs is_decoder=True (cross-attention is a decoder layer)")
            self.crossattention = TFBertAttention(config, is_cross_attention=True, name="crossattention",
                                                  dtype=policy)
        self.intermediate = TFBertIntermediate(config, name="intermediate", dtype=policy)
        self.output = TFBertOutput(config, name="output", dtype=policy)

    def build(self, input_shape=None) -> None:
        self.attention.build()
        if self.add_cross_attention:
            self.crossattention.build()
        self.intermediate.build()
        self.output.build()
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_bias: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_bias: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, ...] | None = None,
        output_attentions: bool = False,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor | None, tuple[tf.Tensor, ...]]:
        """Run the block.

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias: ``(batch, 1, q_len, k_len)`` additive self-attention bias.
            head_mask: ``(1, heads, 1, 1)`` or None (applied to self- and cross-attention, as 4.x does).
            encoder_hidden_states / encoder_attention_bias: cross-attention source and its bias.
            past_key_value: ``(self_key, self_value)`` or ``(self_key, self_value, cross_key, cross_value)``.

        Returns:
            ``(hidden (batch, q_len, hidden), self probs or None, cross probs or None, present cache tuple)``.
        """
        self_past = tuple(past_key_value[:2]) if past_key_value is not None else None
        attention_output, probs, present = self.attention(
            hidden_states, attention_bias=attention_bias, head_mask=head_mask, past_key_value=self_past,
            output_attentions=output_attentions, training=training)
        cross_probs = None
        cross_past = tuple(past_key_value[2:4]) if past_key_value is not None and len(past_key_value) == 4 else None
        if self.is_decoder and encoder_hidden_states is not None and not self.add_cross_attention:
            raise ConfigError("encoder_hidden_states were passed but the config has add_cross_attention=False; "
                              "build the model with add_cross_attention=True")
        if self.add_cross_attention and (encoder_hidden_states is not None or cross_past is not None):
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output, attention_bias=encoder_attention_bias, head_mask=head_mask,
                encoder_hidden_states=encoder_hidden_states, past_key_value=cross_past,
                output_attentions=output_attentions, training=training)
            present = present + cross_present
        layer_output = self.output(self.intermediate(attention_output), attention_output, training=training)
        return layer_output, probs, cross_probs, present


class TFBertEncoder(ConfigLayer):
    """The stack of ``config.num_hidden_layers`` blocks, ``layer[0] .. layer[n-1]``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.layer = [TFBertLayer(config, name=f"layer_{i}", dtype=self.dtype_policy)
                      for i in range(config.num_hidden_layers)]

    def build(self, input_shape=None) -> None:
        for block in self.layer:
            block.build()
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_bias: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_bias: tf.Tensor | None = None,
        past_key_values: tuple | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        training: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Run every block.

        Args:
            hidden_states: embeddings ``(batch, q_len, hidden)``.
            head_mask: ``(layers, 1, heads, 1, 1)`` or None.
            past_key_values: the legacy cache, one tuple per layer (see :class:`TFBertLayer`).
            use_cache: return the updated cache.

        Returns:
            :class:`BaseModelOutputWithPastAndCrossAttentions`; ``hidden_states`` holds the embeddings
            and each block's output (``layers + 1`` tensors) when requested.
        """
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        all_cross = () if output_attentions and encoder_hidden_states is not None and self.config.add_cross_attention \
            else None
        cache = () if use_cache else None
        for i, block in enumerate(self.layer):
            hidden_states, probs, cross_probs, present = block(
                hidden_states, attention_bias=attention_bias, head_mask=None if head_mask is None else head_mask[i],
                encoder_hidden_states=encoder_hidden_states, encoder_attention_bias=encoder_attention_bias,
                past_key_value=None if past_key_values is None else past_key_values[i],
                output_attentions=output_attentions, training=training)
            if use_cache:
                cache += (present,)
            if output_attentions:
                all_attentions += (probs,)
                if all_cross is not None:
                    all_cross += (cross_probs,)
            if output_hidden_states:
                all_hidden += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, past_key_values=cache, hidden_states=all_hidden,
            attentions=all_attentions, cross_attentions=all_cross)
