"""The transformer stack: ``BertIntermediate``, ``BertOutput``, ``BertLayer``, ``BertEncoder``."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bert_core.config import BertConfig
from bert_core.outputs import BaseModelOutputWithPastAndCrossAttentions

from .activations import get_activation
from .attention import BertAttention

__all__ = ["BertIntermediate", "BertOutput", "BertLayer", "BertEncoder"]

#: One layer's cache: ``(self_key, self_value)`` or ``(self_key, self_value, cross_key, cross_value)``,
#: each ``(batch, heads, seq, head_dim)`` (the transformers 4.x legacy format).
LayerCache = tuple[torch.Tensor, ...]


class BertIntermediate(nn.Module):
    """The feed-forward expansion: ``act(dense(x))``, ``(batch, seq, hidden) -> (batch, seq, intermediate)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    """The feed-forward contraction, dropout, residual add and LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(dropout(dense(hidden_states)) + input_tensor)`` -> ``(batch, seq, hidden)``."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    """Self-attention, optional cross-attention (``config.add_cross_attention``), feed-forward."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        if config.add_cross_attention:
            self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_bias: torch.Tensor | None = None,
        past_key_value: LayerCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, LayerCache]:
        """One layer.

        Args:
            hidden_states: ``(batch, q_len, hidden)``.
            attention_bias / encoder_attention_bias: additive biases for self- and cross-attention.
            head_mask: ``(1, heads, 1, 1)`` for this layer (applies to both attentions), or None.
            encoder_hidden_states: ``(batch, enc_len, hidden)``; cross-attention runs when given
                (or when its keys/values are cached) and the layer has ``crossattention``.
            past_key_value: this layer's cache (see :data:`LayerCache`).

        Returns:
            ``(hidden (batch, q_len, hidden), self_probs | None, cross_probs | None, present cache)``.
        """
        self_past = past_key_value[:2] if past_key_value is not None else None
        attention_output, self_probs, present = self.attention(
            hidden_states, attention_bias, head_mask, past_key_value=self_past, output_attentions=output_attentions
        )
        cross_probs = None
        cross_past = past_key_value[2:4] if past_key_value is not None and len(past_key_value) == 4 else None
        if hasattr(self, "crossattention") and (encoder_hidden_states is not None or cross_past is not None):
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output, encoder_attention_bias, head_mask, encoder_hidden_states, cross_past,
                output_attentions,
            )
            present = present + cross_present
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, self_probs, cross_probs, present


class BertEncoder(nn.Module):
    """``config.num_hidden_layers`` :class:`BertLayer` s in ``layer`` (paths ``encoder.layer.3...``)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_bias: torch.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Run every layer.

        Args:
            hidden_states: ``(batch, q_len, hidden)`` embeddings.
            head_mask: ``(num_layers, 1, heads, 1, 1)`` or None.
            past_key_values: one :data:`LayerCache` per layer, or None.
            use_cache: return the updated caches.
            Others as :meth:`BertLayer.forward`.

        Returns:
            :class:`BaseModelOutputWithPastAndCrossAttentions`; ``hidden_states`` holds the
            embeddings and every layer's output (``num_layers + 1`` tensors) when requested.
        """
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions and encoder_hidden_states is not None else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.layer):
            args = (
                hidden_states,
                attention_bias,
                head_mask[i] if head_mask is not None else None,
                encoder_hidden_states,
                encoder_attention_bias,
                past_key_values[i] if past_key_values is not None else None,
                output_attentions,
            )
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden_states, self_probs, cross_probs, present = checkpoint(layer, *args, use_reentrant=False)
            else:
                hidden_states, self_probs, cross_probs, present = layer(*args)
            if use_cache:
                presents = presents + (present,)
            if output_attentions:
                all_self = all_self + (self_probs,)
                if all_cross is not None:
                    all_cross = all_cross + (cross_probs,)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=presents,
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )
