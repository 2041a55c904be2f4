"""``from_pretrained`` / ``save_pretrained`` through ``conversion`` (the canonical safetensors checkpoint).

No torch is needed: the checkpoint is memory-mapped by ``conversion`` and every
tensor is assigned straight into its Keras variable (transposed for dense
kernels), so peak memory stays near one copy of the weights plus the model.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from conversion import match_state, resolve_checkpoint, save_checkpoint

__all__ = ["from_pretrained", "save_pretrained", "resolve_dtype", "canonical_tensors", "assign_canonical"]

logger = logging.getLogger("bert_tf")

_POLICIES = ("float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16")
_ALIASES = {"float": "float32", "fp32": "float32", "bf16": "bfloat16", "half": "float16", "fp16": "float16"}


def resolve_dtype(dtype: Any, config: BertConfig | None = None, tensors: Mapping[str, np.ndarray] | None = None) -> str:
    """The Keras dtype policy name for a ``dtype=`` argument.

    None means float32; ``"auto"`` reads ``config.dtype`` / ``config.torch_dtype``, else the
    first floating tensor of the checkpoint. Accepts a policy name (``"mixed_bfloat16"``),
    a ``tf.DType`` or a ``keras.DTypePolicy``.

    Raises:
        ConfigError: an unknown name.
    """
    if dtype is None:
        return "float32"
    if isinstance(dtype, keras.DTypePolicy):
        return dtype.name
    if hasattr(dtype, "name") and not isinstance(dtype, str):  # tf.DType / numpy dtype
        dtype = dtype.name
    if dtype == "auto":
        named = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        if named:
            return resolve_dtype(str(named).replace("torch.", ""))
        for value in (tensors or {}).values():
            if value.dtype.kind == "f" or value.dtype.name == "bfloat16":
                return resolve_dtype(value.dtype.name)
        return "float32"
    name = _ALIASES.get(str(dtype), str(dtype))
    if name not in _POLICIES:
        raise ConfigError(f"dtype {dtype!r} is not supported; use one of {list(_POLICIES)} or 'auto'")
    return name


def assign_canonical(model, tensors: Mapping[str, np.ndarray], *, ignore_mismatched_sizes: bool = False,
                     source: str = ""):
    """Fill ``model``'s variables from canonical ``{key: array}``; returns the :class:`LoadReport`.

    Raises:
        CheckpointError: shapes disagree (unless ``ignore_mismatched_sizes``), naming every key.
    """
    weights = model.canonical_weights()
    model_shapes = {k: tuple(v.shape)[::-1] if t else tuple(v.shape) for k, (v, t) in weights.items()}
    tied = model.tied_keys()
    for key, target in tied.items():
        model_shapes[key] = model_shapes[target]
    shapes = tensors.shapes() if hasattr(tensors, "shapes") else {k: tuple(np.shape(v)) for k, v in tensors.items()}
    report = match_state(shapes, model_shapes, tied=tied, ignore_mismatched_sizes=ignore_mismatched_sizes,
                         source=source)
    for target, source_key in report.assignments.items():
        if target in tied:  # shares storage with its target; the checkpoint's copy is redundant
            continue
        variable, transpose = weights[target]
        array = np.asarray(tensors[source_key])
        array = array.T if transpose else array
        variable.assign(array.astype(variable.dtype, copy=False))
    return report


def from_pretrained(
    model_class: type,
    name_or_path: str | os.PathLike,
    *,
    config: BertConfig | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    dtype: Any = None,
    ignore_mismatched_sizes: bool = False,
    output_loading_info: bool = False,
    **config_overrides: Any,
):
    """Load ``model_class`` from a local directory or hub repo id.

    Args:
        name_or_path: a directory with ``config.json`` + ``model.safetensors`` (or a sharded
            index, or ``pytorch_model.bin``, which needs torch), or a hub id resolved through the
            HF cache (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``HF_HUB_OFFLINE``).
        config: use this config instead of the checkpoint's ``config.json``.
        dtype: a Keras dtype policy: ``"float32"`` (default), ``"bfloat16"``, ``"mixed_bfloat16"``
            (bfloat16 matmuls, float32 variables, LayerNorm and softmax), ``"float16"``, ``"auto"``.
        ignore_mismatched_sizes: re-initialise shape-mismatched weights instead of raising.
        output_loading_info: also return the report dict (missing / unexpected / mismatched / tied keys).
        **config_overrides: config fields to change (``num_labels=3``); the model's own constructor
            arguments (``add_pooling_layer=False``) go to the constructor.

    Returns:
        The model, or ``(model, info)`` with ``output_loading_info``.

    Raises:
        ConfigError / CheckpointError: no config or weights, or shapes that do not fit
            (naming the key and both shapes).
    """
    if config is not None:
        config = config.copy()  # overrides must not leak into the caller's object
    if dtype != "auto":
        resolve_dtype(dtype)  # a bad name fails before any file is read
    init_args = set(inspect.signature(model_class.__init__).parameters) - {"self", "config", "kwargs"}
    model_kwargs = {k: config_overrides.pop(k) for k in list(config_overrides) if k in init_args}
    checkpoint = resolve_checkpoint(name_or_path, config=config, revision=revision, cache_dir=cache_dir,
                                    local_files_only=local_files_only, token=token, **config_overrides)
    policy = resolve_dtype(dtype, checkpoint.config, checkpoint.tensors)
    model = model_class(checkpoint.config, dtype=policy, **model_kwargs)
    report = assign_canonical(model, checkpoint.tensors, ignore_mismatched_sizes=ignore_mismatched_sizes,
                              source=checkpoint.source)
    name = type(model).__name__
    if report.missing_keys or report.unexpected_keys or report.mismatched_keys:
        logger.warning(report.summary(name))
    else:
        logger.info(report.summary(name))
    return (model, report.as_dict()) if output_loading_info else model


def canonical_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights as canonical ``{key: numpy array}`` (torch layout), tied keys left out.

    With ``tie_word_embeddings=False`` the decoder bias is written too, as ``transformers`` does.
    """
    tensors = {}
    for key, (variable, transpose) in model.canonical_weights().items():
        array = keras.ops.convert_to_numpy(variable)
        tensors[key] = np.ascontiguousarray(array.T if transpose else array)
    if not model.config.tie_word_embeddings and "cls.predictions.bias" in tensors:
        tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"].copy()
    return tensors


def save_pretrained(model, save_directory: str | os.PathLike, *, max_shard_size: int | str = "5GB") -> None:
    """Write ``config.json`` and the canonical weights into ``save_directory``.

    The keys are those ``transformers`` 5.x writes for the same class: tied
    weights (``cls.predictions.decoder.*``) are left out, ``BertModel`` keys have
    no ``bert.`` prefix; ``architectures`` names the unprefixed class. Files are
    written atomically; above ``max_shard_size`` the weights are sharded with a
    ``model.safetensors.index.json``.

    Raises:
        ConfigError: ``save_directory`` is an existing file.
    """
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"save_pretrained needs a directory, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    save_checkpoint(canonical_tensors(model), directory, max_shard_size=max_shard_size)
    class_name = type(model).__name__
    config = model.config.copy(architectures=[class_name[2:] if class_name.startswith("TF") else class_name])
    config.save_pretrained(directory)
