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
from bert_core.config import BertConfig
from bert_core.errors import CheckpointError

from .layout import TensorBudget
from .msgpack_tree import restore_tree
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


def _h5_node(h5py, root: Any, base: Any, name: str, path: Path, kind: type) -> Any:
    """Object ``name`` under ``base``, reached through hard links only (a soft or external link is refused)."""
    node = root if name.startswith("/") else base
    for part in (p for p in name.split("/") if p):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            raise CheckpointError(f"{path}: {name!r} is listed in the weight names but not in the file")
        if not isinstance(link, h5py.HardLink):
            raise CheckpointError(f"{path}: {name!r} goes through a {type(link).__name__} ({part!r}); "
                                  f"only datasets stored in the file itself are read")
        node = node[part]
    if not isinstance(node, kind):
        raise CheckpointError(f"{path}: {name!r} is a {type(node).__name__}, not a {kind.__name__}")
    return node


def _h5_text(value: Any, path: Path) -> str:
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: a layer or weight name is not UTF-8 text ({value[:40]!r})") from None


def _h5_dataset(h5py, dataset: Any, name: str, path: Path, budget: TensorBudget) -> None:
    """Refuse, before reading it, a dataset that is not a plain numeric array stored in the file."""
    dtype = dataset.dtype
    if h5py.check_vlen_dtype(dtype) or h5py.check_enum_dtype(dtype) or h5py.check_string_dtype(dtype):
        raise CheckpointError(f"{path}: dataset {name!r} has dtype {dtype} (variable-length, enum or string)")
    if dataset.external or dataset.is_virtual:
        raise CheckpointError(f"{path}: dataset {name!r} keeps its data outside the file (external or virtual)")
    if dataset.shape is None:
        raise CheckpointError(f"{path}: dataset {name!r} has no shape (an empty dataspace)")
    budget.admit(name, dataset.shape, dtype)


def read_tf_h5(path: str | os.PathLike, config: BertConfig | None = None) -> dict[str, np.ndarray]:
    """Read a `transformers` 4.x ``tf_model.h5`` into canonical tensors (needs h5py).

    Every dataset's link, dtype, storage and declared shape is checked (against ``config``'s
    tensors, :class:`~conversion.layout.TensorBudget`) before any is read.
    """
    path = Path(path)
    h5py = require("h5py")
    budget = TensorBudget(config, path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise CheckpointError(f"cannot open {path} as HDF5: {exc}") from None
    with handle:
        if "layer_names" not in handle.attrs:
            raise CheckpointError(f"{path} is not a Keras weights file (no 'layer_names' attribute)")
        planned = []
        for layer in np.atleast_1d(handle.attrs["layer_names"]):
            group = _h5_node(h5py, handle, handle, _h5_text(layer, path), path, h5py.Group)
            for weight in np.atleast_1d(group.attrs.get("weight_names", [])):
                weight = _h5_text(weight, path)
                dataset = _h5_node(h5py, handle, group, weight, path, h5py.Dataset)
                _h5_dataset(h5py, dataset, weight, path, budget)
                planned.append((weight, dataset))
        entries = [(weight, dataset[()]) for weight, dataset in planned]
    return _legacy_tf_to_canonical(entries, "tf_h5", path)


def read_google_tf1(prefix: str | os.PathLike, config: BertConfig | None = None) -> dict[str, np.ndarray]:
    """Read an original Google TF1 checkpoint (``bert_model.ckpt`` prefix) into canonical tensors.

    Optimizer slots (``adam_m``/``adam_v``) and ``global_step`` are skipped; every other
    variable's declared shape and dtype is checked against ``config`` before any is read.
    """
    tf = require("tensorflow")
    prefix = Path(prefix)
    budget = TensorBudget(config, prefix)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as exc:  # noqa: BLE001 - TF raises its own error types
        raise CheckpointError(f"cannot read TF checkpoint {prefix}: {str(exc).splitlines()[0]}") from None
    names = sorted(n for n in shapes if not LEGACY_TF_SKIP.search(n))
    for name in names:
        if not (dtypes[name].is_floating or dtypes[name].is_integer or dtypes[name].is_bool):
            raise CheckpointError(f"{prefix}: variable {name!r} has dtype {dtypes[name].name}, not a numeric weight")
        budget.admit(name, tuple(shapes[name]), np.dtype(dtypes[name].as_numpy_dtype))
    return _legacy_tf_to_canonical(((n, reader.get_tensor(n)) for n in names), "google_tf1", prefix)


def read_flax_msgpack(path: str | os.PathLike, config: BertConfig | None = None) -> dict[str, np.ndarray]:
    """Read a ``flax_model.msgpack`` (`transformers` 4.x or tribert) into canonical tensors.

    The file is flax.serialization's format, read by :mod:`conversion.msgpack_tree`: arrays are
    checked (dtype, shape against the bytes present and against ``config``) as they are decoded,
    and any other msgpack extension type is refused.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    tree = restore_tree(data, path)
    if set(tree) == {"params"} and isinstance(tree["params"], Mapping):
        tree = tree["params"]
    flat = flatten_tree(tree)
    budget = TensorBudget(config, path)
    for name, value in flat.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: {name!r} is a {type(value).__name__}, not an array")
        budget.admit(name, value.shape, value.dtype)
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
