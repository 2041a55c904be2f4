"""Any checkpoint format -> canonical tensors -> a target format, atomically (``tribert convert``'s core).

The output directory is assembled in a temporary sibling and renamed into
place, so a failure leaves nothing behind. Alongside the weights it holds the
config, the tokenizer and sentence-transformers files of the source, and
``tribert-manifest.json`` (sha256 of every canonical tensor and of the config).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from bert_core._io import atomic_directory, recover_directory
from bert_core.config import BertConfig
from bert_core.errors import CheckpointError, ConfigError

from .formats import TOKENIZER_FILES, Source, cast_tensors, detect_source, manifest, read_config, read_source
from .layout import canonical_shapes, infer_head
from .legacy import write_flax_msgpack, write_torch_bin
from .matching import LoadReport, match_state
from .rules import TIED_KEYS
from .safetensors_io import save_checkpoint

__all__ = ["WRITERS", "STAGES", "ConvertResult", "convert", "canonicalize", "MANIFEST_NAME"]

MANIFEST_NAME = "tribert-manifest.json"
#: The steps of :func:`convert`, in order, as reported to its ``on_stage`` callback.
STAGES = ("read", "map keys", "write", "manifest")


def _write_safetensors(tensors, config, head, out: Path, *, max_shard_size="5GB") -> list[Path]:
    return save_checkpoint(tensors, out, max_shard_size=max_shard_size)


def _write_torch(tensors, config, head, out: Path) -> list[Path]:
    return [write_torch_bin(tensors, out / "pytorch_model.bin")]


def _write_flax(tensors, config, head, out: Path) -> list[Path]:
    return [write_flax_msgpack(tensors, out / "flax_model.msgpack")]


#: The targets conversion writes itself: target -> writer(tensors, config, head, out_dir) -> written paths.
#: Files of a framework's own format import that framework lazily; a target that needs a backend
#: (``tf``, ``keras``, ``savedmodel``) is the backend's ``CONVERT_WRITERS``, passed in by ``tribert.convert``.
WRITERS: dict[str, Callable] = {"safetensors": _write_safetensors, "torch": _write_torch, "flax": _write_flax}


@dataclass
class ConvertResult:
    """What a conversion did: where, which head, the key report and the written files."""

    out: Path
    head: str
    report: LoadReport
    files: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    def summary(self) -> str:
        r = self.report
        lines = [
            f"wrote {self.out} ({', '.join(self.files)})",
            f"head: {self.head}; tensors: {len(r.assignments)} loaded, {len(r.tied_keys)} tied, "
            f"{len(r.ignored_keys)} buffers skipped, {len(r.missing_keys)} missing, {len(r.unexpected_keys)} unused",
        ]
        if r.missing_keys:
            lines.append(f"missing (the target model will initialise them): {r.missing_keys}")
        if r.unexpected_keys:
            lines.append(f"unused (dropped at your request): {r.unexpected_keys}")
        return "\n".join(lines)


def canonicalize(
    tensors: Mapping[str, np.ndarray], config: BertConfig, head: str, *, drop_unused: bool = False, source: str = ""
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Rename a checkpoint's keys to ``head``'s canonical layout, checking every shape.

    Raises:
        CheckpointError: a tensor the head does not use (unless ``drop_unused``),
            or a shape mismatch; the message lists every key.
    """
    layout = canonical_shapes(config, head)
    shapes = tensors.shapes() if hasattr(tensors, "shapes") else {k: np.shape(v) for k, v in tensors.items()}
    report = match_state(shapes, layout, source=source)
    if report.unexpected_keys and not drop_unused:
        raise CheckpointError(
            f"{source or 'the checkpoint'} holds {len(report.unexpected_keys)} tensor(s) the {head!r} head does not "
            f"use: {report.unexpected_keys}. Choose the head that uses them with --head, or pass --drop-unused "
            f"to drop them knowingly."
        )
    out = {key: tensors[src] for key, src in report.assignments.items()}
    # A tied copy (decoder <- word embeddings) is written once, as transformers saves it.
    for tied, target in TIED_KEYS.items():
        if config.tie_word_embeddings and tied in out and target in out and np.array_equal(out[tied], out[target]):
            del out[tied]
            report.tied_keys.append(tied)
    return out, report


def _copy_side_files(source: Source, tmp: Path, config_path: Path | None) -> None:
    for name in TOKENIZER_FILES:
        src = source.directory / name
        if src.is_file():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / name)


def _check_out(out: Path, overwrite: bool, force: bool) -> None:
    """Refuse an ``out`` that holds something unless told to replace it, and a non-tribert one unless forced."""
    recover_directory(out)  # a conversion killed mid-swap: put the old output back first
    if not (out.exists() or out.is_symlink()) or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise CheckpointError(f"output {out} already exists; pass --overwrite to replace it")
    if not force and not (out.is_dir() and (out / MANIFEST_NAME).is_file()):
        raise CheckpointError(f"output {out} is not a tribert output (it holds no {MANIFEST_NAME}), so --overwrite "
                              "will not replace it; pass --force as well to replace it anyway")


def convert(
    src: str | os.PathLike,
    to: str,
    out: str | os.PathLike,
    *,
    head: str | None = None,
    dtype: str | None = None,
    config_path: str | os.PathLike | None = None,
    drop_unused: bool = False,
    overwrite: bool = False,
    force: bool = False,
    max_shard_size: int | str = "5GB",
    writer: Callable | None = None,
    on_stage: Callable[[str], None] | None = None,
    **hub_kwargs,
) -> ConvertResult:
    """Convert the checkpoint ``src`` to format ``to`` in directory ``out``.

    Args:
        src: a directory, a weight file, a TF1 checkpoint prefix or a hub repo id.
        to: the target's name (recorded in the manifest); one of :data:`WRITERS` unless ``writer`` is given.
        head: registry name of the head (default: from ``config.architectures``, else the keys present).
        dtype: cast floating tensors (float32 / float16 / bfloat16).
        config_path: a config file when none sits next to the weights.
        drop_unused: drop tensors the head does not use instead of failing.
        overwrite: replace an existing ``out`` that is a tribert output (holds :data:`MANIFEST_NAME`).
            The old output stays whole until the new one is complete (:func:`bert_core._io.atomic_directory`).
        force: with ``overwrite``, replace ``out`` even when it is not a tribert output.
        writer: ``writer(tensors, config, head, out_dir) -> written paths`` for ``to`` (a backend's
            ``CONVERT_WRITERS`` entry; ``tribert.convert`` looks it up).
        on_stage: called with each name of :data:`STAGES` as that step starts (a progress bar).

    Raises:
        CheckpointError / ConfigError: bad input; nothing is written.
    """
    if writer is None and to not in WRITERS:
        raise ConfigError(f"--to {to!r} is not supported here; choose one of {sorted(WRITERS)} "
                          "(tribert.convert adds the targets the backends write)")
    if writer is None:
        writer = functools.partial(WRITERS[to], max_shard_size=max_shard_size) if to == "safetensors" else WRITERS[to]
    out = Path(out)
    _check_out(out, overwrite, force)
    stage = on_stage or (lambda name: None)
    stage("read")
    source = detect_source(src, **hub_kwargs)
    config = read_config(source, config_path)
    tensors = read_source(source, config)
    head = head or infer_head(config, tensors.keys())
    stage("map keys")
    canonical, report = canonicalize(tensors, config, head, drop_unused=drop_unused, source=str(source.weights))
    canonical = cast_tensors(canonical, dtype)
    config = config.copy()
    if head != "base":
        from bert_core.heads import get_head

        config.architectures = [get_head(head).class_name]

    with atomic_directory(out) as tmp:
        # Side files first: the SavedModel writer builds its in-graph tokenizer from them.
        _copy_side_files(source, tmp, Path(config_path) if config_path else None)
        stage("write")
        written = writer(canonical, config, head, tmp)
        config.save_pretrained(tmp)
        stage("manifest")
        info = manifest(canonical, config)
        info |= {"source": str(src), "source_format": source.format, "target_format": to, "head": head}
        (tmp / MANIFEST_NAME).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return ConvertResult(out, head, report, sorted(Path(p).name for p in written), info)
