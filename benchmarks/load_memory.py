"""Peak memory and time of loading / converting a bert-base-sized checkpoint, per framework, against transformers.

Usage:
    python benchmarks/load_memory.py [--jobs convert,transformers,torch,tf,flax] [--json out.json]

A random bert-base checkpoint (110M float32 parameters, ~440 MB) is written
once; each job then runs twice, each time in a fresh subprocess which imports
its framework, resets the kernel's peak-RSS counter (/proc/self/clear_refs),
loads or converts, and reports ``peak RSS (VmHWM) - RSS before loading`` as a
multiple of the weights' size, and the seconds the load took. RSS counts the
memory-mapped file's pages too, once touched, so a loader that keeps the
mapped file beside its own copy shows 2x.

- **cold**: the first load in the process: the figure includes one-off costs
  that do not scale with the weights (modules the first load imports, the
  framework's runtime set-up).
- **warm** (the figure the target applies to): the same job first loads a
  tiny checkpoint of the same class, so the baseline already holds those
  one-off costs and the peak above it is what the weights cost.

Linux only. The target (issue 6): <= ~1.1x; ``tests/test_load_memory.py``
asserts <= 1.25x (warm) with :func:`measure`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

JOBS = {
    "convert": ("import tribert.convert as c", "c.convert(SRC, 'safetensors', OUT / ('converted' + TAG), head='base')"),
    "convert-flax": ("import tribert.convert as c, flax.serialization",
                     "c.convert(SRC, 'flax', OUT / ('converted-flax' + TAG), head='base')"),
    "transformers": ("import transformers, torch", "m = transformers.BertModel.from_pretrained(SRC)"),
    "torch": ("import bert_torch, torch", "m = bert_torch.BertModel.from_pretrained(SRC)"),
    "tf": ("import bert_tf", "m = bert_tf.TFBertModel.from_pretrained(SRC)"),
    "flax": ("import bert_flax", "m = bert_flax.FlaxBertModel.from_pretrained(SRC)"),
}

CHILD = """
import os, sys, time
from pathlib import Path
OUT = Path({out!r})
{imports}

def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

def load(SRC, TAG):
    {load}

if {warmup!r}:
    load(Path({warmup!r}), '-warmup')
before = rss('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # reset VmHWM to the current RSS
start = time.perf_counter()
load(Path({src!r}), '')
print(rss('VmHWM:') - before, time.perf_counter() - start)
"""


def measure(job: str, src: Path, out: Path, warmup: Path | None = None) -> tuple[int, float]:
    """``(peak RSS above the baseline in bytes, seconds)`` of ``job`` loading ``src`` in a fresh process.

    With ``warmup``, the process first runs the job on that (tiny) checkpoint, so the baseline
    holds the one-off costs. ``out`` receives what the convert jobs write.

    Raises:
        RuntimeError: the subprocess failed (its last stderr line).
    """
    imports, load = JOBS[job]
    code = CHILD.format(src=str(src), out=str(out), warmup=str(warmup) if warmup else "", imports=imports, load=load)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"{job} failed")
    peak, seconds = proc.stdout.strip().splitlines()[-1].split()
    return int(peak), float(seconds)


TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)  # the warm-up checkpoint


def write_checkpoint(directory: Path, **config: int) -> int:
    """A random checkpoint in canonical safetensors (bert-base unless ``config`` fields say otherwise);
    returns the weights' size in bytes."""
    import numpy as np

    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint

    config = BertConfig(**config)  # bert-base defaults
    rng = np.random.default_rng(0)
    tensors = {k: rng.standard_normal(s, dtype=np.float32) * 0.02 for k, s in canonical_shapes(config, "base").items()}
    save_checkpoint(tensors, directory)
    config.save_pretrained(directory)
    return sum(t.nbytes for t in tensors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated subset of {', '.join(JOBS)}")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tribert-mem-") as tmp:
        src, tiny, out = Path(tmp) / "bert-base", Path(tmp) / "tiny", Path(tmp) / "out"
        out.mkdir()
        size = write_checkpoint(src)
        write_checkpoint(tiny, **TINY)
        for job in args.jobs.split(","):
            row = {}
            for mode, warmup in (("warm", tiny), ("cold", None)):
                (out / mode).mkdir(exist_ok=True)
                try:
                    peak, seconds = measure(job, src, out / mode, warmup)
                except RuntimeError as exc:
                    row[mode] = {"error": str(exc)}
                    continue
                row[mode] = {"peak_above_baseline_mb": round(peak / 2**20, 1), "ratio_to_weights": round(peak / size, 3),
                             "seconds": round(seconds, 2)}
            results[job] = row
            print(f"{job:<14} {json.dumps(row)}", flush=True)
    report = {"weights_mb": round(size / 2**20, 1), "results": results, "command": shlex.join(["python", *sys.argv])}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
