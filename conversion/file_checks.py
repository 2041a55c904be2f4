"""Refuse a malformed checkpoint file before any tensor is read: safetensors headers and shard indexes.

A safetensors header is checked twice. First here, field by field, so an error names the file, the
tensor and the field at fault (``tensor 'w': data_offsets [0, 8] overlap tensor 'v'``); then by the
`safetensors` library itself (``safe_open``), so nothing the library refuses is ever read, whatever
this module forgets. A shard index may only name files inside its own folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from bert_core.errors import CheckpointError

__all__ = ["MAX_HEADER", "TensorEntry", "parse_header", "library_check", "read_index", "confined_shard"]

#: The format's own limit on the JSON header (the library refuses larger ones).
MAX_HEADER = 100_000_000
_USIZE = 2**64  # the library computes byte sizes in 64-bit unsigned integers


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a validated header: dtype, shape and its byte range in the data section."""

    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(path: Path, name: str, info: Any, dtypes: dict[str, np.dtype]) -> TensorEntry:
    """Check one tensor's header entry field by field (the library's rules, with names in the message)."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{where}: its header entry must be an object with dtype, shape and data_offsets, "
                              f"got {type(info).__name__}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            raise CheckpointError(f"{where}: its header entry has no {field!r}")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in dtypes:
        raise CheckpointError(f"{where}: dtype {code!r} is not one tribert reads; expected one of {sorted(dtypes)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {shape!r:.200}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(x) and 0 <= x < _USIZE for x in offsets)
            and offsets[0] <= offsets[1]):
        raise CheckpointError(f"{where}: data_offsets must be two integers [begin, end] with 0 <= begin <= end, "
                              f"got {offsets!r:.200}")
    count = 1
    for dim in shape:  # checked as the library does: no 64-bit overflow at any step
        count *= dim
        if count >= _USIZE:
            raise CheckpointError(f"{where}: shape {shape} overflows: its size does not fit in 64 bits")
    nbytes = count * dtypes[code].itemsize
    if nbytes >= _USIZE:
        raise CheckpointError(f"{where}: shape {shape} of dtype {code} overflows: its byte size does not fit in 64 bits")
    begin, end = offsets
    if end - begin != nbytes:
        raise CheckpointError(f"{where} of shape {tuple(shape)} and dtype {code} needs {nbytes} bytes "
                              f"but its offsets span {end - begin}")
    return TensorEntry(dtypes[code], tuple(shape), begin, end)


def parse_header(path: Path, raw: bytes, data_size: int, dtypes: dict[str, np.dtype]
                 ) -> tuple[dict[str, str], dict[str, TensorEntry]]:
    """``(metadata, {name: entry})`` of the JSON header ``raw``; the data section holds ``data_size`` bytes.

    Raises:
        CheckpointError: naming the file and the tensor / field: not UTF-8 or not a JSON object, a
            repeated key, ``__metadata__`` not an object of strings, a malformed entry, overlapping
            or gapped ``data_offsets``, a truncated data section or trailing bytes after it.
    """
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not a valid safetensors file: its header is not UTF-8 text") from None
    except _Duplicate as dup:
        raise CheckpointError(f"{path} is not a valid safetensors file: its header repeats the key {str(dup)!r}") from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file: its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file: its header is a JSON "
                              f"{type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: field '__metadata__' must be an object of strings, got {metadata!r:.200}")
    entries = {name: _entry(path, name, info, dtypes) for name, info in header.items()}
    covered, previous = 0, None
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin < covered:
            raise CheckpointError(f"{path}: tensor {name!r} (data_offsets [{entry.begin}, {entry.end}]) overlaps "
                                  f"tensor {previous!r}: two weights would share bytes")
        if entry.begin > covered:
            raise CheckpointError(f"{path}: bytes [{covered}, {entry.begin}) before tensor {name!r} belong to no tensor")
        if entry.end > data_size:
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ends at byte {entry.end} "
                                  f"but the data section holds {data_size}")
        covered, previous = entry.end, name
    if covered != data_size:
        raise CheckpointError(f"{path}: the tensors cover {covered} bytes but the data section holds {data_size} "
                              f"(trailing bytes: not a pure safetensors file)")
    return metadata, entries


def library_check(path: Path, names: set[str]) -> None:
    """Have the `safetensors` library parse and validate ``path`` too; it must see the same tensors.

    Raises:
        CheckpointError: the library refuses the file (its message, naming the file).
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            seen = set(handle.keys())
    except Exception as exc:  # noqa: BLE001 - SafetensorError and the OSErrors of a vanished file
        raise CheckpointError(f"{path} is not a valid safetensors file: {exc}") from None
    if seen != names:
        raise CheckpointError(f"{path}: the safetensors library reads tensors {sorted(seen ^ names)} differently")


def confined_shard(index: Path, name: Any, key: str) -> Path:
    """The path of shard ``name`` (mapped from ``key``) next to ``index``, refusing any escape from its folder.

    A name must be a relative path without ``..``; once it exists, it must resolve inside the index's
    folder (or, in a Hugging Face cache snapshot, to the repo's ``blobs`` the cache links to).

    Raises:
        CheckpointError: an absolute path, ``..``, a symlink resolving elsewhere, or a missing shard.
    """
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{index}: weight_map[{key!r}] must be a shard file name, got {name!r:.100}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name or "\0" in name:
        raise CheckpointError(f"{index}: shard {name!r} (for key {key!r}) is not a file name inside "
                              f"{index.parent}; a shard index may only name files in its own folder")
    path = index.parent / pure
    if path.exists():
        folder = index.parent.resolve()
        roots = [folder]
        if folder.parent.name == "snapshots":  # huggingface_hub links snapshot files to ../../blobs
            roots.append(folder.parent.parent / "blobs")
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            raise CheckpointError(f"{index}: shard {name!r} (for key {key!r}) resolves to {resolved}, outside {folder}")
    return path


def read_index(index: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """``(weight_map, metadata)`` of a shard index, checked: an object of key -> shard file name.

    Shard names are confined to the index's folder (:func:`confined_shard`) before anything
    fetches or opens them.

    Raises:
        CheckpointError: not JSON, no ``weight_map`` object, a non-string key or shard name, or a
            shard outside the folder (naming the index and the key).
    """
    try:
        data = json.loads(index.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint index not found: {index}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{index} is not a valid shard index: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        raise CheckpointError(f"{index} is not a valid shard index (needs a 'weight_map' object of key -> file)")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{index}: field 'metadata' must be an object, got {type(metadata).__name__}")
    weight_map = data["weight_map"]
    for key, shard in weight_map.items():
        confined_shard(index, shard, key)
    return weight_map, metadata
