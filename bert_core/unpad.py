"""No compute on padding for inference: the rule every backend follows, and its host-side plan.

**The rule.** ``model(**inputs)`` called for inference on an encoder batch
with a 2-D ``attention_mask`` returns **zeros at the masked positions** of
``last_hidden_state`` and ``hidden_states``, in torch, TensorFlow and Flax, on
every device, whatever share of the batch is padding. Real positions equal the
padded path to float rounding; ``pooler_output`` and the heads read the same
values as on the padded path (the heads' per-token logits at masked positions
are the head applied to those zeros).

What counts as an inference call, per backend:

- torch: eval mode and no gradient recorded (``no_grad`` / ``inference_mode`` or
  nothing requiring grad), not compiling, exporting or tracing;
- TensorFlow: an eager call (the model's first, building call and the cached graph
  that serves the later ones) with no tape recording, not inside ``tf.function`` /
  ``fit`` / ``predict``, ``training`` falsy, ``run_eagerly`` off;
- Flax: ``train=False`` with concrete (not traced) parameters and inputs, i.e.
  not under ``jax.grad`` / ``jax.jit`` of the caller.

Every other call computes the masked positions as ``transformers`` does:
training and differentiation, tracing and exports, the serving signatures and
``compiled_call``, the TF and Flax pipelines (their compiled programs are
bounded by shape buckets; per-token tasks pack rows of their own), decoders and
caches, cross-attention, ``head_mask``, ``output_attentions``, a 3-D
(per-query) mask, TF calls with ``inputs_embeds``, a head given labels whose
loss reads the whole sequence, calls inside :func:`padding_read`, and models
set with ``set_unpadding(False)``.

Where it pays off (a right-padded batch, at least :data:`MIN_PADDING_FRACTION`
padding), the backend also skips the padding's compute: the real tokens run
through the dense layers packed end to end (:class:`UnpadPlan`). Otherwise the
padded path runs and its masked positions are set to zero. Either way the
numbers a caller sees are the same.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .errors import ConfigError

__all__ = ["MIN_PADDING_FRACTION", "UnpadPlan", "padding_read", "reads_padding", "check_unpadding"]

# Below this share of padding the pack/unpack copies and the per-sequence attention calls
# (~40 us each on a CPU core, about one token of MiniLM's dense work) cost more than they save.
MIN_PADDING_FRACTION = 0.1

# A context variable, not a model attribute: threads sharing one model each keep their own.
_READS_PADDING: ContextVar[bool] = ContextVar("tribert_reads_padding", default=False)


@contextmanager
def padding_read() -> Iterator[None]:
    """Inside it, inference calls keep the padded path and ``transformers``' values at masked positions.

    For a caller that reads the padded positions (a loss over the whole sequence, a bit-for-bit
    comparison with ``transformers`` at every position), in any backend.
    """
    token = _READS_PADDING.set(True)
    try:
        yield
    finally:
        _READS_PADDING.reset(token)


def reads_padding() -> bool:
    """True inside :func:`padding_read`."""
    return _READS_PADDING.get()


def check_unpadding(enabled: bool | None) -> bool | None:
    """Validate a ``set_unpadding`` argument: ``None`` (inference calls only, the default), ``True``, ``False``."""
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(f"set_unpadding takes True, False or None, got {enabled!r}")
    return enabled


@dataclass(frozen=True)
class UnpadPlan:
    """Where the real tokens of a right-padded ``(batch, seq)`` batch sit, laid end to end.

    Attributes:
        indices: ``(tokens,)`` int64 flat positions (``row * seq + column``) of the real tokens, row by row.
        batch / seq: the padded batch's shape.
        offsets: ``(batch + 1,)`` python ints; row ``i``'s tokens are ``packed[offsets[i]:offsets[i + 1]]``.
    """

    indices: np.ndarray
    batch: int
    seq: int
    offsets: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return self.offsets[-1]

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.offsets[:-1], self.offsets[1:]))

    @classmethod
    def from_mask(cls, attention_mask, min_padding: float = MIN_PADDING_FRACTION) -> "UnpadPlan | None":
        """A plan for ``attention_mask`` (nonzero = real), or ``None`` when packing would not pay off or not be exact.

        Packing needs a 2-D mask, right padding (each row's real tokens first: the pooler reads
        position 0, and positions must stay in place), no empty row, and at least ``min_padding``
        of the batch to be padding.
        """
        mask = np.asarray(attention_mask)
        if mask.ndim != 2 or mask.size == 0:
            return None
        mask = mask != 0
        batch, seq = mask.shape
        lengths = mask.sum(axis=1)
        real = int(lengths.sum())
        if int(lengths.min()) == 0 or real > (1 - min_padding) * mask.size:
            return None
        if not np.array_equal(mask, np.arange(seq)[None, :] < lengths[:, None]):
            return None  # not right-padded
        offsets = (0, *np.cumsum(lengths).tolist())
        return cls(np.flatnonzero(mask).astype(np.int64), batch, seq, tuple(int(o) for o in offsets))
