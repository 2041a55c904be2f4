"""Register the ``bert_core`` output classes as torch pytree nodes.

``torch.compile``, ``torch.export`` and FSDP flatten a module's outputs; once
registered, an output object flattens into its fields (``None`` fields included,
so the structure is fixed) and is rebuilt unchanged.
"""

from __future__ import annotations

from torch.utils import _pytree as pytree

from bert_core.outputs import OUTPUT_CLASSES

__all__ = ["register_output_pytrees"]


def _register(cls: type) -> None:
    names = cls.field_names()

    def flatten(output):
        return [getattr(output, n) for n in names], list(names)

    def flatten_with_keys(output):
        return [(pytree.GetAttrKey(n), getattr(output, n)) for n in names], list(names)

    def unflatten(values, context):
        return cls(**dict(zip(context, values)))

    pytree.register_pytree_node(cls, flatten, unflatten, flatten_with_keys_fn=flatten_with_keys,
                                serialized_type_name=f"{cls.__module__}.{cls.__qualname__}")


def register_output_pytrees() -> None:
    """Register every class of ``bert_core.outputs.OUTPUT_CLASSES`` once (idempotent)."""
    for cls in OUTPUT_CLASSES:
        if cls not in pytree.SUPPORTED_NODES:
            _register(cls)
