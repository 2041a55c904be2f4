"""Find and open a checkpoint by name: the shared first half of every backend's ``from_pretrained``.

``resolve_checkpoint("dir-or-hub-id")`` returns the config and a lazy mapping
``{canonical key: numpy array}`` whatever the format on disk, so backends only
assign tensors. Formats, in order of preference: ``model.safetensors``, a
sharded ``model.safetensors.index.json``, legacy ``pytorch_model.bin``
(read with ``weights_only=True``; needs torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bert_core.config import CONFIG_NAME, GOOGLE_CONFIG_NAME, BertConfig
from bert_core.errors import CheckpointError, ConfigError
from bert_core.hub import HubError, resolve_file

from .file_checks import read_index
from .safetensors_io import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, SafetensorsFile, ShardedCheckpoint

__all__ = ["ResolvedCheckpoint", "resolve_checkpoint", "read_torch_bin", "PT_WEIGHTS_NAME"]

PT_WEIGHTS_NAME = "pytorch_model.bin"


@dataclass
class ResolvedCheckpoint:
    """A checkpoint located and opened (tensors are read lazily).

    Attributes:
        config: the parsed ``config.json``.
        tensors: canonical key -> numpy array (memory-mapped for safetensors).
        source: the weight file(s), for messages and reports.
        directory: the local directory holding the files (a hub snapshot for hub ids).
    """

    config: BertConfig
    tensors: Mapping[str, np.ndarray]
    source: str
    directory: Path

    def shapes(self) -> dict[str, tuple[int, ...]]:
        if hasattr(self.tensors, "shapes"):
            return self.tensors.shapes()
        return {k: tuple(np.shape(v)) for k, v in self.tensors.items()}


def read_torch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy ``pytorch_model.bin`` safely (``weights_only=True``) into numpy."""
    from bert_core._lazy import require

    torch = require("torch")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad pickles
        raise CheckpointError(f"cannot read {path} as a PyTorch weights file: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.dtype == torch.bfloat16:
            import ml_dtypes

            out[key] = value.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            out[key] = value.numpy()
    return out


def resolve_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    config: BertConfig | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    **config_overrides: Any,
) -> ResolvedCheckpoint:
    """Locate ``config.json`` and the weights of a local directory or hub repo, and open them.

    Raises:
        ConfigError: no config file.
        CheckpointError: no weight file in a supported format, or one that cannot be read.
    """
    hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    if config is None:
        config_path = resolve_file(name_or_path, CONFIG_NAME, required=False, **hub)
        if config_path is None:
            config_path = resolve_file(name_or_path, GOOGLE_CONFIG_NAME, required=False, **hub)
        if config_path is None:
            raise ConfigError(f"no {CONFIG_NAME} found in {name_or_path}")
        config = BertConfig.from_json_file(config_path)
        directory = config_path.parent
    else:
        directory = Path(name_or_path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    config.validate()

    path = resolve_file(name_or_path, SAFE_WEIGHTS_NAME, required=False, **hub)
    if path is not None:
        return ResolvedCheckpoint(config, SafetensorsFile(path), str(path), path.parent)
    index = resolve_file(name_or_path, SAFE_WEIGHTS_INDEX_NAME, required=False, **hub)
    if index is not None:
        weight_map, _ = read_index(index)  # shard names confined to the index's folder before any fetch
        for shard in sorted(set(weight_map.values())):  # fetch every shard next to the index
            try:
                resolve_file(name_or_path, shard, **hub)
            except HubError as exc:
                raise CheckpointError(f"{index}: shard {shard!r} is missing ({exc})") from None
        return ResolvedCheckpoint(config, ShardedCheckpoint(index), str(index), index.parent)
    path = resolve_file(name_or_path, PT_WEIGHTS_NAME, required=False, **hub)
    if path is not None:
        return ResolvedCheckpoint(config, read_torch_bin(path), str(path), path.parent)
    raise CheckpointError(
        f"no weights found in {name_or_path}: expected {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME} "
        f"or {PT_WEIGHTS_NAME}"
    )
