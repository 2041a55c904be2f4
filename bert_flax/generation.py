"""Cached decoding for ``FlaxBertForCausalLM``, as transformers 4.x Flax did it.

The KV cache is the linen ``cache`` collection: per causal self-attention
``cached_key`` / ``cached_value`` ``(batch, heads, max_length, head_dim)`` and
``cache_index`` (tokens written so far). ``init_cache`` creates it;
passing it as ``past_key_values`` makes the call write this step's keys and
values at ``cache_index`` and return the updated cache in
``output.past_key_values``. The attention mask then covers all ``max_length``
positions (``prepare_inputs_for_generation`` builds it).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import traverse_util
from flax.core import unfreeze
from jax import lax

from bert_core.errors import ConfigError

__all__ = ["FlaxCacheMixin", "FlaxGenerationMixin", "cache_index", "cache_length", "greedy_search"]


def _leaves_named(cache: Mapping, name: str) -> list:
    return [v for k, v in traverse_util.flatten_dict(unfreeze(cache)).items() if k[-1] == name]


def cache_index(cache: Mapping):
    """Number of tokens already written into ``cache`` (a traced int32 scalar)."""
    index = _leaves_named(cache, "cache_index")
    if not index:
        raise ValueError("past_key_values is not a cache made by init_cache (no cache_index found)")
    return jnp.ravel(index[0])[0]  # scanned layers stack one index per layer; all are equal


def cache_length(cache: Mapping) -> int:
    """``max_length`` of ``cache``: the number of key positions it holds."""
    return int(_leaves_named(cache, "cached_key")[0].shape[-2])


class FlaxCacheMixin:
    """``init_cache``, ``prepare_inputs_for_generation`` and ``update_inputs_for_generation``: the wrappers
    of the heads that take ``past_key_values`` (``Head.decoder``)."""

    def init_cache(self, batch_size: int, max_length: int) -> dict:
        """An empty KV cache for ``batch_size`` sequences of up to ``max_length`` tokens.

        Returns:
            The ``cache`` collection (a dict tree) to pass as ``past_key_values``.
        """
        if not self.config.is_decoder:
            raise ConfigError(f"{type(self).__name__}.init_cache needs config.is_decoder=True "
                              f"(only causal self-attention is cached)")
        input_ids = jnp.ones((batch_size, max_length), dtype="i4")
        inputs = self._dummy_inputs((batch_size, max_length))
        inputs["input_ids"] = input_ids
        variables = jax.eval_shape(
            lambda: self.module.init(jax.random.PRNGKey(0), **inputs, init_cache=True, return_dict=False))
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), unfreeze(variables["cache"]))

    def prepare_inputs_for_generation(self, input_ids, max_length: int, attention_mask=None,
                                      encoder_hidden_states=None, encoder_attention_mask=None) -> dict[str, Any]:
        """Cache, a ``(batch, max_length)`` attention mask and position ids for the prompt ``input_ids``.

        With a (left-)padded ``attention_mask`` the position ids count real tokens only.
        """
        batch, seq = input_ids.shape
        past_key_values = self.init_cache(batch, max_length)
        extended = jnp.ones((batch, max_length), dtype="i4")
        if attention_mask is not None:
            attention_mask = jnp.asarray(attention_mask, dtype="i4")
            position_ids = jnp.maximum(attention_mask.cumsum(axis=-1) - 1, 0)
            extended = lax.dynamic_update_slice(extended, attention_mask, (0, 0))
        else:
            position_ids = jnp.broadcast_to(jnp.arange(seq, dtype="i4")[None, :], (batch, seq))
        kwargs = {"past_key_values": past_key_values, "attention_mask": extended, "position_ids": position_ids}
        if encoder_hidden_states is not None:
            kwargs["encoder_hidden_states"] = encoder_hidden_states
            kwargs["encoder_attention_mask"] = encoder_attention_mask
        return kwargs

    def update_inputs_for_generation(self, model_outputs, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Carry the updated cache forward and advance the position ids by one token."""
        model_kwargs["past_key_values"] = model_outputs.past_key_values
        model_kwargs["position_ids"] = model_kwargs["position_ids"][:, -1:] + 1
        return model_kwargs


class FlaxGenerationMixin(FlaxCacheMixin):
    """The causal LM's generation surface: the cache methods, used by :func:`greedy_search`."""


def greedy_search(model, input_ids, max_length: int, attention_mask=None, params=None, **encoder_inputs):
    """Greedy decoding with the KV cache: append the arg-max token until ``max_length`` tokens.

    Args:
        model: a ``FlaxBertForCausalLM``.
        input_ids: ``(batch, prompt_len)`` prompt.
        max_length: total length of the returned sequences.
        attention_mask: ``(batch, prompt_len)`` prompt mask (left padding allowed).
        **encoder_inputs: ``encoder_hidden_states`` / ``encoder_attention_mask`` for cross-attention.

    Returns:
        ``(batch, max_length)`` int32 token ids (prompt first).
    """
    input_ids = jnp.asarray(input_ids, dtype="i4")
    kwargs = model.prepare_inputs_for_generation(input_ids, max_length, attention_mask, **encoder_inputs)
    sequences, step_ids = input_ids, input_ids
    while sequences.shape[1] < max_length:
        out = model(step_ids, params=params, **kwargs)
        step_ids = jnp.argmax(out.logits[:, -1], axis=-1).astype("i4")[:, None]
        sequences = jnp.concatenate([sequences, step_ids], axis=1)
        kwargs = model.update_inputs_for_generation(out, kwargs)
    return sequences
