"""``pipeline()`` for Flax: the shared pipeline code (bert_pipelines) with a jitted forward pass.

Shapes are bucketed (bert_pipelines.bucket_length), so a stream of
inputs compiles a handful of shapes once and then runs at jitted speed. Tasks
with per-token outputs pack several inputs into each row (bert_core.packing),
so no compute goes to padding under static shapes; other calls keep the padded
path (:func:`bert_core.unpad.padding_read`), which bounds the programs by the shape buckets.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_core.errors import DeviceError
from bert_core.heads import get_head
from bert_core.unpad import padding_read
from bert_pipelines import Pipeline, build_pipeline, resolve_parts

from . import models

__all__ = ["pipeline", "pipeline_device"]

_FIELDS = ("logits", "last_hidden_state", "start_logits", "end_logits")


def pipeline_device(device: Any) -> Any:
    """``None`` -> JAX's default device; "cpu" / "gpu" / "tpu" -> the first of that platform; an int or
    "gpu:1" -> that device.

    Raises:
        DeviceError: a platform or device index JAX does not see.
    """
    if device is None:
        return None
    visible = [f"{d.platform}:{d.id}" for d in jax.devices()]
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        if not 0 <= int(device) < len(visible):
            raise DeviceError.unavailable("jax", f"device {int(device)}", visible)
        return jax.devices()[int(device)]
    platform, _, index = str(device).lower().partition(":")
    platform = {"cuda": "gpu"}.get(platform, platform)
    try:
        found = jax.devices(platform)
    except RuntimeError:  # jax: "Unknown backend" / "no platforms that are instances of gpu"
        found = []
    if int(index or 0) >= len(found):
        raise DeviceError.unavailable("jax", platform.upper() + (f" {index}" if index and index != "0" else ""), visible)
    return found[int(index or 0)]


def pipeline(
    task: str,
    model: str | os.PathLike | Any = None,
    tokenizer: Any = None,
    *,
    device: Any = None,
    dtype: Any = None,
    batch_size: int = 8,
    pack: bool = True,
) -> Pipeline:
    """A task pipeline on a Flax model (arguments as ``bert_torch.pipeline``; ``dtype`` a jnp dtype or its name).

    ``pack`` (default on): per-token tasks run inputs packed end to end in rows with a
    block-diagonal mask (equal outputs, no padding compute); ``batch_size`` then counts rows.
    """
    target = pipeline_device(device)
    compute = jnp.float32 if dtype is None else jnp.dtype(dtype)

    def load(head: str, path: Any) -> Any:
        return getattr(models, get_head(head).flax_name).from_pretrained(path, dtype=compute)

    name, net, tok, path = resolve_parts(task, model, tokenizer, load)
    if target is not None:
        net.params = jax.device_put(net.params, target)

    def forward(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {k: jnp.asarray(v) if target is None else jax.device_put(v, target) for k, v in batch.items()}
        # The padded path: packing a padded batch would add a program per token bucket to each bucketed
        # shape, and the outputs are read at real positions only (per-token tasks pack rows instead).
        with padding_read():
            out = net(**inputs)
        return {k: np.asarray(out[k], dtype=np.float32) for k in _FIELDS if out.get(k) is not None}

    return build_pipeline(name, tokenizer=tok, config=net.config, forward=forward, model_dir=path, batch_size=batch_size, bucket=True,
                          framework="flax", pack=pack)
