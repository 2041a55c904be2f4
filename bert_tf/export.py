"""The TensorFlow targets of ``tribert convert``: ``tf_model.h5`` (4.x layout), ``.keras``, SavedModel.

``conversion.convert`` hands canonical tensors here (``--to tf|keras|savedmodel``).
The ``tf_model.h5`` is written with h5py alone, in the layout ``transformers`` 4.x
``TFBert*.save_pretrained`` produced (``tests/fixtures/legacy/*/tf_model.h5``):
one HDF5 group per top-level Keras layer (``bert``, ``mlm___cls``, ``nsp___cls``,
``classifier``, ``qa_outputs``), each with a ``weight_names`` attribute listing
``<model scope>/<layer path>/<leaf>:0`` datasets; the MLM head's group repeats
the embedding weights it shares, as 4.x saved them. Names come from
:mod:`conversion.rules`: the Keras leaves, then ``TF_H5_SPELLINGS`` (``layer_._3``,
``word_embeddings/weight``, ``mlm___cls``), which ``conversion.legacy.read_tf_h5``
undoes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from bert_core._lazy import require
from bert_core.config import BertConfig
from bert_core.errors import CheckpointError, ConfigError
from bert_core.heads import get_head
from conversion.layout import canonical_shapes
from conversion.rules import BASE_MODEL_PREFIX, TF_H5_SPELLINGS, to_framework_key

__all__ = ["write_converted", "write_tf_h5", "KINDS", "KERAS_FILE", "SAVEDMODEL_DIR", "TF_WEIGHTS_FILE"]

TF_WEIGHTS_FILE = "tf_model.h5"
KERAS_FILE = "model.keras"
SAVEDMODEL_DIR = "saved_model"
KINDS = ("tf", "keras", "savedmodel")

#: 4.x's top-level layers, in the order its models created them.
_LAYER_ORDER = ("bert", "nsp___cls", "mlm___cls", "classifier", "qa_outputs")
#: 4.x created the embedding weights in this order (not the canonical one).
_EMBEDDING_ORDER = ("word_embeddings", "token_type_embeddings", "position_embeddings", "LayerNorm.weight",
                    "LayerNorm.bias")
_EMBEDDINGS = f"{BASE_MODEL_PREFIX}.embeddings."


def _model_scope(head: str) -> str:
    """Keras 2's automatic name of the 4.x model class (``TFBertForPreTraining`` -> ``tf_bert_for_pre_training``)."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", get_head(head).tf_class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _legacy_name(canonical: str) -> tuple[str, str, bool]:
    """Canonical key (``bert.``-prefixed) -> (4.x layer, 4.x variable path without scope, transpose)."""
    key, transpose = to_framework_key(canonical, "keras")
    path = key.replace(".", "/")
    for pattern, replacement in TF_H5_SPELLINGS:
        path = re.sub(pattern, replacement, path)
    return path.split("/", 1)[0], path + ":0", transpose


def _ordered(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str) -> list[str]:
    layout = list(canonical_shapes(config, head))
    if head == "base":
        layout = [f"{BASE_MODEL_PREFIX}.{k}" for k in layout]
    embeddings = [k for k in layout if k.startswith(_EMBEDDINGS)]
    embeddings.sort(key=lambda k: next((i for i, e in enumerate(_EMBEDDING_ORDER) if k[len(_EMBEDDINGS):].startswith(e)), 9))
    rank = {k: i for i, k in enumerate(embeddings + [k for k in layout if k not in embeddings])}
    return sorted(tensors, key=lambda k: (rank.get(k, len(rank)), k))


def write_tf_h5(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str, path: str | os.PathLike) -> Path:
    """Write canonical tensors as a `transformers` 4.x ``tf_model.h5`` for ``head``, atomically.

    Raises:
        CheckpointError: a bfloat16 tensor (HDF5 has no bfloat16; convert with ``--dtype``), or a key
            with no conversion rule.
    """
    h5py = require("h5py")
    keras = require("keras")
    path = Path(path)
    scope = _model_scope(head)
    if head == "base":
        tensors = {f"{BASE_MODEL_PREFIX}.{k}": v for k, v in tensors.items()}
    bad = [k for k, v in tensors.items() if np.asarray(v).dtype.name == "bfloat16"]
    if bad:
        raise CheckpointError(f"{path.name} cannot hold bfloat16 tensors ({bad[0]}, ...); "
                              f"pass --dtype float32 or float16")
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    embeddings = []
    for key in _ordered(tensors, config, head):
        layer, name, transpose = _legacy_name(key)
        array = np.asarray(tensors[key])
        entry = (f"{scope}/{name}", array.T if transpose else array)
        layers.setdefault(layer, []).append(entry)
        if key.startswith(_EMBEDDINGS):
            embeddings.append(entry)
    if "mlm___cls" in layers:  # 4.x's MLM head held the embeddings layer, so its group lists them too
        layers["mlm___cls"] += embeddings
    order = [n for n in _LAYER_ORDER if n in layers] + sorted(n for n in layers if n not in _LAYER_ORDER)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = "tensorflow"
            f.attrs["keras_version"] = keras.__version__
            f.attrs["layer_names"] = np.array(order, dtype=h5py.string_dtype())
            for layer in order:
                group = f.create_group(layer)
                group.attrs["weight_names"] = np.array([n for n, _ in layers[layer]], dtype=h5py.string_dtype())
                for name, array in layers[layer]:
                    group.create_dataset(name, data=np.ascontiguousarray(array))
            f.create_group("top_level_model_weights").attrs["weight_names"] = np.array([], dtype=np.float64)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _build_model(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str):
    from . import models
    from .loading import assign_canonical, resolve_dtype

    model = getattr(models, get_head(head).tf_class_name)(config, dtype=resolve_dtype("auto", config, tensors))
    assign_canonical(model, tensors, source="the converted checkpoint")
    return model


def write_converted(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str, out_dir: str | os.PathLike,
                    *, kind: str, tokenizer_ops: str | None = None) -> list[Path]:
    """Write canonical ``tensors`` of ``head`` into ``out_dir`` as ``kind``; returns the written paths.

    Args:
        kind: ``"tf"`` (``tf_model.h5``, the 4.x layout), ``"keras"`` (``model.keras``, for
            ``keras.models.load_model``) or ``"savedmodel"`` (``saved_model/``: the serving SavedModel of
            :func:`bert_tf.export_savedmodel`, with the in-graph tokenizer when ``out_dir`` already holds
            ``vocab.txt`` / ``tokenizer.json``, else over token ids).
        tokenizer_ops: with ``"savedmodel"``: ``"text"`` (tensorflow-text kernels, the default) or ``"core"``
            (core TensorFlow ops only, loads without tensorflow-text).

    Raises:
        ConfigError: an unknown ``kind``, or ``tokenizer_ops`` with a kind other than ``"savedmodel"``.
        CheckpointError: tensors that do not fit the head.
    """
    out_dir = Path(out_dir)
    if tokenizer_ops is not None and kind != "savedmodel":
        raise ConfigError(f"bert_tf.write_converted: tokenizer_ops applies to kind 'savedmodel' only, not {kind!r}")
    if kind == "tf":
        return [write_tf_h5(tensors, config, head, out_dir / TF_WEIGHTS_FILE)]
    if kind == "keras":
        path = out_dir / KERAS_FILE
        _build_model(tensors, config, head).save(path)
        return [path]
    if kind == "savedmodel":
        from .serving import export_savedmodel
        from .tokenizer import TFBertTokenizer

        has_vocab = (out_dir / "vocab.txt").is_file() or (out_dir / "tokenizer.json").is_file()
        tokenizer = TFBertTokenizer.from_pretrained(out_dir) if has_vocab else None
        return [export_savedmodel(_build_model(tensors, config, head), tokenizer, out_dir / SAVEDMODEL_DIR,
                                  tokenizer_ops=tokenizer_ops)]
    raise ConfigError(f"bert_tf.write_converted: kind must be one of {list(KINDS)}, got {kind!r}")


def _convert_writer(kind: str):
    def write(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str, out_dir: str | os.PathLike,
              **options) -> list[Path]:
        return write_converted(tensors, config, head, out_dir, kind=kind, **options)

    write.__doc__ = f"``tribert convert --to {kind}``: :func:`write_converted` with ``kind={kind!r}``."
    return write


#: The ``tribert convert --to`` targets this backend writes: target -> writer(tensors, config, head, out_dir)
#: -> written paths. ``tribert.convert`` looks them up here; this package never imports the command line.
CONVERT_WRITERS = {kind: _convert_writer(kind) for kind in KINDS}
