"""Detect a checkpoint's format and read it into canonical tensors; write canonical tensors out.

This is the neutral half of ``tribert convert``: every format maps to and from
the canonical ``{key: numpy array}`` dict (Hugging Face PyTorch layout), so
any format -> safetensors -> any format is bit-exact. Framework libraries are
imported only by the reader or writer that needs them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from bert_core.config import CONFIG_NAME, GOOGLE_CONFIG_NAME, BertConfig
from bert_core.errors import CheckpointError, ConfigError
from bert_core.hub import resolve_file

from .checkpoint import PT_WEIGHTS_NAME, read_torch_bin
from .file_checks import read_index
from .legacy import read_flax_msgpack, read_google_tf1, read_tf_h5
from .safetensors_io import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, SafetensorsFile, ShardedCheckpoint

__all__ = [
    "SOURCE_FORMATS",
    "Source",
    "detect_source",
    "read_source",
    "cast_tensors",
    "manifest",
    "TOKENIZER_FILES",
]

TF_WEIGHTS_NAME = "tf_model.h5"
FLAX_WEIGHTS_NAME = "flax_model.msgpack"
TF1_INDEX_SUFFIX = ".index"

#: Files copied along with the weights: tokenizer and sentence-transformers files.
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "2_Normalize/config.json",
)

_READERS: dict[str, Callable[[Path], Mapping[str, np.ndarray]]] = {
    "safetensors": SafetensorsFile,
    "safetensors-sharded": ShardedCheckpoint,
    "torch": read_torch_bin,
    "tf-h5": read_tf_h5,
    "flax-msgpack": read_flax_msgpack,
    "google-tf1": read_google_tf1,
}
SOURCE_FORMATS = tuple(_READERS)

# Directory contents, in order of preference.
_DIRECTORY_FILES = (
    (SAFE_WEIGHTS_NAME, "safetensors"),
    (SAFE_WEIGHTS_INDEX_NAME, "safetensors-sharded"),
    (PT_WEIGHTS_NAME, "torch"),
    (TF_WEIGHTS_NAME, "tf-h5"),
    (FLAX_WEIGHTS_NAME, "flax-msgpack"),
)


@dataclass
class Source:
    """A located checkpoint: its format, the weight path, and the directory holding config/tokenizer."""

    format: str
    weights: Path
    directory: Path

    def config_path(self) -> Path:
        for name in (CONFIG_NAME, GOOGLE_CONFIG_NAME):
            if (self.directory / name).is_file():
                return self.directory / name
        raise ConfigError(f"no {CONFIG_NAME} or {GOOGLE_CONFIG_NAME} next to {self.weights} (pass --config FILE)")


def _format_of_file(path: Path) -> str:
    name = path.name
    if name.endswith(".safetensors.index.json"):
        return "safetensors-sharded"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith((".bin", ".pt", ".pth")):
        return "torch"
    if name.endswith((".h5", ".hdf5")):
        return "tf-h5"
    if name.endswith(".msgpack"):
        return "flax-msgpack"
    if name.endswith(TF1_INDEX_SUFFIX) or name.endswith(".data-00000-of-00001"):
        return "google-tf1"
    raise CheckpointError(f"cannot tell the format of {path}: expected .safetensors, .bin, .h5, .msgpack "
                          f"or a TF1 checkpoint prefix")


def detect_source(src: str | os.PathLike, **hub_kwargs) -> Source:
    """Locate the weights named by ``src``: a directory, a weight file, a TF1 prefix or a hub repo id."""
    path = Path(src)
    if path.is_dir():
        for filename, fmt in _DIRECTORY_FILES:
            if (path / filename).is_file():
                return Source(fmt, path / filename, path)
        tf1 = sorted(path.glob(f"*.ckpt{TF1_INDEX_SUFFIX}"))
        if tf1:
            return Source("google-tf1", tf1[0].with_suffix(""), path)
        raise CheckpointError(f"no weights in {path}: expected one of "
                              f"{[f for f, _ in _DIRECTORY_FILES] + ['*.ckpt.index (TF1)']}")
    if path.is_file():
        fmt = _format_of_file(path)
        weights = path.with_suffix("") if fmt == "google-tf1" and path.suffix == TF1_INDEX_SUFFIX else path
        if fmt == "google-tf1" and path.name.endswith(".data-00000-of-00001"):
            weights = path.with_name(path.name[: -len(".data-00000-of-00001")])
        return Source(fmt, weights, path.parent)
    if Path(str(src) + TF1_INDEX_SUFFIX).is_file():  # a TF1 prefix such as bert_model.ckpt
        return Source("google-tf1", path, path.parent)
    if path.parent.is_dir() and str(path.parent) not in ("", "."):
        raise CheckpointError(f"{src} does not exist")
    for filename, fmt in _DIRECTORY_FILES:  # a hub repo id
        found = resolve_file(src, filename, required=False, **hub_kwargs)
        if found is not None:
            if fmt == "safetensors-sharded":
                weight_map, _ = read_index(found)
                for shard in sorted(set(weight_map.values())):
                    resolve_file(src, shard, **hub_kwargs)
            for extra in (CONFIG_NAME, *TOKENIZER_FILES):
                resolve_file(src, extra, required=False, **hub_kwargs)
            return Source(fmt, found, found.parent)
    raise CheckpointError(f"{src} is not a directory, a weight file, a TF1 checkpoint prefix, or a hub repo "
                          f"with weights")


#: Formats whose reader checks each tensor's declared shape against the config before reading it.
_CHECKED_AGAINST_CONFIG = ("tf-h5", "flax-msgpack", "google-tf1")


def read_source(source: Source, config: BertConfig | None = None) -> dict[str, np.ndarray] | Mapping[str, np.ndarray]:
    """Canonical tensors of ``source`` (memory-mapped for safetensors).

    ``config`` bounds what a legacy file (h5, msgpack, TF1) may declare before anything is read
    (:class:`~conversion.layout.TensorBudget`); safetensors headers are checked on their own.
    """
    if source.format in _CHECKED_AGAINST_CONFIG:
        return _READERS[source.format](source.weights, config=config)
    return _READERS[source.format](source.weights)


def read_config(source: Source, config_path: str | os.PathLike | None = None) -> BertConfig:
    return BertConfig.from_json_file(config_path or source.config_path())


_FLOAT_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def cast_tensors(tensors: Mapping[str, np.ndarray], dtype: str | None) -> dict[str, np.ndarray]:
    """Cast floating tensors to ``dtype`` (``float32``/``float16``/``bfloat16``); integers stay."""
    if dtype is None:
        return dict(tensors)
    if dtype == "bfloat16":
        import ml_dtypes

        target = np.dtype(ml_dtypes.bfloat16)
    elif dtype in _FLOAT_DTYPES:
        target = np.dtype(_FLOAT_DTYPES[dtype])
    else:
        raise ConfigError(f"--dtype {dtype!r} is not supported; choose float32, float16 or bfloat16")
    out = {}
    for key, value in tensors.items():
        value = np.asarray(value)
        is_float = np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16"
        out[key] = value.astype(target) if is_float else value
    return out


def _byte_view(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array without copying (0-d and empty arrays included)."""
    return memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")


def manifest(tensors: Mapping[str, np.ndarray], config: BertConfig) -> dict:
    """sha256 of every canonical tensor and of the config, so two artifacts can be compared exactly."""
    entries = {}
    for key in sorted(tensors):
        array = np.ascontiguousarray(tensors[key])
        entries[key] = {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            # Hash the buffer in place: no copy of the (possibly memory-mapped) tensor.
            "sha256": hashlib.sha256(_byte_view(array)).hexdigest(),
        }
    config_text = json.dumps(config.to_dict(), sort_keys=True)
    return {
        "format": "tribert-manifest/1",
        "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest(),
        "tensors": entries,
    }
