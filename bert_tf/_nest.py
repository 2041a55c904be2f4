"""Make the ``bert_core`` output dataclasses nests that TensorFlow and Keras can trace through.

``tf.function`` (and XLA) may only return tensors or nests of them; Keras
functional models flatten a layer's outputs with ``optree`` in the ``"keras"``
namespace and refuse ``None`` leaves. Registering the output classes with both
lets a model return its usual output object eagerly, inside ``tf.function`` and
on symbolic Keras inputs (``bert_torch`` / ``bert_flax`` register the same
classes with their own frameworks).
"""

from __future__ import annotations

import dataclasses

from bert_core.outputs import OUTPUT_CLASSES

__all__ = ["register_output_nests"]

_done = False


def _tf_flatten(self):
    # All fields, None included: tf.nest keeps None leaves, so the structure is fixed per class.
    names = tuple(f.name for f in dataclasses.fields(self))
    return names, tuple(getattr(self, n) for n in names)


def _tf_unflatten(cls, names, components):
    return cls(**dict(zip(names, components)))


def _keras_flatten(output):
    # Keras symbolic outputs must all be tensors: flatten only the fields that are set.
    names = tuple(output.keys())
    return [getattr(output, n) for n in names], names, list(names)


def _keras_unflatten_for(cls):
    def unflatten(names, children):
        return cls(**dict(zip(names, children)))

    return unflatten


def register_output_nests() -> None:
    """Register every output class with ``tf.nest`` (``__tf_flatten__``) and Keras' optree namespace; idempotent."""
    global _done
    if _done:
        return
    import optree

    for cls in OUTPUT_CLASSES:
        cls.__tf_flatten__ = _tf_flatten
        cls.__tf_unflatten__ = classmethod(_tf_unflatten)
        try:
            optree.register_pytree_node(cls, _keras_flatten, _keras_unflatten_for(cls), namespace="keras")
        except ValueError:  # already registered by an earlier import under another module object
            pass
    _done = True
