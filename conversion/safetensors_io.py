"""Read and write the canonical checkpoint: ``model.safetensors``, single or sharded.

Reading memory-maps the file and hands out zero-copy numpy views. A view's
file pages count in the process's resident memory once touched, so a loader
that copied whole views would peak at two copies (the mapped file plus the
framework's own); :func:`read_blocks` hands a tensor out in row blocks and
drops each block's pages from the process once the loader has copied it, so
loading peaks at the framework's one copy plus one block. The header is
validated before any tensor is touched, field by field and then by the
`safetensors` library itself (``conversion.file_checks``), and every error
names the file and the tensor. Writing goes to a temp file that is renamed into place,
so a failure never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from bert_core.errors import CheckpointError

from .file_checks import MAX_HEADER, confined_shard, library_check, parse_header, read_index

__all__ = [
    "SAFE_WEIGHTS_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SafetensorsFile",
    "ShardedCheckpoint",
    "open_checkpoint",
    "read_blocks",
    "BLOCK_BYTES",
    "save_file",
    "save_checkpoint",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
BLOCK_BYTES = 16 * 1024 * 1024  # per read_blocks block: small next to a weight matrix, large enough to stream
_PAGE = mmap.PAGESIZE


def _dtypes() -> dict[str, np.dtype]:
    table = {
        "F64": np.dtype("<f8"),
        "F32": np.dtype("<f4"),
        "F16": np.dtype("<f2"),
        "I64": np.dtype("<i8"),
        "I32": np.dtype("<i4"),
        "I16": np.dtype("<i2"),
        "I8": np.dtype("i1"),
        "U8": np.dtype("u1"),
        "U16": np.dtype("<u2"),
        "U32": np.dtype("<u4"),
        "U64": np.dtype("<u8"),
        "BOOL": np.dtype("?"),
    }
    try:  # bfloat16 has no numpy dtype of its own; ml_dtypes provides it.
        import ml_dtypes

        table["BF16"] = np.dtype(ml_dtypes.bfloat16)
    except ImportError:  # pragma: no cover - ml_dtypes is a base dependency
        pass
    return table


_DTYPES = _dtypes()
_CODES = {v: k for k, v in _DTYPES.items()}


class SafetensorsFile(Mapping[str, np.ndarray]):
    """A memory-mapped ``.safetensors`` file: ``{name: read-only numpy view}``.

    Raises:
        CheckpointError: the file is missing, truncated, not safetensors (a
            pickle, say) or its header is inconsistent; the message names the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file not found: {self.path}") from None
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint file {self.path}: {exc.strerror or exc}") from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 8:
                raise CheckpointError(f"{self.path} is not a safetensors file (only {size} bytes)")
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > min(MAX_HEADER, size - 8):
                hint = " (it looks like a pickle: load .bin files as pytorch_model.bin)" if _looks_pickled(self.path) else ""
                limit = f"the file size {size}" if header_len > size - 8 else f"the format's limit of {MAX_HEADER}"
                raise CheckpointError(f"{self.path} is not a valid safetensors file: header length {header_len} "
                                      f"exceeds {limit}{hint}")
            raw = handle.read(header_len)
            self._data_start = 8 + header_len
            self.metadata, entries = parse_header(self.path, raw, size - self._data_start, _DTYPES)
            library_check(self.path, set(entries))
            self._mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size > 0 else None
        self._entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {
            name: (e.dtype, e.shape, e.begin, e.end) for name, e in entries.items()
        }

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            dtype, shape, begin, end = self._entries[name]
        except KeyError:
            raise KeyError(f"{name!r} not in {self.path}") from None
        count = (end - begin) // dtype.itemsize
        return np.frombuffer(self._mmap, dtype=dtype, count=count, offset=self._data_start + begin).reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def blocks(self, name: str, max_bytes: int | None = None) -> Iterator[tuple[Any, np.ndarray]]:
        """``(index, view)`` blocks of tensor ``name`` along its first axis.

        Each block is at most ``max_bytes`` (default :data:`BLOCK_BYTES`; one row at least); its
        pages leave this process's resident memory when the next block is asked for. ``index``
        selects the block in an array of the tensor's shape (``slice(start, stop)``; ``...`` for a
        0-d tensor).
        """
        array = self[name]
        _, _, begin, end = self._entries[name]
        begin += self._data_start
        if array.ndim == 0 or array.shape[0] == 0:
            yield ..., array
            self._release(begin, begin + array.nbytes)
            return
        row_bytes = max(array.nbytes // array.shape[0], 1)
        rows = max((max_bytes or BLOCK_BYTES) // row_bytes, 1)
        for start in range(0, array.shape[0], rows):
            stop = min(start + rows, array.shape[0])
            yield slice(start, stop), array[start:stop]
            self._release(begin + start * row_bytes, begin + stop * row_bytes)

    def _release(self, begin: int, end: int) -> None:
        """Drop the mapped pages of bytes ``[begin, end)`` from the process (they stay in the page cache).

        The mapping is shared and read-only, so a later read of a dropped page faults it back in
        from the file: views handed out earlier stay valid.
        """
        if self._mmap is None or end <= begin or not hasattr(self._mmap, "madvise"):
            return  # pragma: no cover - madvise is missing only outside Linux/macOS
        start = begin - begin % _PAGE  # madvise wants a page-aligned start
        self._mmap.madvise(mmap.MADV_DONTNEED, start, min(end, len(self._mmap)) - start)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` without touching any tensor data."""
        return {k: v[1] for k, v in self._entries.items()}

    def dtype(self, name: str) -> np.dtype:
        return self._entries[name][0]

    def __repr__(self) -> str:
        return f"SafetensorsFile({str(self.path)!r}, {len(self)} tensors)"


class ShardedCheckpoint(Mapping[str, np.ndarray]):
    """A sharded checkpoint (``model.safetensors.index.json`` + shards), read lazily."""

    def __init__(self, index_path: str | os.PathLike) -> None:
        self.path = Path(index_path)
        weight_map, self.metadata = read_index(self.path)
        self._shards: dict[str, SafetensorsFile] = {}
        for key, shard in sorted(weight_map.items(), key=lambda item: item[1]):
            if shard not in self._shards:
                path = confined_shard(self.path, shard, key)
                if not path.is_file():
                    raise CheckpointError(f"{self.path}: shard {shard!r} (holding key {key!r}) is missing")
                self._shards[shard] = SafetensorsFile(path)
        self._where: dict[str, SafetensorsFile] = {}
        for key, shard in weight_map.items():
            if key not in self._shards[shard]:
                raise CheckpointError(f"{self.path}: key {key!r} is mapped to {shard}, which does not hold it")
            self._where[key] = self._shards[shard]

    def __getitem__(self, name: str) -> np.ndarray:
        return self._where[name][name]

    def blocks(self, name: str, max_bytes: int | None = None) -> Iterator[tuple[Any, np.ndarray]]:
        """:meth:`SafetensorsFile.blocks` of the shard holding ``name``."""
        return self._where[name].blocks(name, max_bytes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: f.shape(k) for k, f in self._where.items()}

    def dtype(self, name: str) -> np.dtype:
        return self._where[name].dtype(name)


def open_checkpoint(directory: str | os.PathLike) -> SafetensorsFile | ShardedCheckpoint:
    """Open ``model.safetensors`` (or its sharded index) in ``directory``."""
    directory = Path(directory)
    if (directory / SAFE_WEIGHTS_NAME).is_file():
        return SafetensorsFile(directory / SAFE_WEIGHTS_NAME)
    if (directory / SAFE_WEIGHTS_INDEX_NAME).is_file():
        return ShardedCheckpoint(directory / SAFE_WEIGHTS_INDEX_NAME)
    raise CheckpointError(f"no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} in {directory}")


def read_blocks(tensors: Mapping[str, np.ndarray], name: str, max_bytes: int | None = None
                ) -> Iterator[tuple[Any, np.ndarray]]:
    """``(index, block)`` pieces of ``tensors[name]`` for a loader to copy into its own array one by one.

    With a memory-mapped checkpoint (:class:`SafetensorsFile`, :class:`ShardedCheckpoint`) each
    block's file pages are dropped from the process once copied, so a load never holds the mapped
    file and the framework's copy at once; any other mapping (a ``pytorch_model.bin`` read into
    numpy) yields the whole tensor as one block. ``dest[index] = block`` rebuilds the tensor in an
    array of its shape; for a transposed target, ``dest.T[index] = block``.
    """
    if hasattr(tensors, "blocks"):
        return tensors.blocks(name, max_bytes)
    return iter([(..., np.asarray(tensors[name]))])


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:1] == b"\x80" or head[:2] == b"PK"


def _header(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> tuple[bytes, list[str]]:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    names = sorted(tensors)
    for name in names:
        array = tensors[name]
        code = _CODES.get(np.dtype(array.dtype).newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
        if code is None:
            raise CheckpointError(f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot store")
        nbytes = array.size * array.dtype.itemsize
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # align the data section to 8 bytes
    return raw, names


def save_file(tensors: Mapping[str, np.ndarray], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` to one safetensors file, atomically; returns the path."""
    path = Path(path)
    # np.asarray(order="C") keeps 0-d tensors 0-d (np.ascontiguousarray would make them 1-d).
    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}
    raw, names = _header(arrays, {"format": "pt", **(metadata or {})})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name in names:
                array = arrays[name].astype(arrays[name].dtype.newbyteorder("<"), copy=False)
                # Write the buffer itself: tobytes() would copy the largest tensor once more.
                if array.size:
                    f.write(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    for unit, factor in (("GIB", 2**30), ("MIB", 2**20), ("KIB", 2**10), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def save_checkpoint(
    tensors: Mapping[str, np.ndarray],
    directory: str | os.PathLike,
    *,
    max_shard_size: int | str = "5GB",
    metadata: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``model.safetensors``, or shards plus an index above ``max_shard_size``.

    Stale weight files from an earlier save in ``directory`` are removed only
    after the new ones are in place. Returns the written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    limit = _parse_size(max_shard_size)
    shards: list[dict[str, np.ndarray]] = [{}]
    current = 0
    for name in sorted(tensors):
        nbytes = np.asarray(tensors[name]).nbytes
        if shards[-1] and current + nbytes > limit:
            shards.append({})
            current = 0
        shards[-1][name] = tensors[name]
        current += nbytes
    old = set(directory.glob("model*.safetensors")) | set(directory.glob(SAFE_WEIGHTS_INDEX_NAME))
    written: list[Path] = []
    if len(shards) == 1:
        written.append(save_file(shards[0], directory / SAFE_WEIGHTS_NAME, metadata))
    else:
        weight_map: dict[str, str] = {}
        total = 0
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            written.append(save_file(shard, directory / name, metadata))
            for key, value in shard.items():
                weight_map[key] = name
                total += np.asarray(value).nbytes
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        index_path = directory / SAFE_WEIGHTS_INDEX_NAME
        tmp = index_path.with_name(f".{index_path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, index_path)
        written.append(index_path)
    for stale in old - set(written):
        stale.unlink()
    return written
