"""SavedModel export for serving: raw strings in, the head's outputs out, the tokenizer inside the graph.

The exported directory is a plain TensorFlow SavedModel (TF Serving, ``tf.saved_model.load``).
Its graph uses tensorflow-text ops, so a process that loads it must register them first::

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers RegexSplitWithOffsets, NormalizeUTF8, FastWordpiece...)
    served = tf.saved_model.load(path)
    served.signatures["serving_default"](text=tf.constant(["Hello [MASK]!"]))

Signatures: ``serving_default(text)`` and ``serving_pairs(text, text_pair)``
(``(batch,)`` strings, any batch size); both return the head's output fields
(``logits``; ``last_hidden_state`` + ``pooler_output``; ``start_logits`` + ``end_logits``; ...)
in float32, plus the ``input_ids`` and ``attention_mask`` the tokenizer produced
(to find ``[MASK]`` positions or skip padding). Without a tokenizer the signature
takes ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64) instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from bert_core._io import atomic_directory
from bert_core.errors import ConfigError
from bert_core.heads import head_for_class_name

__all__ = ["export_savedmodel", "SERVING_SIGNATURES"]

#: Signature names written by :func:`export_savedmodel`.
SERVING_SIGNATURES = ("serving_default", "serving_pairs")


class _Serving(tf.Module):
    """Tracks the model's variables and holds the serving functions.

    The Keras layers themselves stay untracked (as ``keras.export.ExportArchive`` does): tracking
    them would make SavedModel trace their own default signatures from whatever they last saw.
    """

    def __init__(self, model, tokenizer, fields: tuple[str, ...]) -> None:
        super().__init__(name="tribert_serving")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "tokenizer", tokenizer)
        self._fields = fields
        self.model_variables = list(model.variables)

    def run(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = self.model(**inputs, return_dict=True, training=False)
        result = {}
        for name in self._fields:
            value = getattr(outputs, name, None)
            if value is not None:
                result[name] = tf.cast(value, tf.float32)
        result["input_ids"] = tf.cast(inputs["input_ids"], tf.int64)
        result["attention_mask"] = tf.cast(inputs["attention_mask"], tf.int64)
        return result

    def text(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.run(self.tokenizer(text))

    def pairs(self, text: tf.Tensor, text_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.run(self.tokenizer(text, text_pair))

    def ids(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, token_type_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.run({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids})


def _signatures(module: _Serving) -> dict[str, Any]:
    strings = tf.TensorSpec([None], tf.string, name="text")
    if module.tokenizer is None:
        ids = [tf.TensorSpec([None, None], tf.int64, name=n) for n in ("input_ids", "attention_mask", "token_type_ids")]
        return {"serving_default": tf.function(module.ids, input_signature=ids)}
    return {
        "serving_default": tf.function(module.text, input_signature=[strings]),
        "serving_pairs": tf.function(module.pairs, input_signature=[strings, tf.TensorSpec([None], tf.string, name="text_pair")]),
    }


def export_savedmodel(model, tokenizer, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model`` (with ``tokenizer`` in the graph) as a SavedModel in ``directory``, atomically.

    Args:
        model: a ``bert_tf`` model (any head but multiple choice).
        tokenizer: a :class:`bert_tf.TFBertTokenizer` (its settings: ``max_length``, padding, ... are
            frozen into the graph), or ``None`` for a signature over token ids.
        directory: the SavedModel directory; it is assembled in a temporary sibling and renamed.
        overwrite: replace an existing ``directory``.

    Returns:
        ``directory`` as a ``Path``.

    Raises:
        ConfigError: an unsupported head, or ``directory`` exists and ``overwrite`` is False.
    """
    head = head_for_class_name(type(model).__name__)
    if head is None or head.name == "multiple-choice":
        raise ConfigError(f"export_savedmodel serves one text (or pair) per row; {type(model).__name__} is not "
                          f"supported (multiple choice needs (batch, choices) inputs: export it with tf.saved_model.save)")
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise ConfigError(f"SavedModel directory {directory} already exists; pass overwrite=True to replace it")
    fields = head.logits + (("pooler_output",) if head.name == "base" else ())
    module = _Serving(model, tokenizer, tuple(dict.fromkeys(fields)))
    with atomic_directory(directory) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=_signatures(module))
    return directory
