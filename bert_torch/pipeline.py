"""``pipeline()`` for PyTorch: the shared pipeline code (bert_pipelines) with a torch forward pass."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from bert_core.errors import DeviceError
from bert_core.heads import get_head
from bert_pipelines import Pipeline, build_pipeline, resolve_parts

from . import models

__all__ = ["pipeline", "pipeline_device"]

_FIELDS = ("logits", "last_hidden_state", "start_logits", "end_logits")


def pipeline_device(device: Any) -> torch.device:
    """``None``/"cpu" -> CPU; "gpu"/"cuda" -> the first GPU; an int, "0" or "gpu:1" -> that GPU.

    Raises:
        DeviceError: a GPU torch does not see, or a name that is no torch device.
    """
    if device is None or device == "cpu" or device == -1:
        return torch.device("cpu")
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        device = f"cuda:{int(device)}"
    elif isinstance(device, str) and device.split(":")[0].lower() in ("gpu", "cuda"):
        device = "cuda" + device[len(device.split(":")[0]):]
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {device!r} is not a torch device ({err})") from None
    count = torch.cuda.device_count() if target.type == "cuda" and torch.cuda.is_available() else 0
    if target.type == "cuda" and (target.index or 0) >= count:
        visible = ["cpu"] + [f"cuda:{i}" for i in range(count)]
        raise DeviceError.unavailable("torch", "GPU" if target.index is None else f"GPU {target.index}", visible)
    return target


def pipeline(
    task: str,
    model: str | os.PathLike | torch.nn.Module | None = None,
    tokenizer: Any = None,
    *,
    device: Any = None,
    dtype: Any = None,
    batch_size: int = 8,
    attn_implementation: str | None = None,
) -> Pipeline:
    """A task pipeline on a PyTorch model, as ``transformers.pipeline`` gives it.

    Args:
        task: "fill-mask", "feature-extraction", "sentence-embeddings",
            "text-classification" (alias "sentiment-analysis"),
            "token-classification" (alias "ner") or "question-answering".
        model: a directory, a hub id, a loaded ``bert_torch`` model, or ``None``
            for the embedded all-MiniLM-L6-v2.
        tokenizer: a tokenizer or where to load one (default: the model's).
        device: "cpu", "gpu"/"cuda", a GPU index, or a ``torch.device``.
        dtype: ``torch.float32`` (default), ``torch.bfloat16``, ``torch.float16`` or their names.
        batch_size: rows per forward pass (inputs are sorted by length first).

    Returns:
        A callable :class:`bert_pipelines.Pipeline`.
    """
    target = pipeline_device(device)
    options: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    if attn_implementation:
        options["attn_implementation"] = attn_implementation

    def load(head: str, path: Any) -> torch.nn.Module:
        return getattr(models, get_head(head).class_name).from_pretrained(path, **options)

    name, net, tok, path = resolve_parts(task, model, tokenizer, load)
    net = net.to(target).eval()
    net.set_unpadding(True)  # results never read padded positions: skip computing them

    def forward(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = net(**{k: torch.from_numpy(v).to(target) for k, v in batch.items()})
        return {k: out[k].float().cpu().numpy() for k in _FIELDS if out.get(k) is not None}

    return build_pipeline(name, tokenizer=tok, config=net.config, forward=forward, model_dir=path, batch_size=batch_size, framework="torch")
