"""Readers and writers of the framework-specific formats, each importing its library lazily.

Every reader returns a canonical ``{key: numpy array}`` (the Hugging Face
PyTorch layout), so a ``tf_model.h5`` or ``flax_model.msgpack`` written by
`transformers` 4.x loads exactly like its PyTorch twin. Name rules come from
:mod:`conversion.rules`; nothing here renames by hand.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bert_core._lazy import require
from bert_core.errors import CheckpointError

from .rules import LEGACY_TF_REWRITES, LEGACY_TF_SKIP, from_framework, from_framework_key

__all__ = [
    "read_tf_h5",
    "read_flax_msgpack",
    "read_google_tf1",
    "write_flax_msgpack",
    "write_torch_bin",
    "flatten_tree",
    "unflatten_tree",
]


def flatten_tree(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": leaf}``."""
    flat: dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_tree(value, key + "."))
        else:
            flat[key] = value
    return flat


def unflatten_tree(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b.c": leaf}`` -> nested dict (the inverse of :func:`flatten_tree`)."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _legacy_tf_to_canonical(names_and_values, source: str, path: Path) -> dict[str, np.ndarray]:
    """Apply the legacy TF rewrites, then the Keras leaf rules; collect every problem."""
    rewrites = LEGACY_TF_REWRITES[source]
    out: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for name, value in names_and_values:
        if LEGACY_TF_SKIP.search(name):
            continue
        key = name.replace("/", ".")
        for pattern, replacement in rewrites:
            key = re.sub(pattern, replacement, key)
        try:
            if key.startswith("="):  # already canonical (rules.py says why)
                canonical, transpose = key[1:], False
            else:
                canonical, transpose = from_framework_key(key, "keras")
        except CheckpointError:
            problems.append(f"{name!r} (read as {key!r}) matches no conversion rule")
            continue
        array = np.asarray(value)
        out[canonical] = array.T if transpose else array
    if problems:
        raise CheckpointError(f"{path}: {len(problems)} variable(s) could not be converted:\n  " + "\n  ".join(problems))
    return out


def read_tf_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `transformers` 4.x ``tf_model.h5`` into canonical tensors (needs h5py)."""
    path = Path(path)
    h5py = require("h5py")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise CheckpointError(f"cannot open {path} as HDF5: {exc}") from None
    with handle:
        if "layer_names" not in handle.attrs:
            raise CheckpointError(f"{path} is not a Keras weights file (no 'layer_names' attribute)")
        entries = []
        for layer in handle.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else str(layer)
            group = handle[layer]
            for weight in group.attrs.get("weight_names", []):
                weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                entries.append((weight, group[weight][()]))
    return _legacy_tf_to_canonical(entries, "tf_h5", path)


def read_google_tf1(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an original Google TF1 checkpoint (``bert_model.ckpt`` prefix) into canonical tensors.

    Optimizer slots (``adam_m``/``adam_v``) and ``global_step`` are skipped.
    """
    tf = require("tensorflow")
    prefix = Path(prefix)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as exc:  # noqa: BLE001 - TF raises its own error types
        raise CheckpointError(f"cannot read TF checkpoint {prefix}: {str(exc).splitlines()[0]}") from None
    names = sorted(reader.get_variable_to_shape_map())
    return _legacy_tf_to_canonical(((n, reader.get_tensor(n)) for n in names), "google_tf1", prefix)


def read_flax_msgpack(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``flax_model.msgpack`` (`transformers` 4.x or tribert) into canonical tensors."""
    path = Path(path)
    serialization = require("flax.serialization")
    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types
        raise CheckpointError(f"{path} is not a valid Flax msgpack file: {exc}") from None
    if not isinstance(tree, Mapping):
        raise CheckpointError(f"{path} does not hold a parameter tree")
    if set(tree) == {"params"}:
        tree = tree["params"]
    flat = {k: np.asarray(v) for k, v in flatten_tree(tree).items()}
    try:
        return from_framework(flat, "flax")
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _atomic_bytes(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_flax_msgpack(tensors: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write canonical tensors as a ``flax_model.msgpack`` parameter tree (as 4.x Flax saved it)."""
    from .rules import to_framework

    serialization = require("flax.serialization")
    tree = unflatten_tree(to_framework(tensors, "flax"))
    largest = max((np.asarray(v).nbytes for v in to_framework(tensors, "flax").values()), default=0)
    if largest > serialization.MAX_CHUNK_SIZE:  # flax splits such leaves into chunks: let it write them
        return _atomic_bytes(Path(path), serialization.msgpack_serialize(tree))
    return _stream_msgpack(tree, Path(path))


def _bin_header(size: int) -> bytes:
    if size < 2**8:
        return b"\xc4" + struct.pack(">B", size)
    return b"\xc5" + struct.pack(">H", size) if size < 2**16 else b"\xc6" + struct.pack(">I", size)


def _ext_header(size: int, code: int) -> bytes:
    fixed = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}
    if size in fixed:
        return fixed[size] + struct.pack(">b", code)
    if size < 2**8:
        return b"\xc7" + struct.pack(">Bb", size, code)
    return b"\xc8" + struct.pack(">Hb", size, code) if size < 2**16 else b"\xc9" + struct.pack(">Ib", size, code)


def _stream_msgpack(tree: Mapping[str, Any], path: Path) -> Path:
    """Write ``tree`` in flax.serialization's msgpack format one leaf at a time (same bytes).

    ``msgpack_serialize`` builds the whole file in memory, about twice the
    weights on top of them; streaming keeps the peak near one copy.
    """
    msgpack = require("msgpack")
    packer = msgpack.Packer(strict_types=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")

    def write(node: Any, f: Any) -> None:
        if isinstance(node, Mapping):
            f.write(packer.pack_map_header(len(node)))
            for key, value in node.items():
                f.write(packer.pack(key))
                write(value, f)
            return
        array = np.ascontiguousarray(node)
        # flax's ndarray extension (type 1) holds msgpack of (shape, dtype name, raw bytes);
        # the headers are written by hand so the tensor bytes go out without a copy.
        prefix = b"\x93" + packer.pack(list(array.shape)) + packer.pack(array.dtype.name) + _bin_header(array.nbytes)
        f.write(_ext_header(len(prefix) + array.nbytes, 1))
        f.write(prefix)
        if array.size:
            f.write(memoryview(array.reshape(-1).view(np.uint8)))

    try:
        with open(tmp, "wb") as f:
            write(tree, f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_torch_bin(tensors: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write canonical tensors as a legacy ``pytorch_model.bin`` (torch.save of a state dict)."""
    torch = require("torch")
    import io

    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return _atomic_bytes(Path(path), buffer.getvalue())
