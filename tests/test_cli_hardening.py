"""`tribert run` never stops on a bad line and never loses one; a device nobody sees is a named error.

Stream cases run `python -m tribert` on torch (stdin, stdout and exit codes are the contract);
one in-process case per other framework checks its pipeline's device check. The
conversion's --overwrite guarantees are in test_convert_atomic.py.
"""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys

import numpy as np
import pytest

from harness import tiny_config_dict

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _tiny_model(directory, head, real_model_dir, **changes):
    """A tiny random ``head`` checkpoint with the real model's tokenizer (model_max_length 512)."""
    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint

    config = BertConfig(**tiny_config_dict(**changes))
    rng = np.random.default_rng(0)
    save_checkpoint({k: (rng.standard_normal(s) * 0.2).astype(np.float32) for k, s in canonical_shapes(config, head).items()},
                    directory)  # fmt: skip
    config.save_pretrained(directory)
    for name in TOKENIZER_FILES:
        (directory / name).write_bytes((real_model_dir / name).read_bytes())
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory, real_model_dir):
    """16 positions (the tokenizer allows 512), a 1000-id vocabulary, and a text classifier."""
    make = lambda name, head, **changes: _tiny_model(tmp_path_factory.mktemp(name), head, real_model_dir, **changes)  # noqa: E731
    return {"short": make("short", "masked-lm", vocab_size=30522, max_position_embeddings=16),
            "small-vocab": make("small-vocab", "masked-lm", vocab_size=1000),
            "classifier": make("classifier", "sequence-classification", vocab_size=30522)}


def _run(*args, stdin: bytes = b"", shell_redirect: str = ""):
    command = [sys.executable, "-m", "tribert", *map(str, args)]
    if shell_redirect:  # a closed stream needs the shell: `<&-` / `>&-`
        command = ["bash", "-c", " ".join(f"'{c}'" for c in command) + " " + shell_redirect]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=300)


def _no_gpu(framework: str) -> str:
    """A device the framework does not see: "gpu" on a machine without one, else a 100th GPU."""
    return "gpu:99" if _has_gpu(framework) else "gpu"


def _has_gpu(framework: str) -> bool:
    if framework == "torch":
        import torch

        return torch.cuda.is_available()
    if framework == "tf":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    import jax

    return any(d.platform == "gpu" for d in jax.devices())


def test_each_line_gets_one_output_line_in_order_with_truncation_warned_once(models):
    long_line = "[MASK] is " + "word " * 60  # 60+ tokens: truncated to the model's 16 positions, [MASK] kept
    lines = [b"Paris is [MASK].", long_line.encode(), b"", b"\xff\xfe [MASK]", long_line.encode(), b"  ",
             b"Rome is [MASK].", b"[MASK] " * (3 << 20)]  # the last: 18 MiB, skipped unread  # fmt: skip
    result = _run("run", "--task", "fill-mask", "--model", models["short"], "--batch-size", 3, stdin=b"\n".join(lines) + b"\n")
    stderr = result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(records) == len(lines), stderr
    assert result.returncode == 1 and "Traceback" not in stderr
    for number in (1, 2, 5, 7):
        assert isinstance(records[number - 1], list) and len(records[number - 1]) == 5, records[number - 1]
    assert records[2] == {"error": "empty line; each line must hold one input", "line": 3}
    assert records[5] == {"error": "empty line; each line must hold one input", "line": 6}
    assert records[3] == {"error": "not valid UTF-8 (byte 0xff at offset 0)", "line": 4}
    assert records[7] == {"error": "longer than 16 MiB; skipped unread", "line": 8}
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "line 2" in warnings[0] and "truncated to 16 tokens" in warnings[0]


def test_a_failing_line_does_not_fail_its_batch_neighbours_and_batches_equal_single_lines(models):
    """A batch call that fails (one id outside the vocabulary) is rerun line by line; results equal unbatched ones."""
    import bert_torch
    from tribert.run import run_lines

    pipe = bert_torch.pipeline("fill-mask", model=models["small-vocab"])
    calls = []
    counted = lambda inputs, **params: calls.append(inputs) or pipe(inputs, **params)  # noqa: E731
    counted.task, counted.tokenizer = pipe.task, pipe.tokenizer
    good = ["[MASK] !", "[MASK] [MASK] !", "! [MASK]", "[MASK]"]  # ids < 1000 only
    bad = "Paris is [MASK]."  # "paris" is id 3000
    out = io.StringIO()
    assert run_lines(counted, "fill-mask", good[:2] + [bad] + good[2:], out, batch_size=5) == 1
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[2]["line"] == 3 and "vocab_size=1000" in records[2]["error"]
    singles = [json.loads(json.dumps(pipe(text))) for text in good]
    got = records[:2] + records[3:]
    for ours, single in zip(got, singles):
        flat_ours, flat_single = (r if isinstance(r[0], dict) else sum(r, []) for r in (ours, single))
        assert [p["token"] for p in flat_ours] == [p["token"] for p in flat_single]
        assert np.allclose([p["score"] for p in flat_ours], [p["score"] for p in flat_single], rtol=1e-5, atol=1e-7)
    # One call of 5, then halves until the bad line stands alone: [g, g] ok, [bad, g, g] fails, [bad], [g, g] ok.
    assert len(calls) == 5 and [len(c) if isinstance(c, list) else 1 for c in calls] == [5, 2, 3, 1, 2]
    calls.clear()
    assert run_lines(counted, "fill-mask", good, io.StringIO(), batch_size=2) == 0 and len(calls) == 2


def test_json_lines_nested_too_deep_or_cut_short_are_their_lines_errors(models):
    import bert_torch
    from tribert.run import run_lines

    pipe = bert_torch.pipeline("text-classification", model=models["classifier"])
    lines = ['{"text": "Is it raining?", "text_pair": "No."}', '{"text": ' + "[" * 100_000, '{"text": ', "plain text"]
    out = io.StringIO()
    assert run_lines(pipe, "text-classification", lines, out) == 2
    first, deep, broken, plain = map(json.loads, out.getvalue().splitlines())
    assert set(first) == {"label", "score"} and set(plain) == {"label", "score"}
    assert deep == {"error": "not valid JSON here: nested too deeply", "line": 2}
    assert broken == {"error": "not valid JSON: Expecting value at column 10", "line": 3}


@pytest.mark.parametrize("redirect, stream", [("<&-", "stdin"), (">&-", "stdout")])
def test_a_closed_stream_is_a_one_line_error_with_exit_2(models, redirect, stream):
    result = _run("run", "--task", "fill-mask", "--model", models["short"], shell_redirect=redirect)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip() == f"tribert run: error: {stream} is closed; pipe input lines in and read results out"


def test_each_line_is_answered_at_once_and_a_reader_that_goes_away_stops_the_stream_with_exit_3(models):
    command = [sys.executable, "-m", "tribert", "run", "--task", "fill-mask", "--model", str(models["short"]), "--batch-size", "8"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"Paris is [MASK].\n")
    proc.stdin.flush()
    # Interactive: the one line is answered while stdin stays open (a batch of 8 does not wait to fill).
    assert select.select([proc.stdout], [], [], 120)[0], "no answer to a line while stdin stays open"
    assert json.loads(proc.stdout.readline())[0]["token"] >= 0
    proc.stdin.write(b"Paris is [MASK].\n" * 400)  # ~400 KB of results: more than a pipe holds
    proc.stdin.close()
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 3
    assert stderr.strip() == "tribert run: error: stdout was closed (broken pipe); the remaining lines were not run"


def test_run_and_parity_on_a_gpu_torch_does_not_see_exit_2_with_one_line(models):
    device = _no_gpu("torch")
    run = _run("run", "--task", "fill-mask", "--model", models["short"], "--device", device, stdin=b"Paris is [MASK].\n")
    parity = _run("parity", models["short"], "--frameworks", "torch", "--heads", "base", "--reference", "none", "--device", device)
    for command, result in (("run", run), ("parity", parity)):
        stderr = result.stderr.decode().strip()
        assert result.returncode == 2 and "\n" not in stderr, stderr
        assert stderr.startswith(f"tribert {command}: error: no GPU") and "visible to torch; available devices: cpu" in stderr


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_tf_and_flax_pipelines_refuse_a_gpu_they_do_not_see(framework, models):
    """TF would place the model on the CPU without a word (soft placement); jax raised its own RuntimeError."""
    import importlib

    from bert_core import DeviceError

    backend = importlib.import_module(f"bert_{framework}")
    name = {"tf": "tensorflow", "flax": "jax"}[framework]
    with pytest.raises(DeviceError, match=rf"(?i)^no GPU( 99)? visible to {name}; available devices: .*cpu:0"):
        backend.pipeline("fill-mask", model=models["short"], device=_no_gpu(framework))


def test_the_line_reader_splits_across_reads_and_skips_an_over_long_line_unread(tmp_path):
    from tribert.stream import TOO_LONG, read_chunks

    path = tmp_path / "lines"
    path.write_bytes(b"a\r\nbb\n" + b"x" * 70_000 + b"\nc\n\n" + b"y" * 200_000 + b"\nlast")  # no final newline
    with open(path, "rb") as file:
        chunks = list(read_chunks(file.fileno(), 3, max_bytes=100_000))
    assert [line for chunk in chunks for line in chunk] == [b"a\r", b"bb", b"x" * 70_000, b"c", b"", TOO_LONG, b"last"]
    assert all(1 <= len(chunk) <= 3 for chunk in chunks)
