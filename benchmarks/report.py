"""Render benchmarks/results/*.json as the tables of docs/benchmarks.md and docs/zh/benchmarks.md.

Usage:
    python benchmarks/report.py [--speed benchmarks/results/speed-minilm-quick.json]
                                [--memory benchmarks/results/load_memory.json]
                                [--default-call benchmarks/results/default-call-1thread.json ...]

The prose around the tables lives in ``benchmarks/benchmarks.md.in`` (English)
and ``benchmarks/benchmarks.zh.md.in`` (Chinese); ``{{speed}}``, ``{{floor}}``,
``{{memory}}``, ``{{targets}}`` and ``{{default_call}}`` mark where the tables go. Both pages are rendered from the
same JSON, so rerunning the benchmarks and this script refreshes every figure
in both languages without hand edits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
BACKENDS = ("torch", "flax", "tf")

#: Every generated string, per language; numbers are filled in from the JSON.
LABELS = {
    "en": {
        "command": "Command: `{command}`  \nModel: {model}; {repeats} timed repeats per point (medians); "
                   "{cpus} CPUs, load average at start {load}.",
        "conditions": "  \nConditions: {note}", "sep": ", ", "list_sep": ", ",
        "dense": "**Dense throughput** (float32; of_peak = achieved GFLOP/s / the framework's own 2048^2 matmul GFLOP/s)",
        "dense_head": ["batch x seq", "impl", "ms", "tokens/s", "GFLOP/s", "of peak", "x hf"],
        "mixed": "**Mixed-length batch** (32 sentences of 8..128 tokens: {useful} real tokens, {padded} when padded; "
                 "`model(**inputs)`, which skips the padding by default; (padded) = the same call inside `padding_read()`)",
        "mixed_head": ["impl", "ms", "useful tokens/s", "x hf"],
        "latency": "**Batch-1 latency** (`model(**inputs)` on 1 x 16 tokens; `pipeline(\"feature-extraction\")` on one sentence)",
        "latency_head": ["impl", "model(**inputs) ms", "x hf", "pipeline ms", "x hf"],
        "bf16": "**bfloat16** ({batch} x {seq}, dense path; max |diff| of the last hidden state from float32)",
        "bf16_head": ["impl", "fp32 ms", "bf16 ms", "bf16 speed-up", "max abs diff"],
        "load": "**Load time** (`from_pretrained` in the benchmark process, first load, seconds): {items}",
        "memory": "Command: `{command}`; weights {mb} MB (random bert-base, float32).",
        "memory_head": ["job", "warm: peak RSS above baseline (MB)", "x weights", "load s",
                        "cold: peak RSS above baseline (MB)", "x weights", "load s"],
        "targets_head": ["backend", "1 x 16 model(**inputs), time x hf (<= 0.9x)", "same, one thread",
                         "mixed-length, speed x hf (>= 1.6x)", "same, one thread", "dense, speed x hf (min over grid; >= 1.0x)",
                         "dense 8 x 128 model(**inputs), one thread", "`tribert run`, time x pipeline (<= 1.2x)"],
        "floor": "Memory bandwidth (numpy streaming): copy {copy} GB/s, triad {triad} GB/s; torch float32 matmul peak "
                 "{peak} GFLOP/s. At 1 x {tokens} tokens the encoder is {gflop} GFLOP, {compute} ms at the peak, and "
                 "reads {mb} MB of weights, {memory} ms at the copy bandwidth: the floor is {floor} ms.",
        "floor_head": ["impl", "model(**inputs) ms", "x floor", "time x hf"],
        "run": "**`tribert run` against the pipeline** ({task}, {lines} lines, in process: the command's loop "
               "against `pipe(lines)` on the same pipeline)",
        "run_head": ["backend", "pipeline s", "run s", "run / pipeline"],
        "not_run": "(not run)",
        "default_call": "`{command}`: {threads}; load average at start {load}.",
        "threads_one": "one intra-op thread per framework",
        "threads_default": "each framework's default threads",
        "default_call_head": ["case", "path", "ms", "time x hf", "speed x hf"],
    },
    "zh": {
        "command": "命令：`{command}`  \n模型：{model}；每个点计时重复 {repeats} 次（取中位数）；"
                   "{cpus} 个 CPU，开始时的负载均值为 {load}。",
        "conditions": "  \n条件：{note}", "sep": "、", "list_sep": "，",
        "dense": "**稠密吞吐量**（float32；of_peak = 达到的 GFLOP/s / 该框架自身 2048^2 矩阵乘法的 GFLOP/s）",
        "dense_head": ["批大小 x 序列长度", "实现", "ms", "tokens/s", "GFLOP/s", "占峰值比例", "x hf"],
        "mixed": "**混合长度批次**（32 个长度为 8..128 个 token 的句子：{useful} 个真实 token，填充后为 {padded} 个；"
                 "`model(**inputs)`，默认跳过填充；(padded) = 在 `padding_read()` 中的同一调用）",
        "mixed_head": ["实现", "ms", "有效 tokens/s", "x hf"],
        "latency": "**批大小为 1 时的延迟**（`model(**inputs)` 作用于 1 x 16 个 token；"
                   "`pipeline(\"feature-extraction\")` 作用于一个句子）",
        "latency_head": ["实现", "model(**inputs) ms", "x hf", "pipeline ms", "x hf"],
        "bf16": "**bfloat16**（{batch} x {seq}，稠密路径；最后一层隐藏状态与 float32 的 max |diff|）",
        "bf16_head": ["实现", "fp32 ms", "bf16 ms", "bf16 加速比", "最大绝对差"],
        "load": "**加载时间**（在基准测试进程中首次调用 `from_pretrained`，单位为秒）：{items}",
        "memory": "命令：`{command}`；权重 {mb} MB（随机 bert-base，float32）。",
        "memory_head": ["任务", "warm：峰值 RSS 相对基线的增量（MB）", "权重倍数", "加载秒数",
                        "cold：峰值 RSS 相对基线的增量（MB）", "权重倍数", "加载秒数"],
        "targets_head": ["后端", "1 x 16 的 model(**inputs)，时间 x hf（<= 0.9x）", "同上，单线程",
                         "混合长度，速度 x hf（>= 1.6x）", "同上，单线程", "稠密，速度 x hf（网格最小值；>= 1.0x）",
                         "稠密 8 x 128 的 model(**inputs)，单线程", "`tribert run`，时间 x pipeline（<= 1.2x）"],
        "floor": "内存带宽（numpy 流式）：copy {copy} GB/s，triad {triad} GB/s；torch float32 矩阵乘法峰值 "
                 "{peak} GFLOP/s。在 1 x {tokens} 个 token 时，编码器为 {gflop} GFLOP，按峰值需 {compute} ms，"
                 "读取 {mb} MB 权重，按 copy 带宽需 {memory} ms：下限为 {floor} ms。",
        "floor_head": ["实现", "model(**inputs) ms", "x 下限", "时间 x hf"],
        "run": "**`tribert run` 对比 pipeline**（{task}，{lines} 行，同一进程：命令的循环对比同一 pipeline 上的 "
               "`pipe(lines)`）",
        "run_head": ["后端", "pipeline 秒", "run 秒", "run / pipeline"],
        "not_run": "（未运行）",
        "default_call": "`{command}`：{threads}；开始时的负载均值 {load}。",
        "threads_one": "每个框架一个算子内线程",
        "threads_default": "各框架的默认线程数",
        "default_call_head": ["场景", "路径", "ms", "时间 x hf", "速度 x hf"],
    },
}


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def speed_tables(r: dict, t: dict, lang: str) -> str:
    names = list(r["load_seconds"])
    note = r.get(f"note_{lang}") or r.get("note")
    parts = [t["command"].format(command=r["command"], model=r["model"], repeats=r["repeats"], cpus=r["cpus"],
                                 load=t["sep"].join(f"{x:.1f}" for x in r["load_average"]))
             + (t["conditions"].format(note=note) if note else "")]
    rows = []
    for point in r["dense"]:
        for n in names:
            p = point[n]
            rows.append([f"{point['batch']} x {point['seq']}", n, p["ms"], p["tokens_per_s"], p["gflops"], p["of_peak"],
                         point["ratio_to_hf"].get(n, "")])
    parts.append(t["dense"] + "\n\n" + table(t["dense_head"], rows))
    m = r["mixed"]
    rows = [[n, m[n]["ms"], m[n]["useful_tokens_per_s"], m["ratio_to_hf"][n]] for n in m["ratio_to_hf"]]
    parts.append(t["mixed"].format(useful=m["useful_tokens"], padded=m["padded_tokens"]) + "\n\n"
                 + table(t["mixed_head"], rows))
    rows = [[n, r["latency_1x16_ms"][n], r["latency_1x16_ratio_to_hf"].get(n, ""), r["pipeline_latency_ms"][n],
             r["pipeline_latency_ratio_to_hf"].get(n, "")] for n in names]
    parts.append(t["latency"] + "\n\n" + table(t["latency_head"], rows))
    if "bf16" in r:
        b = r["bf16"]
        rows = [[n, b[n]["fp32_ms"], b[n]["bf16_ms"], b[n]["speedup"], b[n]["max_abs_diff"]] for n in names if n in b]
        parts.append(t["bf16"].format(batch=b["batch"], seq=b["seq"]) + "\n\n" + table(t["bf16_head"], rows))
    if "run" in r:
        parts.append(run_table(r, t))
    parts.append(t["load"].format(items=t["list_sep"].join(f"{n} {s}" for n, s in r["load_seconds"].items())))
    return "\n\n".join(parts)


def memory_table(r: dict, t: dict) -> str:
    def cells(v: dict) -> list:
        return [v.get("peak_above_baseline_mb", v.get("error")), v.get("ratio_to_weights", ""), v.get("seconds", "")]

    rows = [[job, *cells(v.get("warm", {})), *cells(v.get("cold", {}))] for job, v in r["results"].items()]
    return t["memory"].format(command=r["command"], mb=r["weights_mb"]) + "\n\n" + table(t["memory_head"], rows)


def floor_table(r: dict, t: dict) -> str:
    """The batch-1 floor and each implementation's ``model(**inputs)`` latency as a multiple of it."""
    if "floor" not in r:
        return t["not_run"]
    f = r["floor"]
    text = t["floor"].format(copy=f["copy_gbs"], triad=f["triad_gbs"], peak=f["matmul_peak_gflops"], tokens=f["tokens"],
                             gflop=f["gflop"], compute=f["compute_floor_ms"], mb=f["weight_mb"],
                             memory=f["memory_floor_ms"], floor=f["floor_ms"])  # fmt: skip
    rows = [[n, r["latency_1x16_ms"][n], f"{r['latency_1x16_over_floor'][n]}x", f"{r['latency_1x16_ratio_to_hf'].get(n, '')}x"]
            for n in r["latency_1x16_ms"]]  # fmt: skip
    return text + "\n\n" + table(t["floor_head"], rows)


def default_call_tables(results: list[dict], t: dict) -> str:
    """``benchmarks/default_call.py`` runs: each path's time and its ratios to transformers, per case."""
    parts = []
    for r in results:
        threads = t["threads_one"] if r.get("threads") == 1 else t["threads_default"]
        rows = [[case, path, ms, r[case]["time_ratio_to_hf"][path], r[case]["speedup_over_hf"][path]]
                for case in r if isinstance(r[case], dict) and "ms" in r[case]
                for path, ms in r[case]["ms"].items()]  # fmt: skip
        parts.append(t["default_call"].format(command=r.get("command", "python benchmarks/default_call.py"), threads=threads,
                                              load=t["sep"].join(f"{x:.1f}" for x in r["load_average"]))
                     + "\n\n" + table(t["default_call_head"], rows))
    return "\n\n".join(parts) if parts else t["not_run"]


def run_table(r: dict, t: dict) -> str:
    if "run" not in r:
        return ""
    run = r["run"]
    rows = [[n, run[n]["pipeline_s"], run[n]["run_s"], f"{run[n]['run_over_pipeline']}x"] for n in BACKENDS if n in run]
    return t["run"].format(task=run["task"], lines=run["lines"]) + "\n\n" + table(t["run_head"], rows)


def targets_table(r: dict, t: dict, default_calls: list[dict] = ()) -> str:
    """Each issue-16 target against what each backend reached (times and speeds as ratios to hf): in ``speed.py``'s
    run (every framework's default threads) and, where recorded, ``default_call.py`` with one thread per framework."""
    dense = {n: min(p["ratio_to_hf"][n] for p in r["dense"]) for n in BACKENDS if n in r["ratio_hf_names"]}
    mixed = r["mixed"]["ratio_to_hf"]
    one = next((d for d in default_calls if d.get("threads") == 1), None)

    def single(case: str, n: str, field: str) -> str:
        value = one.get(case, {}).get(field, {}).get(f"{n} default") if one else None
        return f"{value}x" if value is not None else t["not_run"]

    rows = []
    for n in BACKENDS:
        if n not in r["ratio_hf_names"]:
            continue
        run = r.get("run", {}).get(n, {}).get("run_over_pipeline")
        rows.append([n, f"{r['latency_1x16_ratio_to_hf'][n]}x", single("1x16", n, "time_ratio_to_hf"),
                     f"{mixed.get(n, 'n/a')}x", single("mixed 32 x 8..128", n, "speedup_over_hf"), f"{dense[n]}x",
                     single("8x128", n, "speedup_over_hf"), f"{run}x" if run is not None else t["not_run"]])
    return table(t["targets_head"], rows)


def render(template: str, speed: dict, memory: dict | None, lang: str, default_calls: list[dict] = ()) -> str:
    t = LABELS[lang]
    text = template.replace("{{speed}}", speed_tables(speed, t, lang)).replace("{{targets}}", targets_table(speed, t, list(default_calls)))
    text = text.replace("{{floor}}", floor_table(speed, t)).replace("{{default_call}}", default_call_tables(list(default_calls), t))
    return text.replace("{{memory}}", memory_table(memory, t) if memory is not None else t["not_run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", default=str(HERE / "results" / "speed-minilm-quick.json"))
    parser.add_argument("--memory", default=str(HERE / "results" / "load_memory.json"))
    parser.add_argument("--default-call", nargs="*", default=[str(HERE / "results" / name) for name in (
        "default-call-1thread.json", "default-call-default-threads.json")], help="benchmarks/default_call.py results")
    args = parser.parse_args()
    speed = json.loads(Path(args.speed).read_text())
    speed["ratio_hf_names"] = [n for n in speed["load_seconds"] if n in speed["mixed"]["ratio_to_hf"]]
    memory_path = Path(args.memory)
    memory = json.loads(memory_path.read_text()) if memory_path.is_file() else None
    default_calls = [json.loads(Path(p).read_text()) for p in args.default_call if Path(p).is_file()]
    for lang, template, out in (("en", HERE / "benchmarks.md.in", DOCS / "benchmarks.md"),
                                ("zh", HERE / "benchmarks.zh.md.in", DOCS / "zh" / "benchmarks.md")):
        out.write_text(render(template.read_text(), speed, memory, lang, default_calls))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
