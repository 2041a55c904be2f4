"""Checkpointing models wrapped by PyTorch's own engines: ``DistributedDataParallel`` and FSDP2.

Training needs nothing from tribert: wrap the model as PyTorch documents it.

    model = DistributedDataParallel(BertForSequenceClassification.from_pretrained(path))
    # or FSDP2, one group per layer then the root (the tied MLM decoder stays with the embeddings):
    for layer in model.bert.encoder.layer:
        fully_shard(layer)
    fully_shard(model)

Saving is where a wrapper gets in the way: DDP hides the model behind ``.module``,
and FSDP2 holds each parameter as a ``DTensor`` shard. :func:`save_pretrained`
gathers the full tensors (a collective: every rank calls it), lets rank 0 write
the canonical checkpoint through :func:`bert_torch.loading.save_pretrained`, and
waits for the write before returning, so any rank may read it afterwards.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from bert_core.errors import ConfigError

from .base import BertPreTrainedModel
from .loading import save_pretrained as _save_pretrained

__all__ = ["unwrap_model", "full_state_dict", "save_pretrained"]


def unwrap_model(model: nn.Module) -> BertPreTrainedModel:
    """The tribert model inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile`` wrappers.

    An FSDP2 model is returned as is: ``fully_shard`` changes the model's class in place
    (``FSDPBertForMaskedLM`` subclasses ``BertForMaskedLM``), it does not wrap it.

    Raises:
        ConfigError: what is inside is not a tribert ``BertPreTrainedModel``.
    """
    inner = model
    while True:
        if isinstance(inner, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = inner.module
        elif hasattr(inner, "_orig_mod"):  # torch.compile's OptimizedModule
            inner = inner._orig_mod
        else:
            break
    if not isinstance(inner, BertPreTrainedModel):
        raise ConfigError(f"expected a bert_torch model (optionally wrapped in DDP or torch.compile), "
                          f"got {type(model).__name__} holding {type(inner).__name__}")
    return inner


def _is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's full, unsharded state dict on the CPU of rank 0 (``{}`` on the other ranks).

    Sharded (FSDP2 / DTensor) parameters are gathered with
    ``torch.distributed.checkpoint.state_dict.get_model_state_dict(full_state_dict=True,
    cpu_offload=True)``, a collective every rank must enter. Unsharded models (DDP keeps a
    full replica on each rank) are read locally. Keys are the canonical checkpoint keys.
    """
    inner = unwrap_model(model)
    if _is_sharded(inner):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(inner, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if _rank() != 0:
        return {}
    return {k: v.detach().cpu() for k, v in inner.state_dict().items()}


def _rank() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_rank() if distributed else 0


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, **kwargs: Any) -> None:
    """Write the canonical checkpoint of a DDP-wrapped, FSDP2-sharded or plain model (rank 0 writes).

    Every rank must call it (gathering sharded parameters is a collective). Rank 0 writes
    ``config.json`` and ``model.safetensors`` exactly as an unwrapped model's
    ``save_pretrained`` does (same keys, tied weights left out); then all ranks meet at a
    barrier, so the files exist everywhere once the call returns.

    Args:
        model: the model, wrapped or not.
        save_directory: the output directory.
        kwargs: passed to :func:`bert_torch.loading.save_pretrained` (``max_shard_size``, ...).
    """
    inner = unwrap_model(model)
    state_dict = full_state_dict(inner)
    if _rank() == 0:
        _save_pretrained(inner, save_directory, state_dict=state_dict, **kwargs)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
