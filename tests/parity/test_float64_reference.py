"""Accuracy, not just agreement: each backend against a float64 run of `transformers` on the real checkpoint.

Two float32 implementations can only agree to the sum of their own rounding
errors. This measures each one's error against the exact (float64) answer
and asserts it is within the float32 bound and no worse than `transformers`'
own float32 run (x1.25 for run-to-run kernel choices).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from harness import real_checkpoint_dir
from tribert.parity import REFERENCE, TOLERANCE, head_checkpoint, make_inputs, run_framework

_WORK = Path(tempfile.mkdtemp(prefix="tribert-float64-"))
HEADS = ["base", "masked-lm", "question-answering"]
FRAMEWORKS = ["torch", "tf", "flax"]


@functools.cache
def checkpoint(head: str) -> Path:
    directory = _WORK / head
    head_checkpoint(real_checkpoint_dir(), head, directory)
    return directory


@functools.cache
def exact(head: str) -> dict[str, np.ndarray]:
    """The float64 answer: `transformers` (eager attention) with every weight and op in float64."""
    import torch
    import transformers

    from bert_core import BertConfig
    from bert_core.heads import get_head

    directory = checkpoint(head)
    inputs = make_inputs(BertConfig.from_pretrained(directory), head)
    cls = getattr(transformers, get_head(head).class_name)
    model = cls.from_pretrained(directory, dtype=torch.float64, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
    flat = {}  # named as tribert.parity.flatten_outputs names them, but kept in float64
    for name, value in out.items():
        if isinstance(value, tuple):
            flat.update({f"{name}[{i}]": v.numpy() for i, v in enumerate(value)})
        elif value is not None:
            flat[name] = value.numpy()
    return flat


@functools.cache
def error(head: str, framework: str) -> dict[str, float]:
    """max |float32 output - float64 answer| per output, over real positions of real rows."""
    from bert_core import BertConfig

    directory = checkpoint(head)
    inputs = make_inputs(BertConfig.from_pretrained(directory), head)
    ours = run_framework(framework, directory, head, inputs, "float32", "cpu")
    truth = exact(head)
    tokens = inputs["attention_mask"].astype(bool)
    rows = tokens.any(axis=-1)
    errors = {}
    for name, value in truth.items():
        if name not in ours:
            continue
        diff = np.abs(ours[name].astype(np.float64) - value)
        if diff.shape[:2] == tokens.shape:
            diff = diff[tokens]
        elif diff.shape[:1] == rows.shape:
            diff = diff[rows]  # per-sequence outputs: transformers un-masks a fully padded row
        errors[name] = float(diff.max())
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("head", HEADS)
def test_each_backend_is_as_accurate_as_transformers_against_float64(head, framework):
    ours, theirs = error(head, framework), error(head, REFERENCE)
    assert ours and set(ours) <= set(theirs)
    worse = {name: (e, theirs[name]) for name, e in ours.items() if e > max(TOLERANCE["float32"], 1.25 * theirs[name])}
    assert not worse, f"{framework} {head}: error vs float64 above max(1e-5, 1.25 x transformers' own): {worse}"


def teardown_module(module) -> None:
    shutil.rmtree(_WORK, ignore_errors=True)
