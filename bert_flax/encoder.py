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
from .attention import FlaxBertAttention
from .embeddings import layer_norm, normal_init

__all__ = ["FlaxBertIntermediate", "FlaxBertOutput", "FlaxBertLayer", "FlaxBertLayerCollection", "FlaxBertEncoder"]

# Positions of (init_cache, deterministic, output_attentions) in FlaxBertLayer.__call__, self = 0;
# the scan body adds output_hidden_states.
_STATIC_ARGNUMS = (6, 7, 8)
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
    """One transformer block: ``attention``, optional ``crossattention``, ``intermediate``, ``output``."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.attention = FlaxBertAttention(c, causal=c.is_decoder, **kw)
        if c.add_cross_attention:
            self.crossattention = FlaxBertAttention(c, causal=False, is_cross_attention=True, **kw)
        self.intermediate = FlaxBertIntermediate(c, **kw)
        self.output = FlaxBertOutput(c, **kw)

    def __call__(self, hidden_states, attention_mask, layer_head_mask=None, encoder_hidden_states=None,
                 encoder_attention_mask=None, init_cache: bool = False, deterministic: bool = True,
                 output_attentions: bool = False):
        """Run the block (positional arguments: ``nn.remat`` marks the last three static).

        Args:
            hidden_states: ``(batch, seq, hidden)``.
            attention_mask: boolean allowed mask ``(batch, 1, 1, k_len)`` (padding).
            layer_head_mask: ``(heads,)`` or ``None``.
            encoder_hidden_states: ``(batch, enc_len, hidden)`` for cross-attention, or ``None``.
            encoder_attention_mask: boolean ``(batch, 1, 1, enc_len)``.
            init_cache / deterministic / output_attentions: see :class:`FlaxBertSelfAttention`.

        Returns:
            ``(hidden (batch, seq, hidden), self-attention probs or None, cross-attention probs or None)``.
        """
        attention_output, self_probs = self.attention(
            hidden_states, attention_mask, layer_head_mask, init_cache=init_cache,
            deterministic=deterministic, output_attentions=output_attentions)
        cross_probs = None
        if encoder_hidden_states is not None:
            if not self.config.add_cross_attention:
                raise ValueError("encoder_hidden_states were given but the config has add_cross_attention=False; "
                                 "set add_cross_attention=True to build cross-attention layers")
            attention_output, cross_probs = self.crossattention(
                attention_output, encoder_attention_mask, layer_head_mask, key_value_states=encoder_hidden_states,
                deterministic=deterministic, output_attentions=output_attentions)
        hidden_states = self.output(self.intermediate(attention_output), attention_output,
                                    deterministic=deterministic)
        return hidden_states, self_probs, cross_probs


class _FlaxBertScanLayer(FlaxBertLayer):
    """``FlaxBertLayer`` with the ``(carry, x) -> (carry, y)`` signature ``nn.scan`` needs."""

    def __call__(self, hidden_states, layer_head_mask, attention_mask, encoder_hidden_states,
                 encoder_attention_mask, init_cache, deterministic, output_attentions, output_hidden_states):
        new_hidden, self_probs, cross_probs = super().__call__(
            hidden_states, attention_mask, layer_head_mask, encoder_hidden_states, encoder_attention_mask,
            init_cache, deterministic, output_attentions)
        # Stacked per-layer outputs cost memory: emit the layer inputs only when asked.
        return new_hidden, (hidden_states if output_hidden_states else None, self_probs, cross_probs)


class FlaxBertLayerCollection(nn.Module):
    """The unscanned stack: layers named ``"0"`` .. ``"N-1"`` (so paths read ``layer/3/attention``)."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    def setup(self):
        cls = nn.remat(FlaxBertLayer, static_argnums=_STATIC_ARGNUMS) if self.gradient_checkpointing else FlaxBertLayer
        self.layers = [cls(self.config, dtype=self.dtype, param_dtype=self.param_dtype, name=str(i))
                       for i in range(self.config.num_hidden_layers)]

    def __call__(self, hidden_states, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask,
                 init_cache, deterministic, output_attentions):
        """Run every layer; returns ``(hidden, per-layer inputs, self probs, cross probs)`` (tuples)."""
        inputs, self_probs, cross_probs = [], [], []
        for i, layer in enumerate(self.layers):
            inputs.append(hidden_states)
            hidden_states, probs, cross = layer(
                hidden_states, attention_mask, None if head_mask is None else head_mask[i],
                encoder_hidden_states, encoder_attention_mask, init_cache, deterministic, output_attentions)
            self_probs.append(probs)
            cross_probs.append(cross)
        return hidden_states, tuple(inputs), tuple(self_probs), tuple(cross_probs)


class FlaxBertEncoder(nn.Module):
    """The stack of ``num_hidden_layers`` blocks at ``encoder/layer``.

    Attributes:
        config: model config.
        dtype / param_dtype: compute and parameter dtypes.
        gradient_checkpointing: recompute each layer's activations in the backward pass (``nn.remat``).
        scan_layers: run the layers with ``nn.scan`` (one compiled layer; stacked parameters).
    """

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False
    scan_layers: bool = False

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.scan_layers:
            body = _FlaxBertScanLayer
            if self.gradient_checkpointing:
                body = nn.remat(body, static_argnums=_SCAN_STATIC_ARGNUMS)
            scanned = nn.scan(body, variable_axes={"params": 0, "cache": 0},
                              split_rngs={"params": True, "dropout": True},
                              in_axes=(0,) + (nn.broadcast,) * 7,
                              length=self.config.num_hidden_layers)
            self.layer = scanned(self.config, **kw)
        else:
            self.layer = FlaxBertLayerCollection(self.config, gradient_checkpointing=self.gradient_checkpointing,
                                                 **kw)

    def __call__(self, hidden_states, attention_mask, head_mask=None, encoder_hidden_states=None,
                 encoder_attention_mask=None, init_cache: bool = False, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False):
        """Run the stack.

        Args:
            hidden_states: ``(batch, seq, hidden)`` embeddings.
            attention_mask: boolean allowed mask ``(batch, 1, 1, k_len)``.
            head_mask: ``(num_layers, heads)`` or ``None``.
            encoder_hidden_states / encoder_attention_mask: cross-attention inputs.
            init_cache / deterministic / output_attentions / output_hidden_states: switches.

        Returns:
            ``(last_hidden (batch, seq, hidden), hidden_states tuple or None, attentions tuple or None,
            cross_attentions tuple or None)``; the tuples have one entry per layer
            (``num_layers + 1`` for hidden states: embeddings first).
        """
        n = self.config.num_hidden_layers
        if self.scan_layers:
            hidden, (inputs, probs, cross) = self.layer(
                hidden_states, head_mask, attention_mask, encoder_hidden_states, encoder_attention_mask,
                init_cache, deterministic, output_attentions, output_hidden_states)
            inputs = tuple(inputs[i] for i in range(n)) if inputs is not None else ()
            probs = tuple(probs[i] for i in range(n)) if probs is not None else (None,) * n
            cross = tuple(cross[i] for i in range(n)) if cross is not None else (None,) * n
        else:
            hidden, inputs, probs, cross = self.layer(
                hidden_states, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask,
                init_cache, deterministic, output_attentions)
        all_hidden = inputs + (hidden,) if output_hidden_states else None
        attentions = probs if output_attentions else None
        cross_attentions = cross if output_attentions and encoder_hidden_states is not None else None
        return hidden, all_hidden, attentions, cross_attentions
