"""SavedModel export for serving: raw strings in, the head's outputs out, the tokenizer inside the graph.

The exported directory is a plain TensorFlow SavedModel (TF Serving, ``tf.saved_model.load``).
With ``tokenizer_ops="core"`` its graph holds core TensorFlow ops only and loads wherever
``tensorflow`` does (stock TF Serving, the TF C API, Triton's TensorFlow backend). With the
default tensorflow-text tokenizer a process that loads it must register those ops first::

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers RegexSplitWithOffsets, NormalizeUTF8, FastWordpiece...)
    served = tf.saved_model.load(path)
    served.signatures["serving_default"](text=tf.constant(["Hello [MASK]!"]))

Signatures: ``serving_default(text)`` and ``serving_pairs(text, text_pair)``
(``(batch,)`` strings, any batch size); both return the head's output fields
(``logits``; ``last_hidden_state`` + ``pooler_output``; ``start_logits`` + ``end_logits``; ...)
in float32, plus the ``input_ids`` and ``attention_mask`` the tokenizer produced
(to find ``[MASK]`` positions or skip padding). Without a tokenizer the signatures
take ``input_ids``, ``attention_mask``, ``token_type_ids`` instead: ``serving_default``
in int32 (``transformers`` 4.x's serving dtype) and ``int64_serving`` in int64.

The model-level export paths of ``transformers`` 4.x live here too (the model methods
delegate): :func:`input_signature` (``TFBertPreTrainedModel.input_signature``),
:func:`serving_signatures` (what ``tf.saved_model.save(model, dir)``,
``model.save_pretrained(dir, saved_model=True)`` and ``model.export(dir)`` write) and
:func:`export_keras` (``model.export``). Those SavedModels take token ids only, and need
nothing but TensorFlow to load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from bert_core._io import atomic_directory
from bert_core.errors import ConfigError
from bert_core.heads import head_for_class_name

from .tokenizer import TFBertTokenizer

__all__ = ["export_savedmodel", "export_keras", "input_signature", "serving_signatures", "serving_outputs",
           "SERVING_SIGNATURES", "ID_SIGNATURES"]

#: Signature names written by :func:`export_savedmodel` with a tokenizer.
SERVING_SIGNATURES = ("serving_default", "serving_pairs")
#: Signature names over token ids, with their dtype (``transformers`` 4.x's ``save_pretrained(saved_model=True)``).
ID_SIGNATURES = {"serving_default": tf.int32, "int64_serving": tf.int64}
#: The inputs a serving signature over ids takes (4.x's ``input_signature``).
ID_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def input_signature(model, dtype: tf.DType = tf.int32) -> dict[str, tf.TensorSpec]:
    """``{"input_ids": TensorSpec([None, None], dtype), "attention_mask": ..., "token_type_ids": ...}``.

    ``(batch, seq)`` for every head, ``(batch, choices, seq)`` for multiple choice; int32 by default
    as ``transformers`` 4.x's ``TFBertPreTrainedModel.input_signature``.
    """
    rank = 3 if model.head.choices else 2
    return {name: tf.TensorSpec([None] * rank, dtype, name=name) for name in ID_INPUTS}


def serving_outputs(outputs) -> dict[str, tf.Tensor]:
    """A model output as a signature's ``{field: tensor}``: set tensor fields as they are, tuples of
    tensors (``hidden_states``, ``attentions``) stacked on a new first axis as 4.x's ``serving_output``;
    the decoder cache (tuples of tuples) and ``None`` fields left out."""
    result = {}
    for name, value in outputs.items():
        if isinstance(value, (tuple, list)):
            if value and all(isinstance(v, tf.Tensor) for v in value):
                result[name] = tf.stack(value)
        elif value is not None:
            result[name] = value
    return result


def _id_function(model) -> tf.types.experimental.PolymorphicFunction:
    """The model's forward over an ids dict, one ``tf.function`` per model (traced once per dtype)."""
    function = model.__dict__.get("_tribert_serving")
    if function is None:
        def serving(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return serving_outputs(model(**inputs, return_dict=True, training=False))

        function = tf.function(serving)
        object.__setattr__(model, "_tribert_serving", function)  # not a Keras-tracked attribute
    return function


def serving_signatures(model) -> dict[str, Any]:
    """``{"serving_default": int32 ids -> outputs, "int64_serving": int64 ids -> outputs}`` concrete functions,
    the ``signatures=`` of ``tf.saved_model.save`` (4.x's ``save_pretrained(saved_model=True)`` wrote these two)."""
    function = _id_function(model)
    return {name: function.get_concrete_function(input_signature(model, dtype)) for name, dtype in ID_SIGNATURES.items()}


def default_signature(model):
    """The int32 ``serving_default`` alone: what ``tf.saved_model.save(model, dir)`` finds without ``signatures=``."""
    return _id_function(model).get_concrete_function(input_signature(model, tf.int32))


def export_keras(model, filepath: str | os.PathLike, verbose: bool | None = None) -> None:
    """``model.export(filepath)``: a Keras ``ExportArchive`` with endpoints ``serve`` (int32 ids, also the
    ``serving_default`` signature) and ``int64_serving``; outputs as :func:`serving_outputs`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    function = _id_function(model)
    for name, dtype in (("serve", tf.int32), ("int64_serving", tf.int64)):
        archive.add_endpoint(name, function.python_function, input_signature=[input_signature(model, dtype)])
    archive.write_out(str(filepath), verbose=bool(verbose))


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
        ids = tf.function(module.ids)
        return {name: ids.get_concrete_function(*input_signature(module.model, dtype).values())
                for name, dtype in ID_SIGNATURES.items()}
    return {
        "serving_default": tf.function(module.text, input_signature=[strings]),
        "serving_pairs": tf.function(module.pairs, input_signature=[strings, tf.TensorSpec([None], tf.string, name="text_pair")]),
    }


def export_savedmodel(model, tokenizer, directory: str | os.PathLike, *, overwrite: bool = False,
                      tokenizer_ops: str | None = None) -> Path:
    """Write ``model`` (with ``tokenizer`` in the graph) as a SavedModel in ``directory``, atomically.

    Args:
        model: a ``bert_tf`` model (any head but multiple choice).
        tokenizer: a :class:`bert_tf.TFBertTokenizer` (its settings: ``max_length``, padding, ... are
            frozen into the graph), or ``None`` for signatures over token ids (``serving_default``: int32,
            ``int64_serving``: int64).
        directory: the SavedModel directory; it is assembled in a temporary sibling and renamed.
        overwrite: replace an existing ``directory``.
        tokenizer_ops: ``"core"`` writes the tokenizer in core TensorFlow ops only (the SavedModel loads
            without tensorflow-text), ``"text"`` with tensorflow-text kernels; ``None`` keeps ``tokenizer.ops``.

    Returns:
        ``directory`` as a ``Path``.

    Raises:
        ConfigError: an unsupported head, an unknown ``tokenizer_ops``, or ``directory`` exists and
            ``overwrite`` is False.
    """
    head = head_for_class_name(type(model).__name__)
    if head is None or head.name == "multiple-choice":
        raise ConfigError(f"export_savedmodel serves one text (or pair) per row; {type(model).__name__} is not "
                          f"supported (multiple choice needs (batch, choices) inputs: export it with tf.saved_model.save)")
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise ConfigError(f"SavedModel directory {directory} already exists; pass overwrite=True to replace it")
    if tokenizer_ops not in (None, "text", "core"):
        raise ConfigError(f"export_savedmodel: tokenizer_ops must be 'text' or 'core', got {tokenizer_ops!r}")
    if tokenizer is not None and tokenizer_ops not in (None, tokenizer.ops):
        tokenizer = TFBertTokenizer.from_config({**tokenizer.get_config(), "ops": tokenizer_ops})
    fields = head.logits + (("pooler_output",) if head.name == "base" else ())
    module = _Serving(model, tokenizer, tuple(dict.fromkeys(fields)))
    with atomic_directory(directory) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=_signatures(module))
    return directory
