"""Register the ``bert_core`` output classes as JAX pytrees, so outputs pass through ``jax.jit``."""

from __future__ import annotations

import dataclasses

import jax

from bert_core.outputs import OUTPUT_CLASSES

__all__ = ["register_output_pytrees"]

_registered: set[type] = set()


def register_output_pytrees() -> None:
    """Register every class of ``bert_core.outputs.OUTPUT_CLASSES`` (idempotent).

    All fields are data (``None`` fields are empty subtrees), so an output built
    inside ``jax.jit`` comes back as the same class with arrays in its fields.
    """
    for cls in OUTPUT_CLASSES:
        if cls in _registered:
            continue
        names = [f.name for f in dataclasses.fields(cls)]
        try:
            jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])
        except ValueError as exc:  # already registered by an earlier import of a reloaded module
            if "Duplicate" not in str(exc):
                raise
        _registered.add(cls)
