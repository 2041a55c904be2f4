"""The framework-neutral pipeline engine: tokenize, batch by length, forward, post-process.

A backend supplies only ``forward``: a function from a batch of numpy inputs
(``input_ids``, ``token_type_ids``, ``attention_mask``, each (batch, seq)) to a
dict of numpy outputs (``logits``, ``last_hidden_state``, ``start_logits`` /
``end_logits``). Everything else (pre-processing, length-sorted batching,
shape buckets for compiled backends, post-processing) lives here once, so the
three frameworks give the same answers by construction. Every batch is checked
against the model's input contract (:func:`bert_core.validate_inputs`) here, on
the host, before the backend's (possibly compiled) forward sees it: an id
outside the vocabulary or an input longer than the position table raises
:class:`bert_core.InputError` in every framework alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bert_core.errors import InputError, TriBertError
from bert_core.inputs import max_sequence_length, validate_inputs
from bert_core.logging import is_progress_bar_enabled
from bert_core.packing import pack_sequences, plan_packing

__all__ = ["Feature", "Pipeline", "Task", "PipelineError", "bucket_length", "bucket_rows", "softmax", "PACK_ROW_LENGTH"]

Forward = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

#: Tokens per packed row once a call holds that many (longer inputs get a longer row).
#: Attention over a row costs row_length^2 whatever it holds; at 128 that is a few
#: percent of a BERT layer's dense FLOPs, which packing stops spending on padding.
PACK_ROW_LENGTH = 128


class PipelineError(TriBertError):
    """Bad pipeline input or argument (names the task, the argument and the input)."""


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64-free numpy (float32 in, float32 out)."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def bucket_length(length: int, multiple: int = 16, limit: int | None = None) -> int:
    """Round ``length`` up to a shape bucket: multiples of ``multiple`` up to 64, then powers of two.

    Compiled backends (XLA, ``jax.jit``) recompile per input shape; buckets
    keep the number of shapes small while wasting at most ~2x on padding for
    long inputs and under ``multiple`` tokens for short ones.
    """
    if length <= 64:
        padded = -(-length // multiple) * multiple
    else:
        padded = 1 << (length - 1).bit_length()
    return min(padded, limit) if limit else padded


def bucket_rows(rows: int, batch_size: int) -> int:
    """Round a batch's row count up to a power of two (at most ``batch_size``).

    XLA compiles per shape, batch size included: the last, partial batch of a
    call then costs one of log2(batch_size) + 1 programs per length bucket.
    """
    return min(1 << (rows - 1).bit_length(), batch_size)


@dataclass
class Feature:
    """One model row: token lists plus whatever post-processing needs to remember."""

    item: int
    inputs: dict[str, list[int]]
    extra: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


class Task:
    """A pipeline task: how to turn one input into features, and features into a result."""

    name = ""
    outputs: tuple[str, ...] = ()
    token_level = True  # outputs are per token, (batch, seq, ...), trimmed to each row's real length

    def __init__(self, tokenizer: Any, config: Any, model_dir: Any = None):
        self.tokenizer = tokenizer
        self.config = config
        self.model_dir = model_dir

    def parameters(self, **params: Any) -> dict[str, Any]:
        """Validate and default the call parameters; unknown names raise."""
        if params:
            raise PipelineError(f"{self.name}: unknown argument(s) {', '.join(sorted(params))}")
        return {}

    def normalize_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        """``(items, batched)``: a single string or a list of them."""
        if isinstance(inputs, str):
            return [inputs], False
        if isinstance(inputs, (list, tuple)) and all(isinstance(x, str) for x in inputs):
            return list(inputs), True
        raise PipelineError(f"{self.name}: expected a string or a list of strings, got {type(inputs).__name__}")

    def preprocess(self, index: int, item: Any, params: dict[str, Any]) -> list[Feature]:
        raise NotImplementedError

    def postprocess(self, item: Any, features: list[Feature], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def combine(self, results: list[Any], batched: bool) -> Any:
        """The call's return value from the per-input results."""
        return results if batched else results[0]


class Pipeline:
    """Run a :class:`Task` over inputs with a backend's ``forward``.

    Args:
        task: the task object.
        forward: batch of numpy inputs -> dict of numpy outputs.
        batch_size: rows per forward call (inputs are sorted by length first,
            so a batch holds similar lengths and little compute goes to padding).
        bucket: round each batch's length up to :func:`bucket_length` and its row count
            to :func:`bucket_rows` (fully padded rows, dropped from the results; set by
            compiled backends so shapes, and compilations, stay few).
        framework: "torch", "tf" or "flax", for ``repr`` and errors.
        pack: for tasks with per-token outputs, lay several inputs end to end in each row
            (:mod:`bert_core.packing`): ``forward`` then also gets ``position_ids`` and a
            block-diagonal ``attention_mask (rows, seq, seq)``, and ``batch_size`` counts rows.
            Rows are :data:`PACK_ROW_LENGTH` long (or a bucket of the longest input) and their
            number per call a power of two, so compiled shapes stay few.
    """

    def __init__(self, task: Task, forward: Forward, *, batch_size: int = 8, bucket: bool = False, framework: str = "",
                 pack: bool = False):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineError(f"batch_size must be a positive int, got {batch_size!r}")
        self.task = task
        self.forward = forward
        self.batch_size = batch_size
        self.bucket = bucket
        self.framework = framework
        self.pack = pack
        self.tokenizer = task.tokenizer

    def __repr__(self) -> str:
        return f"Pipeline(task={self.task.name!r}, framework={self.framework!r}, batch_size={self.batch_size})"

    def __call__(self, inputs: Any = None, *, batch_size: int | None = None, progress: bool | None = None, **params: Any) -> Any:
        """Run the task; a single input gives one result, a list gives a list."""
        params = self.task.parameters(**params)
        items, batched = self.task.normalize_inputs(inputs)
        features = [f for index, item in enumerate(items) for f in self.task.preprocess(index, item, params)]
        try:
            self._run(features, batch_size or self.batch_size, progress)
        except InputError as exc:
            raise (self._which_input(features) or exc) if batched else exc from None
        grouped: list[list[Feature]] = [[] for _ in items]
        for feature in features:
            grouped[feature.item].append(feature)
        return self.task.combine([self.task.postprocess(item, group, params) for item, group in zip(items, grouped)], batched)

    def _progress(self, batches: list[Any], count: int, progress: bool | None) -> Any:
        # By default a bar over long inputs, unless bert_core.logging.disable_progress_bar() was called.
        if not (progress if progress is not None else count > 256 and is_progress_bar_enabled()):
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, desc=self.task.name, unit="batch", file=sys.stderr)

    def _length_limit(self) -> int | None:
        """The longest row a bucket may pad to: the tokenizer's limit and the model's position table."""
        limits = [getattr(self.tokenizer, "model_max_length", None)]
        if getattr(self.task.config, "max_position_embeddings", None):
            limits.append(max_sequence_length(self.task.config))
        limits = [n for n in limits if n and n < 1_000_000]
        return min(limits) if limits else None

    def _forward(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The backend's forward on a host batch that holds the model's input contract.

        Checked here because a compiled forward (XLA, ``jax.jit``) would clamp or wrap
        an out-of-range id silently; the same check then holds in every backend.
        """
        validate_inputs(self.task.config, input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"),
                        position_ids=batch.get("position_ids"), seq_length=batch["input_ids"].shape[-1])
        return self.forward(batch)

    def _which_input(self, features: list[Feature]) -> InputError | None:
        """The error of the first input that fails the input contract alone, naming its index in the call."""
        for feature in features:
            row = {key: np.asarray([values]) for key, values in feature.inputs.items()}
            try:
                validate_inputs(self.task.config, input_ids=row["input_ids"], token_type_ids=row.get("token_type_ids"),
                                seq_length=row["input_ids"].shape[-1])  # fmt: skip
            except InputError as exc:
                return InputError(f"{self.task.name}: input {feature.item}: {exc}")
        return None

    def _run(self, features: list[Feature], batch_size: int, progress: bool | None) -> None:
        if self.pack and self.task.token_level and features:
            return self._run_packed(features, batch_size, progress)
        order = sorted(range(len(features)), key=lambda i: len(features[i].inputs["input_ids"]))
        batches = self._progress([order[i : i + batch_size] for i in range(0, len(order), batch_size)], len(features), progress)
        limit = self._length_limit()
        for rows in batches:
            length = max(len(features[i].inputs["input_ids"]) for i in rows)
            if self.bucket:
                length = max(length, bucket_length(length, limit=limit))
            batch = {
                key: np.stack([_pad(features[i].inputs[key], length, self._pad_value(key)) for i in rows])
                for key in ("input_ids", "token_type_ids", "attention_mask")
            }
            if self.bucket and len(rows) < bucket_rows(len(rows), batch_size):
                # Fully padded rows (attention_mask 0) stay finite under the one mask rule; never read.
                extra = bucket_rows(len(rows), batch_size) - len(rows)
                batch = {k: np.concatenate([v, np.full((extra, length), self._pad_value(k), v.dtype)])
                         for k, v in batch.items()}
            outputs = self._forward(batch)
            for position, i in enumerate(rows):
                real = len(features[i].inputs["input_ids"])
                row = {key: np.asarray(outputs[key][position]) for key in self.task.outputs}
                features[i].outputs = {k: v[:real] for k, v in row.items()} if self.task.token_level else row

    def _run_packed(self, features: list[Feature], batch_size: int, progress: bool | None) -> None:
        """Pack every feature of the call (first-fit decreasing), then run ``batch_size`` rows at a time."""
        lengths = [len(f.inputs["input_ids"]) for f in features]
        longest = max(lengths)
        row_length = max(longest, bucket_length(max(longest, min(sum(lengths), PACK_ROW_LENGTH)), limit=self._length_limit()))
        plan = plan_packing(lengths, row_length)
        starts = list(range(0, plan.num_rows, batch_size))
        for start in self._progress(starts, len(features), progress):
            stop = min(start + batch_size, plan.num_rows)
            # Row counts rounded up to powers of two: a handful of compiled shapes per row length.
            indices, packing = plan.select_rows(start, stop, bucket_rows(stop - start, batch_size))
            chosen = [features[i].inputs for i in indices]
            batch, _ = pack_sequences(chosen, packing=packing, pad_token_id=self.tokenizer.pad_token_id)
            del batch["segment_ids"]
            outputs = self._forward(batch)
            pieces = {key: packing.unpack(outputs[key]) for key in self.task.outputs}
            for j, i in enumerate(indices):
                features[i].outputs = {key: np.asarray(pieces[key][j]) for key in self.task.outputs}

    def _pad_value(self, key: str) -> int:
        return self.tokenizer.pad_token_id if key == "input_ids" else 0


def _pad(values: Sequence[int], length: int, fill: int) -> np.ndarray:
    out = np.full(length, fill, dtype=np.int64)
    out[: len(values)] = values
    return out
