"""``pipeline()`` for TensorFlow: the shared pipeline code (bert_pipelines) with an XLA-compiled forward pass.

The shared engine pads every batch to a shape bucket (bert_pipelines.bucket_length,
and the rows of a partial batch to a power of two: bucket_rows); the forward runs
through :class:`bert_tf.compiled.CompiledCall` built on those same buckets, so a
stream of inputs traces one ``tf.function`` and XLA compiles one program per
(row bucket, length bucket), never one per input.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bert_core.errors import DeviceError
from bert_core.heads import get_head
from bert_pipelines import Pipeline, PipelineError, bucket_length, build_pipeline, resolve_parts

from . import models
from .compiled import CompiledCall
from .export import KERAS_FILE
from .loading import resolve_dtype

__all__ = ["pipeline", "pipeline_device"]

_FIELDS = ("logits", "last_hidden_state", "start_logits", "end_logits")
#: Weight files ``from_pretrained`` reads; a directory with none of them but a ``model.keras`` loads that.
_CHECKPOINT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "tf_model.h5",
                     "flax_model.msgpack")


def pipeline_device(device: Any) -> str | None:
    """``None`` -> TensorFlow's own placement; "cpu" / "gpu" / "cuda" -> the first of that kind; an int, "0" or
    "gpu:1" -> that GPU; a full TensorFlow device string as it is.

    TensorFlow places an op on the CPU, silently, when the asked device is missing (soft placement),
    so the device is checked against the visible ones here.

    Raises:
        DeviceError: a device TensorFlow does not see.
    """
    if device is None:
        return None
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        target = "/CPU:0" if int(device) < 0 else f"/GPU:{int(device)}"
    else:
        kind, _, index = str(device).lower().partition(":")
        kind = "gpu" if kind == "cuda" else kind
        target = f"/{kind.upper()}:{index or 0}" if kind in ("cpu", "gpu", "tpu") else str(device)
    match = re.search(r"(CPU|GPU|TPU):(\d+)$", target.upper())
    if match:
        visible = tf.config.list_logical_devices()
        if int(match[2]) >= sum(d.device_type == match[1] for d in visible):
            raise DeviceError.unavailable("tensorflow", f"{match[1]} {match[2]}" if match[2] != "0" else match[1],
                                          [d.name for d in visible])
    return target


def _load_keras(path: Path, head: str, dtype: Any) -> Any:
    """The model of a ``tribert convert --to keras`` directory (``model.keras``), checked to be ``head``'s class."""
    net = keras.saving.load_model(path)
    cls = getattr(models, get_head(head).tf_class_name)
    if not isinstance(net, cls):
        raise PipelineError(f"{path} holds a {type(net).__name__}; this task needs a {cls.__name__} "
                            f"(convert with --head {head})")
    if dtype is not None and net.dtype_policy.name != resolve_dtype(dtype):
        raise PipelineError(f"{path} was saved as {net.dtype_policy.name}; dtype={dtype!r} applies only to "
                            "canonical checkpoints (convert with --dtype, or load the safetensors)")
    return net


def _buckets(config: Any) -> tuple[int, ...]:
    """The lengths the shared engine pads to, up to the position table (so CompiledCall never pads further)."""
    longest = max(int(getattr(config, "max_position_embeddings", 512) or 512), 16)
    return tuple(sorted({bucket_length(n) for n in range(1, longest + 1)} | {longest}))


def pipeline(
    task: str,
    model: str | os.PathLike | Any = None,
    tokenizer: Any = None,
    *,
    device: Any = None,
    dtype: Any = None,
    batch_size: int = 8,
    jit_compile: bool = True,
    pack: bool = True,
) -> Pipeline:
    """A task pipeline on a Keras model, as ``transformers.pipeline`` gives it.

    Args:
        task: "fill-mask", "feature-extraction", "sentence-embeddings",
            "text-classification" (alias "sentiment-analysis"),
            "token-classification" (alias "ner") or "question-answering".
        model: a directory (a canonical checkpoint, or the ``model.keras`` of
            ``tribert convert --to keras``), a hub id, a loaded ``bert_tf`` model,
            or ``None`` for the embedded all-MiniLM-L6-v2.
        tokenizer: a tokenizer or where to load one (default: the model's).
        device: "cpu", "gpu", a GPU index or a TensorFlow device string; the
            weights are created and the forward runs there (a model passed in
            keeps the placement of its variables).
        dtype: "float32" (default), "bfloat16", "float16" (or "mixed_bfloat16"),
            or the ``tf`` dtype; ignored for a model passed in.
        batch_size: rows per forward pass (inputs are sorted by length first).
        jit_compile: compile the forward with XLA (default) or run it as a plain graph.
        pack: per-token tasks pack several inputs into each row (bert_core.packing: block-diagonal
            mask, equal outputs, no compute on padding); ``batch_size`` then counts rows.

    Returns:
        A callable :class:`bert_pipelines.Pipeline`.
    """
    target = pipeline_device(device)
    policy = resolve_dtype(dtype)  # a bad name fails before any file is read
    placement = (lambda: tf.device(target)) if target else contextlib.nullcontext

    def load(head: str, path: Any) -> Any:
        with placement():
            keras_file = Path(path) / KERAS_FILE
            if keras_file.is_file() and not any((Path(path) / n).exists() for n in _CHECKPOINT_FILES):
                return _load_keras(keras_file, head, dtype)
            return getattr(models, get_head(head).tf_class_name).from_pretrained(path, dtype=policy)

    name, net, tok, path = resolve_parts(task, model, tokenizer, load)
    call = CompiledCall(net, jit_compile=jit_compile, buckets=_buckets(net.config))

    def forward(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with placement():
            out = call(**batch)
        return {k: tf.cast(out[k], tf.float32).numpy() for k in _FIELDS if out.get(k) is not None}

    result = build_pipeline(name, tokenizer=tok, config=net.config, forward=forward, model_dir=path,
                            batch_size=batch_size, bucket=True, framework="tf", pack=pack)
    result.compiled = call  # its traced_count() shows how many graphs the stream has cost
    return result
