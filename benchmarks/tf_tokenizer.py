"""Speed of the in-graph BERT tokenizer: core TensorFlow ops next to tensorflow-text, runs interleaved.

Usage:
    python benchmarks/tf_tokenizer.py [--repeats N] [--json benchmarks/results/tf_tokenizer.json]

Both ``TFBertTokenizer(ops="text")`` and ``TFBertTokenizer(ops="core")`` are built from the real
all-MiniLM-L6-v2 vocabulary and run inside one ``tf.function`` each (traced once per batch
shape before timing). Batches: real English sentences (the lines of ``docs/*.md``), the same
with accents and CJK mixed in (the core path's decomposition table and wider matches), and
one sentence (serving latency). Reported: median tokens/s of each (non-padding tokens) and the
ratio core / text; both outputs are checked equal before timing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def sentences() -> list[str]:
    """Prose lines of the English docs: real sentences of 40..400 characters."""
    lines = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if 40 <= len(line) <= 400 and re.match(r"[A-Z]", line):
                lines.append(line)
    return lines


def batches() -> dict[str, list[str]]:
    english = sentences()
    mixed = [f"{s} Café déjà vu, naïve façade; 我爱北京天安门 Ελληνικά Привет" for s in english[:256]]
    return {"english x256": english[:256], "accents+CJK x256": mixed, "one sentence": english[:1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from bert_tf import TFBertTokenizer
    from harness import real_checkpoint_dir

    tokenizers = {ops: TFBertTokenizer.from_pretrained(real_checkpoint_dir(), ops=ops) for ops in ("text", "core")}
    functions = {ops: tf.function(tok.call, input_signature=[tf.TensorSpec([None], tf.string)])
                 for ops, tok in tokenizers.items()}
    rows = []
    for name, texts in batches().items():
        batch = tf.constant(texts)
        outputs = {ops: fn(batch) for ops, fn in functions.items()}  # warm up (traced once: any batch size)
        np.testing.assert_array_equal(outputs["text"]["input_ids"], outputs["core"]["input_ids"])
        tokens = int(tf.reduce_sum(outputs["text"]["attention_mask"]))
        times = {ops: [] for ops in functions}
        for _ in range(args.repeats):
            for ops, fn in functions.items():  # interleaved: both see the same machine load
                start = time.perf_counter()
                fn(batch)["input_ids"].numpy()
                times[ops].append(time.perf_counter() - start)
        median = {ops: statistics.median(t) for ops, t in times.items()}
        row = {"batch": name, "texts": len(texts), "tokens": tokens,
               "text_tokens_per_s": tokens / median["text"], "core_tokens_per_s": tokens / median["core"],
               "text_ms": 1e3 * median["text"], "core_ms": 1e3 * median["core"],
               "core_over_text": median["text"] / median["core"]}
        rows.append(row)
        print(f"{name:<18} {tokens:>6} tokens  text {row['text_tokens_per_s']:>10,.0f} tok/s ({row['text_ms']:.1f} ms)"
              f"  core {row['core_tokens_per_s']:>10,.0f} tok/s ({row['core_ms']:.1f} ms)"
              f"  core/text speed {row['core_over_text']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"tensorflow": tf.__version__, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
