"""Decode flax.serialization's msgpack parameter tree, refusing anything but plain arrays.

The format (``flax.serialization.msgpack_serialize``): nested maps whose leaves are msgpack
extension type 1 holding msgpack ``(shape, dtype name, raw bytes)``; arrays above 1 GiB are
split into ``{"__msgpack_chunked_array__": True, "shape": {...}, "chunks": {...}}``. flax's own
reader also decodes complex numbers and numpy scalars (types 2, 3) and hands unknown types back;
weights need neither, so any other extension type is refused here. Every array's dtype must be a
plain number and its shape must match the bytes present, so decoding never allocates more than
the file holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bert_core._lazy import require
from bert_core.errors import CheckpointError

__all__ = ["restore_tree", "ARRAY_DTYPES"]

_NDARRAY = 1  # flax's _MsgpackExtType.ndarray
_CHUNKED = "__msgpack_chunked_array__"
#: dtype names a weight array may have.
ARRAY_DTYPES = ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
                "uint8", "uint16", "uint32", "uint64", "bool")


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _array(msgpack: Any, data: bytes, path: Path) -> np.ndarray:
    """One extension-type-1 payload -> a read-only array over its bytes, after checking them."""
    try:
        shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
        dtype_name = dtype_name.decode("ascii")
    except Exception:  # noqa: BLE001 - msgpack raises several types for a bad payload
        raise CheckpointError(f"{path}: an array payload is not (shape, dtype, bytes)") from None
    if dtype_name not in ARRAY_DTYPES:
        raise CheckpointError(f"{path}: an array has dtype {dtype_name!r}; weights are one of {list(ARRAY_DTYPES)}")
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                       for d in shape):
        raise CheckpointError(f"{path}: an array declares the invalid shape {shape!r:.100}")
    dtype = _dtype(dtype_name)
    if not isinstance(buffer, bytes) or math.prod(shape) * dtype.itemsize != len(buffer):
        raise CheckpointError(f"{path}: an array of shape {tuple(shape)} and dtype {dtype_name} declares "
                              f"{math.prod(shape) * dtype.itemsize} bytes but holds {len(buffer)}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _unchunk(node: dict, path: Path, where: str) -> np.ndarray:
    """Join a chunked array, checking its declared shape against the chunks present first."""
    try:
        shape = tuple(node["shape"][str(i)] for i in range(len(node["shape"])))
        chunks = [node["chunks"][str(i)] for i in range(len(node["chunks"]))]
    except (KeyError, TypeError):
        raise CheckpointError(f"{path}: chunked array {where!r} lacks its numbered 'shape' / 'chunks'") from None
    if not all(isinstance(c, np.ndarray) and c.ndim == 1 and c.dtype == chunks[0].dtype for c in chunks) or not chunks:
        raise CheckpointError(f"{path}: chunked array {where!r} has chunks that are not 1-d arrays of one dtype")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) \
            or math.prod(shape) != sum(c.size for c in chunks):
        raise CheckpointError(f"{path}: chunked array {where!r} declares shape {shape} but its chunks hold "
                              f"{sum(c.size for c in chunks)} elements")
    return np.concatenate(chunks).reshape(shape)


def _join_chunks(node: Any, path: Path, where: str = "") -> Any:
    if isinstance(node, dict):
        if _CHUNKED in node:
            return _unchunk(node, path, where)
        return {k: _join_chunks(v, path, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    return node


def restore_tree(data: bytes, path: Path) -> dict[str, Any]:
    """The parameter tree in ``data`` (the bytes of ``path``): nested dicts of numpy arrays.

    Raises:
        CheckpointError: not msgpack, not a map at the top, a non-string key, an extension type
            other than arrays, or an array whose dtype or shape does not fit its bytes (naming the file).
    """
    msgpack = require("msgpack")

    def ext_hook(code: int, payload: bytes) -> np.ndarray:
        if code != _NDARRAY:
            raise CheckpointError(f"{path}: msgpack extension type {code} is refused; a weights file holds arrays "
                                  f"(type {_NDARRAY}) only")
        return _array(msgpack, payload, path)

    try:
        tree = msgpack.unpackb(data, ext_hook=ext_hook, raw=False, strict_map_key=True)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types for bad input
        raise CheckpointError(f"{path} is not a valid Flax msgpack file: {exc}") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path} does not hold a parameter tree (found a {type(tree).__name__})")
    return _join_chunks(tree, path)
