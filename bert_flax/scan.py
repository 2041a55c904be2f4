"""Convert parameter (or cache) trees between the scanned and the unscanned layer layout.

Unscanned: ``encoder/layer/<i>/attention/...`` (the checkpoint layout).
Scanned (``scan_layers=True``): ``encoder/layer/attention/...`` with a leading
``num_hidden_layers`` axis on every leaf.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

__all__ = ["scan_to_unscanned_params", "unscanned_to_scan_params"]


def _is_unscanned(layer: Mapping[str, Any]) -> bool:
    return all(k.isdigit() for k in layer)


def _map_encoder_layer(tree: Any, fn) -> Any:
    """Copy of ``tree`` with every ``encoder/layer`` subtree replaced by ``fn(subtree)``."""
    if not isinstance(tree, Mapping):
        return tree
    result = {}
    for key, value in tree.items():
        if key == "encoder" and isinstance(value, Mapping) and "layer" in value:
            value = {**value, "layer": fn(value["layer"])}
        else:
            value = _map_encoder_layer(value, fn)
        result[key] = value
    return result


def scan_to_unscanned_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Split the stacked ``encoder/layer`` leaves into ``encoder/layer/0 .. N-1``.

    A tree that is already unscanned comes back unchanged.
    """
    def split(layer):
        if _is_unscanned(layer):
            return dict(layer)
        n = jax.tree_util.tree_leaves(layer)[0].shape[0]
        return {str(i): jax.tree_util.tree_map(lambda x, i=i: x[i], layer) for i in range(n)}

    return _map_encoder_layer(params, split)


def unscanned_to_scan_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Stack ``encoder/layer/0 .. N-1`` into one ``encoder/layer`` subtree with a leading layer axis."""
    def stack(layer):
        if not _is_unscanned(layer) or not layer:
            return dict(layer)
        ordered = [layer[str(i)] for i in range(len(layer))]
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *ordered)

    return _map_encoder_layer(params, stack)
