"""Peak memory and time of loading / converting a bert-base-sized checkpoint, per framework, against transformers.

Usage:
    python benchmarks/load_memory.py [--jobs convert,transformers,torch,tf,flax] [--json out.json]

A random bert-base checkpoint (110M float32 parameters, ~440 MB) is written
once; each job then runs in a fresh subprocess which imports its framework,
resets the kernel's peak-RSS counter (/proc/self/clear_refs), loads or
converts, and reports ``peak RSS - RSS before loading`` as a multiple of the
weights' size, and the seconds the load took (imports excluded). Linux only.
The target (issue 6): <= ~1.1x.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

JOBS = {
    "convert": ("import conversion.convert as c", "c.convert(SRC, 'safetensors', OUT / 'converted', head='base')"),
    "convert-flax": ("import conversion.convert as c, flax.serialization", "c.convert(SRC, 'flax', OUT / 'converted-flax', head='base')"),
    "transformers": ("import transformers, torch", "m = transformers.BertModel.from_pretrained(SRC)"),
    "torch": ("import bert_torch, torch", "m = bert_torch.BertModel.from_pretrained(SRC)"),
    "tf": ("import bert_tf", "m = bert_tf.TFBertModel.from_pretrained(SRC)"),
    "flax": ("import bert_flax", "m = bert_flax.FlaxBertModel.from_pretrained(SRC)"),
}

CHILD = """
import os, sys, time
from pathlib import Path
SRC, OUT = Path({src!r}), Path({out!r})
{imports}

def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
before = rss('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # reset VmHWM to the current RSS
start = time.perf_counter()
{load}
print(rss('VmHWM:') - before, time.perf_counter() - start)
"""


def write_checkpoint(directory: Path) -> int:
    """A random bert-base checkpoint in canonical safetensors; returns the weights' size in bytes."""
    import numpy as np

    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint

    config = BertConfig()  # bert-base defaults
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
        src, out = Path(tmp) / "bert-base", Path(tmp) / "out"
        out.mkdir()
        size = write_checkpoint(src)
        for job in args.jobs.split(","):
            imports, load = JOBS[job]
            code = CHILD.format(src=str(src), out=str(out), imports=imports, load=load)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode != 0:
                results[job] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
            else:
                peak, seconds = proc.stdout.strip().splitlines()[-1].split()
                results[job] = {"peak_above_baseline_mb": round(int(peak) / 2**20, 1),
                                "ratio_to_weights": round(int(peak) / size, 3), "seconds": round(float(seconds), 2)}
            print(f"{job:<14} {json.dumps(results[job])}", flush=True)
    report = {"weights_mb": round(size / 2**20, 1), "results": results, "command": shlex.join(["python", *sys.argv])}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
