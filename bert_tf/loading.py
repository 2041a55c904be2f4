"""``from_pretrained`` / ``save_pretrained`` through ``conversion`` (the canonical safetensors checkpoint).

No torch is needed: the checkpoint is memory-mapped by ``conversion``. The
model is built with its variables left uninitialised (``keras.StatelessScope``),
so no random weights are drawn and no memory is taken; each variable is then
created once from its checkpoint tensor, largest first, read block by block
(``conversion.safetensors_io.read_blocks`` drops each block's file pages once
copied; dense kernels transposed). Peak memory stays at one copy of the weights
plus the largest variable's staging buffer (``tests/test_load_memory.py``).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from conversion import match_state, resolve_checkpoint, save_checkpoint
from conversion.safetensors_io import read_blocks

from .attention import ATTN_IMPLEMENTATIONS

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
    return _assign(model, tensors, (), ignore_mismatched_sizes=ignore_mismatched_sizes, source=source)


#: Keys a model with ``tie_word_embeddings=False`` owns, but that a checkpoint may carry only under the key
#: they shared in ``transformers`` 4.x (whose decoder bias *was* ``cls.predictions.bias``, tied or not).
_SHARED_IN_4X = {"cls.predictions.decoder.bias": "cls.predictions.bias"}


def _assign(model, tensors: Mapping[str, np.ndarray], deferred, *, ignore_mismatched_sizes: bool, source: str):
    """:func:`assign_canonical`, creating the ``deferred`` (uninitialised) variables from the checkpoint."""
    weights = model.canonical_weights()
    model_shapes = {k: tuple(v.shape)[::-1] if t else tuple(v.shape) for k, (v, t) in weights.items()}
    tied = model.tied_keys()
    for key, target in tied.items():
        model_shapes[key] = model_shapes[target]
    fallbacks = {k: v for k, v in _SHARED_IN_4X.items() if k in weights and v in weights}
    shapes = tensors.shapes() if hasattr(tensors, "shapes") else {k: tuple(np.shape(v)) for k, v in tensors.items()}
    report = match_state(shapes, model_shapes, tied={**tied, **fallbacks},
                         ignore_mismatched_sizes=ignore_mismatched_sizes, source=source)
    for key, shared in fallbacks.items():
        if key not in report.assignments and shared in report.assignments:
            report.assignments[key] = report.assignments[shared]  # the 4.x checkpoint's one tensor, copied
    # Largest first: a staging buffer then fits in the space a smaller one freed, never beside the whole model.
    order = sorted((t for t in report.assignments if t not in tied),  # tied keys share their target's storage
                   key=lambda t: -int(np.prod(model_shapes[t])))
    pending = {id(v) for v in deferred}
    for target in order:
        variable, transpose = weights[target]
        if id(variable) in pending:
            _initialize_from(variable, _staged(tensors, report.assignments[target], variable, transpose))
        elif _writable_in_place(variable):
            for index, block in read_blocks(tensors, report.assignments[target]):
                _assign_block(variable.value, index, block, transpose)
        else:
            variable.assign(_staged(tensors, report.assignments[target], variable, transpose))
    for variable in deferred:  # missing or mismatched weights, seed states: their own initialisers
        if variable._value is None:
            variable._deferred_initialize()
    return report


def _build_deferred(model_class: type, config: BertConfig, **kwargs):
    """``(model, variables)``: the model built with every variable left uninitialised (no memory, no random draw).

    Keras defers the variables created in a ``StatelessScope(initialize_variables=False)`` and
    registers them for a later ``initialize_all_variables``; they are taken off that global list
    here, so :func:`_assign` creates each one from the checkpoint (or its own initialiser) and
    no other scope initialises them again. Keras versions without this mechanism build normally.
    """
    from keras.src.backend.common import global_state

    if not hasattr(keras.Variable, "_deferred_initialize"):  # pragma: no cover - other Keras versions
        return model_class(config, **kwargs), []
    registry = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    start = len(registry)
    with keras.StatelessScope(initialize_variables=False):
        model = model_class(config, **kwargs)
    deferred = registry[start:]
    del registry[start:]
    return model, deferred


def _staged(tensors: Mapping[str, np.ndarray], key: str, variable: keras.Variable, transpose: bool) -> np.ndarray:
    """The variable's value as a numpy array of its shape and dtype, filled block by block from ``tensors[key]``."""
    array = np.empty(tuple(variable.shape), dtype=variable.dtype)
    canonical = array.T if transpose else array
    for index, block in read_blocks(tensors, key):
        canonical[index] = block
    return array


def _initialize_from(variable: keras.Variable, array: np.ndarray) -> None:
    """Create a deferred variable with ``array`` as its value (Keras' own deferred-initialisation path)."""
    variable._initializer = lambda shape, dtype: array
    variable._deferred_initialize()


def _writable_in_place(variable: keras.Variable) -> bool:
    """Whether ``variable`` is one plain ``tf.Variable`` whose buffer a block assign can write.

    A distributed (mirrored) variable's handle is one replica's, and under an autocast scope
    ``.value`` is a cast copy: those are assigned whole, through the variable.
    """
    resource = variable.value
    return isinstance(resource, tf.Variable) and not isinstance(resource, tf.distribute.DistributedValues)


def _assign_block(resource: tf.Variable, index: Any, block: np.ndarray, transpose: bool) -> None:
    """``resource[index] = block`` (``resource.T[index]`` for a transposed kernel), in place."""
    block = block.astype(resource.dtype.as_numpy_dtype, copy=False)
    if index is ...:  # the whole tensor
        resource.assign(block.T if transpose else block)
        return
    # The raw op writes into the variable's buffer; `resource[rows].assign` would first read the whole
    # variable, and that live read makes the op copy all of it (copy-on-write) for every block.
    rows = [index.start, index.stop]
    if transpose:  # canonical rows are the kernel's columns
        tf.raw_ops.ResourceStridedSliceAssign(ref=resource.handle, begin=[0, rows[0]], end=[0, rows[1]],
                                              strides=[1, 1], value=block.T, begin_mask=1, end_mask=1)
    else:
        tf.raw_ops.ResourceStridedSliceAssign(ref=resource.handle, begin=rows[:1], end=rows[1:], strides=[1],
                                              value=block)


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
    attn_implementation: str | None = None,
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
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``; see ``set_attn_implementation``.
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
    if attn_implementation not in (None, *ATTN_IMPLEMENTATIONS):
        raise ConfigError(f"attn_implementation {attn_implementation!r} is not supported; "
                          f"use one of {list(ATTN_IMPLEMENTATIONS)}")
    init_args = set(inspect.signature(model_class.__init__).parameters) - {"self", "config", "kwargs"}
    model_kwargs = {k: config_overrides.pop(k) for k in list(config_overrides) if k in init_args}
    checkpoint = resolve_checkpoint(name_or_path, config=config, revision=revision, cache_dir=cache_dir,
                                    local_files_only=local_files_only, token=token, **config_overrides)
    policy = resolve_dtype(dtype, checkpoint.config, checkpoint.tensors)
    model, deferred = _build_deferred(model_class, checkpoint.config, dtype=policy, **model_kwargs)
    report = _assign(model, checkpoint.tensors, deferred, ignore_mismatched_sizes=ignore_mismatched_sizes,
                     source=checkpoint.source)
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    name = type(model).__name__
    if report.missing_keys or report.unexpected_keys or report.mismatched_keys:
        logger.warning(report.summary(name))
    else:
        logger.info(report.summary(name))
    return (model, report.as_dict()) if output_loading_info else model


def canonical_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights as canonical ``{key: numpy array}`` (torch layout), tied keys left out.

    With ``tie_word_embeddings=False`` the LM head's own ``decoder`` (weight and bias) is written
    beside ``cls.predictions.bias``, as ``transformers`` 5.x writes it.
    """
    tensors = {}
    for key, (variable, transpose) in model.canonical_weights().items():
        array = keras.ops.convert_to_numpy(variable)
        tensors[key] = np.ascontiguousarray(array.T if transpose else array)
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
