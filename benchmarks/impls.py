"""The implementations the speed benchmark compares, each behind the same small interface.

``hf`` is `transformers` PyTorch (SDPA attention), the reference every ratio is
taken against; ``torch``, ``flax`` and ``tf`` are tribert's backends on the same
canonical checkpoint. Each :class:`Impl` offers the paths a user gets:

- ``dense(batch)``: the throughput path (torch/hf: ``model(**inputs)``; flax: the
  wrapper's jitted call; tf: :class:`bert_tf.compiled.CompiledCall`, XLA);
- ``default_call(batch)``: ``model(**inputs)`` as a user calls it (tf: its cached graph after the first call);
  on a padded batch the default inference call skips the padding (``bert_core.unpad``; hf: padded, as
  transformers runs it);
- ``mixed_padded(batch)``: the same call inside ``bert_core.unpad.padding_read()``, the padded
  compute, to show what skipping the padding buys (None for hf);
- ``pipeline(text)``: ``pipeline("feature-extraction")`` on one sentence.

Every call blocks until its outputs exist.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bert_core.unpad import padding_read

__all__ = ["Impl", "IMPLS", "matmul_peak", "timed"]

IMPLS = ("hf", "torch", "flax", "tf")


def matmul_peak(matmul: Callable, sync: Callable, n: int = 2048, repeats: int = 5) -> float:
    """The framework's own float32 ``n x n`` matmul GFLOP/s (median of ``repeats``): the machine's reachable peak."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    sync(matmul(a, a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(matmul(a, a))
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def timed(calls: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median seconds per call of each named zero-argument call, calls interleaved round-robin."""
    for call in calls.values():  # warm-up (and compilation for jitted paths)
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


class Impl:
    """One implementation loaded from ``directory`` in ``dtype`` ("float32" or "bfloat16")."""

    def __init__(self, name: str, directory: Path, dtype: str = "float32"):
        self.name, self.directory, self.dtype = name, directory, dtype
        self.label = name if dtype == "float32" else f"{name}:{dtype}"
        self._pipeline = None
        start = time.perf_counter()
        getattr(self, f"_load_{name}")()
        self.load_seconds = time.perf_counter() - start
        self.mixed_padded = None if name == "hf" else self._mixed_padded

    # -- loading -------------------------------------------------------------------------------------

    def _load_hf(self) -> None:
        import torch
        import transformers

        torch.set_grad_enabled(False)
        dtype = getattr(torch, self.dtype)
        self.model = transformers.BertModel.from_pretrained(self.directory, attn_implementation="sdpa", dtype=dtype).eval()
        self._torch_paths(torch)

    def _load_torch(self) -> None:
        import torch

        import bert_torch

        torch.set_grad_enabled(False)
        self.model = bert_torch.BertModel.from_pretrained(self.directory, dtype=getattr(torch, self.dtype)).eval()
        self._torch_paths(torch)

    def _torch_paths(self, torch) -> None:
        def call(batch):
            with torch.inference_mode():
                return self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state.float().numpy()

        self.dense = self.default_call = call
        self.peak = matmul_peak(lambda a, b: torch.from_numpy(a) @ torch.from_numpy(b), lambda x: x)

    def _load_flax(self) -> None:
        import jax.numpy as jnp

        import bert_flax

        self.model = bert_flax.FlaxBertModel.from_pretrained(self.directory, dtype=getattr(jnp, self.dtype))

        def call(batch):
            return np.asarray(self.model(**batch).last_hidden_state.block_until_ready(), dtype=np.float32)

        self.dense = self.default_call = call
        self.peak = matmul_peak(lambda a, b: jnp.asarray(a) @ jnp.asarray(b), lambda x: x.block_until_ready())

    def _load_tf(self) -> None:
        import tensorflow as tf

        import bert_tf
        from bert_tf.compiled import CompiledCall

        policy = "mixed_bfloat16" if self.dtype == "bfloat16" else None
        self.model = bert_tf.TFBertModel.from_pretrained(self.directory, **({"dtype": policy} if policy else {}))
        compiled = CompiledCall(self.model)

        def xla(batch):
            return tf.cast(compiled(**batch).last_hidden_state, tf.float32).numpy()

        self.dense = xla
        self.default_call = lambda batch: self.model(**batch).last_hidden_state.numpy()
        self.peak = matmul_peak(lambda a, b: tf.matmul(a, b), lambda x: x.numpy())

    def _mixed_padded(self, batch):
        with padding_read():
            return self.default_call(batch)

    # -- the pipeline path -------------------------------------------------------------------------------

    def pipeline(self, text: str):
        """``pipeline("feature-extraction")(text)`` as each library builds it (built on first use)."""
        if self._pipeline is None:
            if self.name == "hf":
                import transformers

                self._pipeline = transformers.pipeline("feature-extraction", model=str(self.directory), device="cpu")
            else:
                import importlib

                self._pipeline = importlib.import_module(f"bert_{self.name}").pipeline("feature-extraction",
                                                                                   model=self.directory)
        return self._pipeline(text)
