"""The transformer stack: ``FlaxBertIntermediate``, ``FlaxBertOutput``, ``FlaxBertLayer``, ``FlaxBertEncoder``.

Layers live at ``encoder/layer/<i>/...`` like the PyTorch state dict. With
``scan_layers=True`` the stack is one ``nn.scan`` module at ``encoder/layer``
whose parameters carry a leading ``num_hidden_layers`` axis
(:func:`bert_flax.scan.scan_to_unscanned_params` converts). With
``gradient_checkpointing=True`` each layer is wrapped in ``nn.remat``.
"""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_core.config import BertConfig

from .activations import get_activation
from bert_core.errors import ConfigError
from bert_core.outputs import BaseModelOutputWithPastAndCrossAttentions

from .attention import FlaxBertAttention
from .embeddings import layer_norm, normal_init

__all__ = ["FlaxBertIntermediate", "FlaxBertOutput", "FlaxBertLayer", "FlaxBertEncoder"]

# Positions of (output_attentions, deterministic, init_cache) in FlaxBertLayer.__call__, self = 0;
# the scan body takes (hidden, head_mask, attention_bias, encoder states, encoder bias) first and adds
# output_hidden_states.
_STATIC_ARGNUMS = (7, 8, 9)
_SCAN_STATIC_ARGNUMS = (6, 7, 8, 9)


class FlaxBertIntermediate(nn.Module):
    """``act(dense(x))``: hidden -> intermediate size."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = nn.Dense(c.intermediate_size, dtype=self.dtype, param_dtype=self.param_dtype,
                              kernel_init=normal_init(c))
        self.activation = get_activation(c.hidden_act)

    def __call__(self, hidden_states):
        """``(batch, seq, hidden)`` -> ``(batch, seq, intermediate)``."""
        return self.activation(self.dense(hidden_states))


class FlaxBertOutput(nn.Module):
    """Intermediate -> hidden projection, dropout, LayerNorm of the residual sum."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        self.dense = nn.Dense(c.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                              kernel_init=normal_init(c))
        self.LayerNorm = layer_norm(c, self.param_dtype)
        self.dropout = nn.Dropout(rate=c.hidden_dropout_prob)

    def __call__(self, hidden_states, attention_output, deterministic: bool = True):
        """``LayerNorm(dropout(dense(hidden_states)) + attention_output)``: ``(batch, seq, hidden)``."""
        hidden_states = self.dropout(self.dense(hidden_states), deterministic=deterministic)
        return self.LayerNorm(hidden_states + attention_output).astype(self.dtype)


class FlaxBertLayer(nn.Module):
    """Self-attention, optional cross-attention (``config.add_cross_attention``), feed-forward."""

    config: BertConfig
    attn_implementation: str = "sdpa"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        kw = dict(attn_implementation=self.attn_implementation, dtype=self.dtype, param_dtype=self.param_dtype)
        self.attention = FlaxBertAttention(c, **kw)
        if c.add_cross_attention:
            self.crossattention = FlaxBertAttention(c, is_cross_attention=True, **kw)
        self.intermediate = FlaxBertIntermediate(c, dtype=self.dtype, param_dtype=self.param_dtype)
        self.output = FlaxBertOutput(c, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, hidden_states, attention_bias=None, head_mask=None, encoder_hidden_states=None,
                 encoder_attention_bias=None, past_key_value=None, output_attentions: bool = False,
                 deterministic: bool = True, init_cache: bool = False):
        """One layer (positional arguments: ``nn.remat`` marks the last three static).

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias / encoder_attention_bias: additive biases for self- and cross-attention.
            head_mask: ``(1, heads, 1, 1)`` for this layer (applies to both attentions), or None.
            encoder_hidden_states: ``(batch, enc_len, hidden)``; cross-attention runs when given
                (or when its keys/values are in ``past_key_value``).
            past_key_value: ``(key, value)`` or ``(key, value, cross_key, cross_value)`` in the torch layout.
            output_attentions / deterministic / init_cache: see :class:`FlaxBertSelfAttention`.

        Returns:
            ``(hidden (batch, q_len, hidden), self_probs | None, cross_probs | None, present key/values)``.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        attention_output, self_probs, present = self.attention(
            hidden_states, attention_bias, head_mask, None, self_past, output_attentions,
            deterministic=deterministic, init_cache=init_cache)
        cross_probs = None
        cross_past = past_key_value[2:4] if past_key_value is not None and len(past_key_value) == 4 else None
        if encoder_hidden_states is not None or cross_past is not None:
            if not self.config.add_cross_attention:
                raise ConfigError("encoder_hidden_states were given but the config has add_cross_attention=False; "
                                  "set add_cross_attention=True to build cross-attention layers")
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output, encoder_attention_bias, head_mask, encoder_hidden_states, cross_past,
                output_attentions, deterministic=deterministic)
            present = present + cross_present
        hidden_states = self.output(self.intermediate(attention_output), attention_output,
                                    deterministic=deterministic)
        return hidden_states, self_probs, cross_probs, present


class _FlaxBertScanLayer(FlaxBertLayer):
    """``FlaxBertLayer`` with the ``(carry, x) -> (carry, y)`` signature ``nn.scan`` needs."""

    def __call__(self, hidden_states, head_mask, attention_bias, encoder_hidden_states, encoder_attention_bias,
                 output_attentions, deterministic, init_cache, output_hidden_states):
        new_hidden, self_probs, cross_probs, _ = super().__call__(
            hidden_states, attention_bias, head_mask, encoder_hidden_states, encoder_attention_bias, None,
            output_attentions, deterministic, init_cache)
        # Stacked per-layer outputs cost memory: emit the layer inputs only when asked.
        return new_hidden, (hidden_states if output_hidden_states else None, self_probs, cross_probs)


class _FlaxBertLayerCollection(nn.Module):
    """The unscanned stack: layers named ``"0"`` .. ``"N-1"`` (so paths read ``layer/3/attention``)."""

    config: BertConfig
    attn_implementation: str = "sdpa"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    def setup(self):
        cls = nn.remat(FlaxBertLayer, static_argnums=_STATIC_ARGNUMS) if self.gradient_checkpointing else FlaxBertLayer
        self.layers = [cls(self.config, self.attn_implementation, self.dtype, self.param_dtype, name=str(i))
                       for i in range(self.config.num_hidden_layers)]

    def __call__(self, hidden_states, attention_bias, head_mask, encoder_hidden_states, encoder_attention_bias,
                 past_key_values, output_attentions, deterministic, init_cache):
        """Run every layer; returns ``(hidden, per-layer inputs, self probs, cross probs, presents)`` (tuples)."""
        inputs, self_probs, cross_probs, presents = [], [], [], []
        for i, layer in enumerate(self.layers):
            inputs.append(hidden_states)
            hidden_states, probs, cross, present = layer(
                hidden_states, attention_bias, None if head_mask is None else head_mask[i],
                encoder_hidden_states, encoder_attention_bias,
                None if past_key_values is None else past_key_values[i], output_attentions, deterministic,
                init_cache)
            self_probs.append(probs)
            cross_probs.append(cross)
            presents.append(present)
        return hidden_states, tuple(inputs), tuple(self_probs), tuple(cross_probs), tuple(presents)


class FlaxBertEncoder(nn.Module):
    """The stack of ``num_hidden_layers`` blocks at ``encoder/layer``.

    Attributes:
        config: model config.
        attn_implementation: ``"sdpa"`` or ``"eager"`` (see :class:`FlaxBertSelfAttention`).
        dtype / param_dtype: compute and parameter dtypes.
        gradient_checkpointing: recompute each layer's activations in the backward pass (``nn.remat``).
        scan_layers: run the layers with ``nn.scan`` (one compiled layer; stacked parameters).
    """

    config: BertConfig
    attn_implementation: str = "sdpa"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False
    scan_layers: bool = False

    def setup(self):
        if self.scan_layers:
            body = _FlaxBertScanLayer
            if self.gradient_checkpointing:
                body = nn.remat(body, static_argnums=_SCAN_STATIC_ARGNUMS)
            scanned = nn.scan(body, variable_axes={"params": 0, "cache": 0},
                              split_rngs={"params": True, "dropout": True},
                              in_axes=(0,) + (nn.broadcast,) * 7,
                              length=self.config.num_hidden_layers)
            self.layer = scanned(self.config, self.attn_implementation, self.dtype, self.param_dtype)
        else:
            self.layer = _FlaxBertLayerCollection(self.config, self.attn_implementation, self.dtype,
                                                 self.param_dtype, gradient_checkpointing=self.gradient_checkpointing)

    def __call__(self, hidden_states, attention_bias=None, head_mask=None, encoder_hidden_states=None,
                 encoder_attention_bias=None, past_key_values=None, use_cache: bool = False,
                 output_attentions: bool = False, output_hidden_states: bool = False, *,
                 deterministic: bool = True, init_cache: bool = False):
        """Run every layer.

        Args:
            hidden_states: ``(batch, q_len, hidden)`` embeddings.
            attention_bias / encoder_attention_bias: see :class:`FlaxBertLayer`.
            head_mask: ``(num_layers, 1, heads, 1, 1)`` or None.
            past_key_values / use_cache: per-layer key/values in the torch layout, and whether to return
                the updated ones (unscanned layers only; the Flax cache is the ``cache`` collection).
            output_attentions / output_hidden_states / deterministic / init_cache: switches.

        Returns:
            :class:`BaseModelOutputWithPastAndCrossAttentions`; ``hidden_states`` holds the embeddings
            and every layer's output (``num_layers + 1``) when requested.
        """
        n = self.config.num_hidden_layers
        presents = None
        if self.scan_layers:
            if past_key_values is not None or use_cache:
                raise ConfigError("scan_layers keeps the cache in the 'cache' collection (init_cache); "
                                  "past_key_values / use_cache need scan_layers=False")
            hidden, (inputs, probs, cross) = self.layer(
                hidden_states, head_mask, attention_bias, encoder_hidden_states, encoder_attention_bias,
                output_attentions, deterministic, init_cache, output_hidden_states)
            inputs = tuple(inputs[i] for i in range(n)) if inputs is not None else ()
            probs = tuple(probs[i] for i in range(n)) if probs is not None else (None,) * n
            cross = tuple(cross[i] for i in range(n)) if cross is not None else (None,) * n
        else:
            hidden, inputs, probs, cross, presents = self.layer(
                hidden_states, attention_bias, head_mask, encoder_hidden_states, encoder_attention_bias,
                past_key_values, output_attentions, deterministic, init_cache)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden,
            past_key_values=presents if use_cache else None,
            hidden_states=inputs + (hidden,) if output_hidden_states else None,
            attentions=probs if output_attentions else None,
            cross_attentions=cross if output_attentions and encoder_hidden_states is not None else None)
