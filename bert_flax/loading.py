"""``from_pretrained`` / ``save_pretrained`` through ``conversion``, and msgpack bytes.

Loading: ``conversion.resolve_checkpoint`` (safetensors, sharded, ``pytorch_model.bin``;
``tf_model.h5`` and ``flax_model.msgpack`` through ``conversion.formats``) ->
``conversion.match_state`` (prefixes, legacy names, tied decoder, shape checks)
-> each canonical tensor is mapped by ``conversion.rules`` to its Flax path and
copied once into a JAX array: staged in a host buffer block by block
(``conversion.safetensors_io.read_blocks`` drops each block's file pages once
copied), largest first, and no random initialisation (the model is built with
``_do_init=False``, shapes from ``jax.eval_shape``), so peak memory stays at one
copy of the weights plus one staging buffer (``tests/test_load_memory.py``).
Saving writes the canonical safetensors layout (no torch needed), so a Flax
model loads in PyTorch, Keras and ``transformers``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from bert_core.config import BertConfig
from bert_core.errors import CheckpointError
from conversion import from_framework, from_framework_key, match_state, resolve_checkpoint, save_checkpoint
from conversion import to_framework_key
from bert_core.heads import TIED_KEYS
from conversion.safetensors_io import read_blocks

from .scan import scan_to_unscanned_params, unscanned_to_scan_params

__all__ = ["from_pretrained", "save_pretrained", "to_bytes", "from_bytes", "canonical_state", "FLAX_WEIGHTS_NAME"]

logger = logging.getLogger("bert_flax")

FLAX_WEIGHTS_NAME = "flax_model.msgpack"


def _tied_keys(model_keys) -> dict[str, str]:
    """The decoder keys that are not parameters of their own here but read another's tensor.

    The decoder bias is always ``cls.predictions.bias``; the decoder weight is the word embeddings
    unless ``tie_word_embeddings=False`` gave the model its own ``cls.predictions.decoder.weight``.
    """
    return {k: v for k, v in TIED_KEYS.items() if v in model_keys and k not in model_keys}


def _canonical_model_shapes(model) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Canonical key -> canonical shape of every parameter of an unscanned model, plus the tied decoder keys;
    and those tied keys."""
    shapes = {}
    for key, shape in model.param_shapes().items():
        canonical, transpose = from_framework_key(key, "flax")
        shapes[canonical] = tuple(reversed(shape)) if transpose else tuple(shape)
    tied = _tied_keys(shapes)
    for key, source in tied.items():
        shapes[key] = shapes[source]
    return shapes, tied


def _decoder_bias_wins(assignments: dict[str, Any]) -> None:
    """Fill ``cls.predictions.bias`` from the checkpoint's ``cls.predictions.decoder.bias`` when it has one.

    The decoder's bias is the one the logits use: in transformers 4.x it *is* ``cls.predictions.bias``
    (same tensor), and in 5.x with ``tie_word_embeddings=False`` it is a separate parameter that
    training updates while ``cls.predictions.bias`` stays unused.
    """
    decoder_bias, bias = "cls.predictions.decoder.bias", TIED_KEYS["cls.predictions.decoder.bias"]
    if decoder_bias in assignments and bias in assignments:
        assignments[bias] = assignments[decoder_bias]


def _params_from(tensors, report, shapes: dict[str, tuple[int, ...]], tied: dict[str, str], param_dtype) -> dict:
    """The parameter tree of ``report``'s assignments, one JAX array per leaf, largest first.

    Each leaf is staged in a host buffer of its canonical shape and ``param_dtype`` (numpy's cast, as
    ``jnp.asarray(array, dtype)`` does; None keeps the checkpoint tensor's dtype), filled block by block,
    and handed to ``jax.device_put``;
    after the transfer the buffer is dropped, so it is reused by the next, smaller leaf.
    """
    # A tied decoder key has no parameter of its own here: it reads its source's.
    _decoder_bias_wins(report.assignments)
    order = sorted((t for t in report.assignments if t not in tied), key=lambda t: -int(np.prod(shapes[t])))
    flat: dict[tuple[str, ...], Any] = {}
    for target in order:
        key, transpose = to_framework_key(target, "flax")
        dtype = param_dtype or _float_dtype(tensors, report.assignments[target])
        canonical = np.empty(shapes[target], dtype=dtype)
        for index, block in read_blocks(tensors, report.assignments[target]):
            canonical[index] = block
        flat[tuple(key.split("."))] = jax.device_put(canonical.T if transpose else canonical)
        del canonical
    return traverse_util.unflatten_dict(flat)


def _float_dtype(tensors, key: str):
    """The checkpoint dtype of ``tensors[key]`` (float16 / bfloat16 / float32; float64 read as float32)."""
    dtype = tensors.dtype(key) if hasattr(tensors, "dtype") else np.asarray(tensors[key]).dtype
    return np.float32 if np.dtype(dtype) == np.float64 else dtype


def _read_weights(name_or_path, config, hub: dict[str, Any], overrides: dict[str, Any]):
    """(config, canonical tensors, source) from safetensors / bin, else tf_model.h5 / flax_model.msgpack."""
    try:
        resolved = resolve_checkpoint(name_or_path, config=config, **hub, **overrides)
        return resolved.config, resolved.tensors, resolved.source
    except CheckpointError as exc:
        if not str(exc).startswith("no weights found"):
            raise
    from conversion.formats import detect_source, read_source

    source = detect_source(name_or_path, **hub)
    if config is None:
        config = BertConfig.from_pretrained(source.directory, **overrides)
    return config, read_source(source, config), str(source.weights)


def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, config: BertConfig | None = None,
                    revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False, token: str | bool | None = None, dtype: Any = None,
                    param_dtype: Any = None, ignore_mismatched_sizes: bool = False,
                    output_loading_info: bool = False, seed: int = 0, gradient_checkpointing: bool = False,
                    scan_layers: bool = False, add_pooling_layer: bool | None = None, attn_implementation: str = "sdpa",
                    _do_init: bool = True, **config_overrides: Any):
    """Load a model from a directory or hub id holding a canonical (or legacy) checkpoint.

    Args:
        pretrained_model_name_or_path: local directory or hub repo id (positional or by keyword).
        config: use this config instead of the checkpoint's ``config.json``.
        revision, cache_dir, local_files_only, token: hub resolution.
        dtype: compute dtype (as transformers 4.x Flax; default float32); it never changes the weights.
        param_dtype: cast the loaded weights to this dtype; None (default) keeps each tensor's checkpoint
            dtype, as transformers 4.x Flax did (a float16 checkpoint loads as float16 params; cast them
            with ``to_fp32`` / ``to_bf16`` / ``to_fp16``). Weights the checkpoint lacks start in float32.
        ignore_mismatched_sizes: re-initialise shape-mismatched weights instead of raising.
        output_loading_info: also return the load report dict (missing / unexpected / mismatched / tied keys).
        seed: PRNG seed for weights the checkpoint lacks.
        gradient_checkpointing, scan_layers, add_pooling_layer, attn_implementation: model construction options.
        _do_init: False returns ``(model, params)`` as transformers 4.x Flax did: the model holds no
            params, and weights the checkpoint lacks are left out of ``params`` (fill them with
            ``model.init_weights(rng, model.input_shape, params)``).
        **config_overrides: config fields to override (``num_labels=3``...).

    Returns:
        The model, or ``(model, params)`` with ``_do_init=False``; either followed by the report dict
        with ``output_loading_info=True``.

    Raises:
        CheckpointError: unreadable weights, or shapes that disagree (naming key and both shapes).
    """
    hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    config, tensors, source = _read_weights(pretrained_model_name_or_path, config, hub, config_overrides)
    kwargs = {} if add_pooling_layer is None else {"add_pooling_layer": add_pooling_layer}
    cast = None if param_dtype is None else jnp.dtype(param_dtype)
    model = cls(config, dtype=dtype, param_dtype=cast or jnp.float32, gradient_checkpointing=gradient_checkpointing,
                scan_layers=False, attn_implementation=attn_implementation, _do_init=False, **kwargs)
    shapes = tensors.shapes() if hasattr(tensors, "shapes") else {k: tuple(np.shape(v)) for k, v in tensors.items()}
    model_shapes, tied = _canonical_model_shapes(model)
    report = match_state(shapes, model_shapes, tied=tied, ignore_mismatched_sizes=ignore_mismatched_sizes,
                         source=source)
    params = _params_from(tensors, report, model_shapes, tied, cast)
    problems = report.missing_keys or report.unexpected_keys or report.mismatched_keys
    (logger.warning if problems else logger.info)(report.summary(type(model).__name__))
    low = sorted({str(x.dtype) for x in jax.tree_util.tree_leaves(params) if x.dtype != jnp.float32})
    if low and cast is None:
        logger.warning(f"{type(model).__name__}: weights loaded in {low} as stored in the checkpoint "
                       f"(transformers 4.x Flax does the same); model.to_fp32(params) upcasts them")
    if not _do_init:
        if scan_layers:
            model._build(scan_layers=True)
            params = unscanned_to_scan_params(params)
        result = (model, params)
        return (*result, report.as_dict()) if output_loading_info else result
    if report.missing_keys or report.mismatched_keys:
        params = model.init_weights(jax.random.PRNGKey(seed), model.input_shape, params=params)
    model.params = params
    if scan_layers:
        model.enable_scan_layers()
    return (model, report.as_dict()) if output_loading_info else model


def canonical_state(model, params=None) -> dict[str, np.ndarray]:
    """The model's parameters as canonical ``{torch key: numpy array}`` (tied decoder keys left out).

    An untied decoder (``tie_word_embeddings=False``) is written with its bias under
    ``cls.predictions.decoder.bias`` too, the parameter transformers 5.x reads for it.
    """
    params = scan_to_unscanned_params(model.params if params is None else params)
    flat = {k: np.asarray(jax.device_get(v)) for k, v in traverse_util.flatten_dict(params, sep=".").items()}
    tensors = from_framework(flat, "flax")
    for key, source in TIED_KEYS.items():
        if source in tensors and key not in tensors and "cls.predictions.decoder.weight" in tensors:
            tensors[key] = tensors[source]
    # A head model's encoder lives under `bert.`; the bare encoder has no prefix, as in PyTorch.
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def save_pretrained(model, save_directory: str | os.PathLike, params=None, *, max_shard_size: int | str = "5GB",
                    format: str = "safetensors") -> Path:
    """Write ``config.json`` and the weights into ``save_directory``.

    Args:
        params: parameters to save instead of ``model.params``.
        max_shard_size: shard ``model.safetensors`` above this size (with an index).
        format: ``"safetensors"`` (canonical, default) or ``"msgpack"`` (``flax_model.msgpack``,
            the transformers 4.x Flax file; loads back with ``from_pretrained`` too).

    Returns:
        The directory.
    """
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"save_pretrained needs a directory, but {directory} is a file")
    tensors = canonical_state(model, params)
    config = model.config.copy(architectures=[model.head.class_name])
    config.save_pretrained(directory)
    if format == "safetensors":
        save_checkpoint(tensors, directory, max_shard_size=max_shard_size, metadata={"format": "pt"})
    elif format == "msgpack":
        from conversion.legacy import write_flax_msgpack

        write_flax_msgpack(tensors, directory / FLAX_WEIGHTS_NAME)
    else:
        raise ValueError(f"format={format!r}: choose 'safetensors' or 'msgpack'")
    return directory


def to_bytes(model, params=None) -> bytes:
    """``flax.serialization`` msgpack bytes of the parameter tree (as the model holds it, scanned or not)."""
    return serialization.to_bytes(model.params if params is None else params)


def from_bytes(model, data: bytes) -> dict:
    """Parameters restored from :func:`to_bytes` output, checked against the model's tree (not assigned)."""
    target = jax.tree_util.tree_map(lambda s: np.zeros(s, np.float32),
                                    traverse_util.unflatten_dict(model.param_shapes(), sep="."),
                                    is_leaf=lambda x: isinstance(x, tuple))
    try:
        return serialization.from_bytes(target, data)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"the bytes do not hold {type(model).__name__}'s parameter tree: {exc}") from None
