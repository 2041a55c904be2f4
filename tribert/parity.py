"""Three-way parity: one canonical checkpoint, every framework, max |diff| per head and output.

``tribert parity`` and the parity tests share this module. For each head it
writes one canonical checkpoint (the source's tensors where it has them,
seeded random ones for a head the source lacks, so every framework loads the
same numbers), loads it through each backend's public ``from_pretrained``,
runs one padded batch and compares every output (logits, hidden states,
attentions) between each pair of frameworks and against `transformers`, on
real (unpadded) positions only. Frameworks are imported only when asked for.
"""

from __future__ import annotations

import importlib
import itertools
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bert_core import HEADS, BertConfig, TriBertError
from bert_core.heads import get_head

from conversion.checkpoint import resolve_checkpoint
from conversion.convert import canonicalize
from conversion.layout import canonical_shapes
from conversion.safetensors_io import save_checkpoint

from . import progress

__all__ = ["FRAMEWORKS", "TOLERANCE", "ParityRow", "head_checkpoint", "make_inputs", "run_framework", "parity_table", "format_table"]

FRAMEWORKS = ("torch", "tf", "flax")
REFERENCE = "transformers"
PACKAGES = {"torch": "bert_torch", "tf": "bert_tf", "flax": "bert_flax", REFERENCE: "transformers"}
TOLERANCE = {"float32": 1e-5, "bfloat16": 6e-2, "float16": 1e-2}
#: The relative part of the bound, ``|a - b| <= TOLERANCE + RTOL * max(|a|, |b|)`` elementwise
#: (torch.testing's defaults). It adds nothing on O(1) outputs; on the real checkpoint's masked-LM
#: logits (~6, a float32 ulp 5e-7) it admits the ~10 ulps by which any two float32 implementations
#: differ there: transformers itself is 9e-6 from the float64 result.
RTOL = {"float32": 1.3e-6, "bfloat16": 1.6e-2, "float16": 1e-3}
NUM_CHOICES = 2


@dataclass
class ParityRow:
    """One comparison: ``max_abs_diff`` of ``output`` of ``head`` between frameworks ``a`` and ``b``."""

    head: str
    output: str
    a: str
    b: str
    max_abs_diff: float
    tolerance: float
    within: bool | None = None  # every element within tolerance + rtol * magnitude (None: absolute only)
    rtol: float = 0.0

    @property
    def ok(self) -> bool:
        if not np.isfinite(self.max_abs_diff):
            return False
        return self.within if self.within is not None else self.max_abs_diff <= self.tolerance


def head_checkpoint(source: str | Path, head: str, out_dir: Path, seed: int = 0, **config_changes: Any) -> BertConfig:
    """Write ``head``'s canonical checkpoint from ``source`` into ``out_dir``; returns its config.

    Tensors the source lacks (e.g. a classifier on a backbone checkpoint) are
    drawn from N(0, initializer_range) with ``seed``, LayerNorm weights set to 1.
    ``config_changes`` (e.g. ``num_labels``, ``id2label``) apply to the written config.
    """
    resolved = resolve_checkpoint(source)
    config = resolved.config.copy(architectures=[get_head(head).class_name], **config_changes)
    tensors, report = canonicalize(resolved.tensors, config, head, drop_unused=True, source=str(source))
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) if np.issubdtype(v.dtype, np.floating) else v for k, v in tensors.items()}
    rng = np.random.default_rng(seed)
    shapes = canonical_shapes(config, head)
    for key in report.missing_keys:
        if key.endswith("LayerNorm.weight"):
            tensors[key] = np.ones(shapes[key], np.float32)
        else:
            tensors[key] = (rng.standard_normal(shapes[key]) * config.initializer_range).astype(np.float32)
    save_checkpoint(tensors, out_dir)
    config.save_pretrained(out_dir)
    return config


def make_inputs(config: BertConfig, head: str, batch: int = 4, seq: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """A right-padded batch: a full row, a partly padded one, a [CLS]-only one and a fully padded one.

    Multiple choice gets ``NUM_CHOICES`` choices per row. The fully padded row
    checks the shared mask rule: its outputs must stay finite and agree.
    """
    rng = np.random.default_rng(seed)
    lead = (batch, NUM_CHOICES) if head == "multiple-choice" else (batch,)
    lengths = np.resize(np.array([seq, max(seq - 4, 2), 1, 0]), lead[0])
    mask = (np.arange(seq) < lengths[:, None]).astype(np.int64)
    mask = np.broadcast_to(mask[:, None, :], (*lead, seq)).copy() if len(lead) == 2 else mask
    ids = rng.integers(5, config.vocab_size, size=(*lead, seq), dtype=np.int64)
    ids = np.where(mask == 1, ids, config.pad_token_id or 0)
    types = np.where((np.arange(seq) >= seq // 2) & (mask == 1), 1, 0).astype(np.int64) if config.type_vocab_size > 1 else np.zeros_like(ids)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch
        value = value.detach().float().cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value, dtype=np.float32)


def flatten_outputs(output: Any) -> dict[str, np.ndarray]:
    """``{"logits": ..., "hidden_states[2]": ...}`` from any framework's output object."""
    items = output.items() if hasattr(output, "items") else vars(output).items()
    flat: dict[str, np.ndarray] = {}
    for name, value in items:
        if value is None or name in ("past_key_values", "cache", "loss"):
            continue
        if isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                flat[f"{name}[{i}]"] = _numpy(v)
        else:
            flat[name] = _numpy(value)
    return flat


def run_framework(framework: str, directory: Path, head: str, inputs: dict[str, np.ndarray], dtype: str = "float32", device: str = "cpu") -> dict[str, np.ndarray]:
    """Load ``directory`` with ``framework``'s public class for ``head`` and run ``inputs``."""
    try:
        package = importlib.import_module(PACKAGES[framework])
    except ImportError as err:
        raise TriBertError(f"framework {framework!r} is not available: {err}") from None
    cls = getattr(package, get_head(head).class_name)
    options = dict(output_hidden_states=True, output_attentions=True)
    # Each backend's pipeline resolves (and checks) the device: never a silent fallback to the CPU.
    target = importlib.import_module(f"{PACKAGES['torch' if framework == REFERENCE else framework]}.pipeline").pipeline_device(device)
    if framework in ("torch", REFERENCE):
        import torch

        model = cls.from_pretrained(directory, dtype=getattr(torch, dtype)).to(target).eval()
        with torch.no_grad():
            return flatten_outputs(model(**{k: torch.from_numpy(v).to(target) for k, v in inputs.items()}, **options))
    if framework == "tf":
        import tensorflow as tf

        # Weights are created, and the forward runs, on the asked device ("cpu" / "gpu" / "gpu:1").
        with tf.device(target):
            model = cls.from_pretrained(directory, dtype=dtype)
            return flatten_outputs(model(**{k: tf.constant(v) for k, v in inputs.items()}, training=False, **options))
    import jax
    import jax.numpy as jnp

    model = cls.from_pretrained(directory, dtype=getattr(jnp, dtype))
    model.params = jax.device_put(model.params, target)
    return flatten_outputs(model(**{k: jax.device_put(v, target) for k, v in inputs.items()}, **options))


def _valid(name: str, shape: tuple[int, ...], mask: np.ndarray, skip_empty_rows: bool = False) -> np.ndarray | None:
    """Which elements of an output are real (not padding), or ``None`` for all.

    With ``skip_empty_rows``, per-sequence outputs (pooler, logits) of rows
    without any real token are left out too: `transformers` un-masks such rows
    (they attend to every position), while tribert keeps its one mask rule
    (uniform attention), so only the three frameworks are compared there.
    """
    rows = mask.reshape(-1, mask.shape[-1]).astype(bool)  # (rows, seq)
    if name.startswith(("attentions", "cross_attentions")) and len(shape) == 4 and shape[0] == rows.shape[0]:
        keep = rows[:, None, :, None] & rows[:, None, None, :]
        return np.broadcast_to(keep, shape)
    if len(shape) >= 2 and shape[0] == rows.shape[0] and shape[1] == rows.shape[1]:
        return np.broadcast_to(rows.reshape(rows.shape + (1,) * (len(shape) - 2)), shape)
    if skip_empty_rows:
        real = mask.reshape(mask.shape[0], -1).any(axis=1)  # per example (all choices of a multiple-choice row)
        if len(shape) >= 1 and shape[0] == real.shape[0]:
            return np.broadcast_to(real.reshape(real.shape + (1,) * (len(shape) - 1)), shape)
    return None


def compare(results: dict[str, dict[str, np.ndarray]], head: str, mask: np.ndarray, tolerance: float, outputs: str = "all",
            rtol: float = 0.0) -> list[ParityRow]:  # fmt: skip
    """Rows for every pair of frameworks and every output both produced.

    ``outputs="logits"`` keeps the head's main outputs (``bert_core.heads``),
    ``"all"`` adds every hidden state and attention map. A row is ok when
    every compared element has ``|a - b| <= tolerance + rtol * max(|a|, |b|)``.
    """
    main = set(get_head(head).logits)
    rows = []
    for a, b in itertools.combinations(results, 2):
        for name in results[a]:
            if name not in results[b] or (outputs == "logits" and name not in main):
                continue
            x, y = results[a][name], results[b][name]
            if x.shape != y.shape:
                rows.append(ParityRow(head, name, a, b, float("inf"), tolerance))
                continue
            diff = np.abs(x - y)
            bound = tolerance + rtol * np.maximum(np.abs(x), np.abs(y))
            valid = _valid(name, x.shape, mask, skip_empty_rows=REFERENCE in (a, b))
            diff, bound = (diff[valid], bound[valid]) if valid is not None else (diff, bound)
            if not (np.isfinite(x).all() and np.isfinite(y).all()):
                diff, bound = np.array([np.inf]), np.array([tolerance])
            rows.append(ParityRow(head, name, a, b, float(diff.max()) if diff.size else 0.0, tolerance,
                                  within=bool((diff <= bound).all()), rtol=rtol))
    return rows


def parity_table(model: str | Path, frameworks: tuple[str, ...] = FRAMEWORKS, heads: tuple[str, ...] | None = None,
                 dtype: str = "float32", device: str = "cpu", reference: str | None = REFERENCE, seed: int = 0,
                 outputs: str = "all") -> list[ParityRow]:  # fmt: skip
    """Compare ``frameworks`` (and ``reference``) on every head of ``model``; on a terminal, a bar per framework run."""
    if outputs not in ("logits", "all"):
        raise TriBertError(f"outputs must be 'logits' or 'all', got {outputs!r}")
    if dtype not in TOLERANCE:
        raise TriBertError(f"dtype must be one of {', '.join(TOLERANCE)}, got {dtype!r}")
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        raise TriBertError(f"unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}")
    heads = tuple(heads or HEADS)
    for head in heads:
        get_head(head)
    names = (*frameworks, reference) if reference else tuple(frameworks)
    rows: list[ParityRow] = []
    with tempfile.TemporaryDirectory(prefix="tribert-parity-") as tmp, \
            progress.bar(total=len(heads) * len(names), desc="tribert parity", unit="run") as bar:  # fmt: skip
        for head in heads:
            directory = Path(tmp) / head
            config = head_checkpoint(model, head, directory, seed=seed)
            inputs = make_inputs(config, head, seed=seed)
            results = {}
            for name in names:
                bar.set_postfix_str(f"{head}: {name}")
                results[name] = run_framework(name, directory, head, inputs, dtype, device)
                bar.update()
            rows += compare(results, head, inputs["attention_mask"], TOLERANCE[dtype], outputs, RTOL[dtype])
    return rows


def format_table(rows: list[ParityRow]) -> str:
    """One line per head and framework pair: the worst output and its max |diff|."""
    worst: dict[tuple[str, str, str], ParityRow] = {}
    for row in rows:
        key = (row.head, row.a, row.b)
        if key not in worst or not (row.max_abs_diff <= worst[key].max_abs_diff):
            worst[key] = row
    lines = [f"{'head':<24} {'pair':<22} {'max |diff|':>11}  {'worst output':<22} ok"]
    for (head, a, b), row in worst.items():
        lines.append(f"{head:<24} {a + ' vs ' + b:<22} {row.max_abs_diff:>11.2e}  {row.output:<22} {'yes' if row.ok else 'NO'}")
    if rows:
        lines.append(f"ok: every compared element has |a - b| <= {rows[0].tolerance:g} + {rows[0].rtol:g} * max(|a|, |b|)")
    return "\n".join(lines)


def rows_as_dicts(rows: list[ParityRow]) -> list[dict[str, Any]]:
    return [{**asdict(r), "ok": r.ok} for r in rows]
