"""Render benchmarks/results/*.json as the tables of docs/benchmarks.md.

Usage:
    python benchmarks/report.py [--speed benchmarks/results/speed-minilm-quick.json]
                                [--memory benchmarks/results/load_memory.json] [--out docs/benchmarks.md]

The prose around the tables lives in ``benchmarks/benchmarks.md.in`` (``{{speed}}``,
``{{memory}}`` and ``{{targets}}`` mark where the tables go), so rerunning the
benchmarks and this script refreshes every figure without hand edits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("torch", "flax", "tf")


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def speed_tables(r: dict) -> str:
    names = list(r["load_seconds"])
    parts = [f"Command: `{r['command']}`  \nModel: {r['model']}; {r['repeats']} timed repeats per point (medians); "
             f"{r['cpus']} CPUs, load average at start {', '.join(f'{x:.1f}' for x in r['load_average'])}."
             + (f"  \nConditions: {r['note']}" if r.get("note") else "")]
    rows = []
    for point in r["dense"]:
        for n in names:
            p = point[n]
            rows.append([f"{point['batch']} x {point['seq']}", n, p["ms"], p["tokens_per_s"], p["gflops"], p["of_peak"],
                         point["ratio_to_hf"].get(n, "")])
    parts.append("**Dense throughput** (float32; of_peak = achieved GFLOP/s / the framework's own 2048^2 matmul GFLOP/s)\n\n"
                 + table(["batch x seq", "impl", "ms", "tokens/s", "GFLOP/s", "of peak", "x hf"], rows))
    m = r["mixed"]
    rows = [[n, m[n]["ms"], m[n]["useful_tokens_per_s"], m["ratio_to_hf"][n]] for n in m["ratio_to_hf"]]
    parts.append(f"**Mixed-length batch** (32 sentences of 8..128 tokens: {m['useful_tokens']} real tokens, "
                 f"{m['padded_tokens']} when padded; torch = unpadding, flax/tf = packed rows of 128, packing time included)\n\n"
                 + table(["impl", "ms", "useful tokens/s", "x hf"], rows))
    rows = [[n, r["latency_1x16_ms"][n], r["latency_1x16_ratio_to_hf"].get(n, ""), r["pipeline_latency_ms"][n],
             r["pipeline_latency_ratio_to_hf"].get(n, "")] for n in names]
    parts.append("**Batch-1 latency** (`model(**inputs)` on 1 x 16 tokens; `pipeline(\"feature-extraction\")` on one sentence)\n\n"
                 + table(["impl", "model(**inputs) ms", "x hf", "pipeline ms", "x hf"], rows))
    if "bf16" in r:
        b = r["bf16"]
        rows = [[n, b[n]["fp32_ms"], b[n]["bf16_ms"], b[n]["speedup"], b[n]["max_abs_diff"]] for n in names if n in b]
        parts.append(f"**bfloat16** ({b['batch']} x {b['seq']}, dense path; max |diff| of the last hidden state from float32)\n\n"
                     + table(["impl", "fp32 ms", "bf16 ms", "bf16 speed-up", "max abs diff"], rows))
    parts.append("**Load time** (`from_pretrained` in the benchmark process, first load, seconds): "
                 + ", ".join(f"{n} {s}" for n, s in r["load_seconds"].items()))
    return "\n\n".join(parts)


def memory_table(r: dict) -> str:
    def cells(v: dict) -> list:
        return [v.get("peak_above_baseline_mb", v.get("error")), v.get("ratio_to_weights", ""), v.get("seconds", "")]

    rows = [[job, *cells(v.get("warm", {})), *cells(v.get("cold", {}))] for job, v in r["results"].items()]
    return (f"Command: `{r['command']}`; weights {r['weights_mb']} MB (random bert-base, float32).\n\n"
            + table(["job", "warm: peak RSS above baseline (MB)", "x weights", "load s",
                     "cold: peak RSS above baseline (MB)", "x weights", "load s"], rows))


def targets_table(r: dict) -> str:
    """Each issue-8 target against what each backend reached in this run."""
    dense = {n: min(p["ratio_to_hf"][n] for p in r["dense"]) for n in BACKENDS if n in r["ratio_hf_names"]}
    mixed = r["mixed"]["ratio_to_hf"]
    rows = []
    for n in BACKENDS:
        if n not in r["ratio_hf_names"]:
            continue
        bf16 = r.get("bf16", {}).get(n, {}).get("speedup", "n/a")
        rows.append([n, f"{dense[n]}x", f"{mixed.get(n, 'n/a')}x", f"{r['latency_1x16_ratio_to_hf'][n]}x",
                     f"{r['pipeline_latency_ratio_to_hf'][n]}x", f"{bf16}x" if bf16 != "n/a" else bf16])
    return table(["backend", "dense fp32 (min over grid; >= 1.0x)", "mixed fp32 (>= 1.6x)", "batch-1 model(**inputs) (<= 0.6x)",
                  "batch-1 pipeline (<= 0.6x)", "bf16 vs fp32 (>= 1.8x)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", default=str(HERE / "results" / "speed-minilm-quick.json"))
    parser.add_argument("--memory", default=str(HERE / "results" / "load_memory.json"))
    parser.add_argument("--template", default=str(HERE / "benchmarks.md.in"))
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    speed = json.loads(Path(args.speed).read_text())
    speed["ratio_hf_names"] = [n for n in speed["load_seconds"] if n in speed["mixed"]["ratio_to_hf"]]
    text = Path(args.template).read_text()
    text = text.replace("{{speed}}", speed_tables(speed)).replace("{{targets}}", targets_table(speed))
    memory = Path(args.memory)
    text = text.replace("{{memory}}", memory_table(json.loads(memory.read_text())) if memory.is_file() else "(not run)")
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
