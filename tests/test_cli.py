"""The `tribert` command: runs as an installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def run_cli(*args, stdin=None):
    exe = shutil.which("tribert", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe, "the tribert console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_env_reports_three_frameworks():
    result = run_cli("env", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    frameworks = report["frameworks"]
    import jax
    import tensorflow as tf
    import torch

    assert frameworks["torch"]["version"] == torch.__version__
    assert frameworks["tensorflow"]["version"] == tf.__version__
    assert frameworks["jax"]["version"] == jax.__version__
    assert "cpu" in frameworks["torch"]["devices"]


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tribert {version('tribert')}"


def test_unknown_subcommand_fails_cleanly():
    result = run_cli("frobnicate")
    assert result.returncode != 0 and "invalid choice" in result.stderr


PAIRS = {("torch", "tf"), ("torch", "flax"), ("tf", "flax"), ("torch", "transformers"), ("tf", "transformers"),
         ("flax", "transformers")}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A small random canonical checkpoint (config.json + model.safetensors)."""
    import numpy as np

    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint
    from harness import tiny_config_dict

    directory = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(**tiny_config_dict(initializer_range=0.2))
    rng = np.random.default_rng(0)
    save_checkpoint({k: (rng.standard_normal(s) * 0.2).astype(np.float32) for k, s in canonical_shapes(config, "base").items()},
                    directory)  # fmt: skip
    config.save_pretrained(directory)
    return directory


def test_parity_prints_every_pair_of_the_three_frameworks_and_transformers(tiny_checkpoint):
    heads = ("base", "masked-lm", "question-answering")
    result = run_cli("parity", str(tiny_checkpoint), "--heads", ",".join(heads))
    assert result.returncode == 0, result.stdout + result.stderr
    *rows, rule = result.stdout.splitlines()[1:]
    assert rule == "ok: every compared element has |a - b| <= 1e-05 + 1.3e-06 * max(|a|, |b|)"
    lines = [line.split() for line in rows]
    # "<head> <a> vs <b> <max |diff|> <worst output> yes"
    seen = {(cells[0], cells[1], cells[3]): float(cells[4]) for cells in lines}
    assert set(seen) == {(head, a, b) for head in heads for a, b in PAIRS}
    assert all(cells[-1] == "yes" for cells in lines) and max(seen.values()) <= 1e-5


@pytest.mark.slow
def test_parity_json_on_the_real_checkpoint_holds_1e5_for_every_tf_pair():
    """`tribert parity` on all-MiniLM-L6-v2, every head: TF against torch, Flax and transformers within 1e-5.

    The pairs without TF are the parity suite's (tests/parity); here the claim is that TF is in the
    command and holds the contract on real weights, every output compared (--outputs all).
    """
    from bert_core import HEADS
    from harness import real_checkpoint_dir

    result = run_cli("parity", str(real_checkpoint_dir()), "--outputs", "all", "--json")
    report = json.loads(result.stdout)
    rows = report["rows"]
    assert {(r["head"], r["a"], r["b"]) for r in rows} == {(head, a, b) for head in HEADS for a, b in PAIRS}
    tf_rows = [r for r in rows if "tf" in (r["a"], r["b"])]
    assert len({r["output"] for r in tf_rows}) > 10  # logits, hidden_states[i], attentions[i], ...
    assert all(r["ok"] for r in tf_rows), [r for r in tf_rows if not r["ok"]]  # 1e-5 + 1.3e-6 x magnitude
    assert report["ok"] == all(r["ok"] for r in rows) and result.returncode == (0 if report["ok"] else 1)


@pytest.fixture
def in_process(monkeypatch):
    """``tribert.cli.main`` in this process, with the environment and the progress/verbosity switches restored after."""
    import os

    from bert_core import logging as tribert_logging
    from tribert.cli import main

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the command sets library variables for its run
    bars, level = tribert_logging.is_progress_bar_enabled(), tribert_logging.get_verbosity()
    yield main
    (tribert_logging.enable_progress_bar if bars else tribert_logging.disable_progress_bar)()
    tribert_logging.set_verbosity(level)


def _stderr_text(main, argv, monkeypatch, terminal: bool, tmp_path, stdin: str = "") -> tuple[int, str]:
    """(status, stderr) of ``main(argv)`` with stderr a terminal (a pty) or a plain file."""
    import fcntl
    import os
    import select
    import struct
    import termios

    master, slave = os.openpty() if terminal else (None, None)
    if terminal:  # 24 x 100, as a terminal window reports (a new pty is 0 x 0, which tqdm draws as nothing)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    stderr = open(slave, "w") if terminal else open(tmp_path / "stderr.txt", "w+")  # noqa: SIM115
    (tmp_path / "stdin.txt").write_text(stdin)
    with stderr, open(tmp_path / "stdin.txt") as fake_in, open(tmp_path / "stdout.txt", "w") as fake_out:
        monkeypatch.setattr(sys, "stderr", stderr)
        monkeypatch.setattr(sys, "stdin", fake_in)
        monkeypatch.setattr(sys, "stdout", fake_out)
        status = main(argv)
        stderr.flush()
        if not terminal:
            stderr.seek(0)
            return status, stderr.read()
        chunks = []  # read while the terminal is open: closing it discards what is unread
        while select.select([master], [], [], 0)[0]:
            chunks.append(os.read(master, 1 << 16))
    os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("flags, shown", [([], True), (["-q"], False), (["TRIBERT_VERBOSITY=error"], False)])
def test_convert_shows_progress_on_a_terminal_unless_quiet(in_process, monkeypatch, tiny_checkpoint, tmp_path, flags, shown):
    from bert_core import logging as tribert_logging

    if flags == ["TRIBERT_VERBOSITY=error"]:  # read when bert_core is imported: as the command starts with it set
        tribert_logging.set_verbosity("error")
        flags = []
    argv = ["convert", str(tiny_checkpoint), "--to", "safetensors", "--out", str(tmp_path / "out"), *flags]
    status, text = _stderr_text(in_process, argv, monkeypatch, True, tmp_path)
    assert status == 0 and (tmp_path / "out" / "model.safetensors").is_file()
    assert ("tribert convert --to safetensors" in text and "stage" in text) == shown, text


def test_nothing_is_printed_on_stderr_when_it_is_not_a_terminal(in_process, monkeypatch, tiny_checkpoint, real_model_dir, tmp_path):
    argv = ["convert", str(tiny_checkpoint), "--to", "safetensors", "--out", str(tmp_path / "out")]
    assert _stderr_text(in_process, argv, monkeypatch, False, tmp_path) == (0, "")
    argv = ["parity", str(tiny_checkpoint), "--frameworks", "torch", "--heads", "base", "--reference", "none"]
    assert _stderr_text(in_process, argv, monkeypatch, False, tmp_path) == (0, "")
    argv = ["run", "--task", "feature-extraction", "--model", str(real_model_dir)]
    assert _stderr_text(in_process, argv, monkeypatch, False, tmp_path, stdin="a\nb c\n") == (0, "")
    assert len((tmp_path / "stdout.txt").read_text().splitlines()) == 2


def test_parity_and_run_show_progress_on_a_terminal(in_process, monkeypatch, tiny_checkpoint, real_model_dir, tmp_path):
    argv = ["parity", str(tiny_checkpoint), "--frameworks", "torch", "--heads", "base,masked-lm", "--reference", "none"]
    status, text = _stderr_text(in_process, argv, monkeypatch, True, tmp_path)
    assert status == 0 and "tribert parity" in text and "masked-lm: torch" in text, text
    argv = ["run", "--task", "feature-extraction", "--model", str(real_model_dir)]
    status, text = _stderr_text(in_process, argv, monkeypatch, True, tmp_path, stdin="a\n\nb c\n")
    assert status == 1 and "tribert run" in text and "line" in text, text
    assert "tribert run: line 2: empty line" in text  # a line's error is printed past the bar, whole
    assert len((tmp_path / "stdout.txt").read_text().splitlines()) == 3


def _closed_pipe():
    """The write end of a pipe whose reader is gone (as `| head -1` leaves it once head exits)."""
    import os

    read, write = os.pipe()
    os.close(read)
    return write


def test_convert_to_a_closed_pipe_exits_3_without_a_traceback(tiny_checkpoint, tmp_path):
    import os

    write = _closed_pipe()
    try:
        result = subprocess.run([sys.executable, "-m", "tribert", "convert", str(tiny_checkpoint), "--to", "safetensors",
                                 "--out", str(tmp_path / "out")], stdout=write, stderr=subprocess.PIPE, timeout=300)  # fmt: skip
    finally:
        os.close(write)
    assert result.returncode == 3 and result.stderr == b"", result.stderr.decode()
    assert (tmp_path / "out" / "model.safetensors").is_file()  # the conversion itself completed


def test_parity_to_a_closed_pipe_exits_3_quietly(in_process, monkeypatch, tiny_checkpoint, tmp_path):
    import os

    stdout = os.fdopen(_closed_pipe(), "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    with stdout, open(tmp_path / "stderr.txt", "w+") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        status = in_process(["parity", str(tiny_checkpoint), "--frameworks", "torch", "--heads", "base", "--reference", "none"])
        stderr.seek(0)
        assert (status, stderr.read()) == (3, "")
